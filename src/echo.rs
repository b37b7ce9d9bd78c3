//! The built-in echo upstream of `keygate dev`: answers every request with
//! the method, path and headers it received (so a newcomer sees the identity
//! header keygate added and the credential it removed) and the body's size.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Serve the echo upstream on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(answer))
                .await;
        });
    }
}

/// Bind on `addr` and spawn the echo upstream; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(bound)
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut text = format!(
        "keygate dev echo upstream: this is the request as the backend received it\n\n{} {} {:?}\n",
        req.method(),
        req.uri(),
        req.version()
    );
    let mut names: Vec<_> = req.headers().iter().collect();
    names.sort_by_key(|(k, _)| k.as_str());
    for (name, value) in names {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let mut body = req.into_body();
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => size += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    text.push_str(&format!("\nbody: {size} bytes\n"));
    let resp = Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text)))
        .expect("static response parts are valid");
    Ok(resp)
}
