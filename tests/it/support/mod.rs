//! Test fixtures: a per-test CA, a real upstream server, keygate in-process
//! or as the real binary, and HTTPS clients. Everything on 127.0.0.1:0.

pub mod admin;
pub mod bin;
pub mod body;
pub mod browser;
pub mod cas;
pub mod client;
pub mod deploy;
pub mod front;
pub mod gateway;
pub mod githost;
pub mod idp;
pub mod load;
pub mod oidc;
pub mod proxy;
pub mod redis;
pub mod saml;
pub mod scanner;
pub mod tls;
pub mod upstream;
pub mod webapp;
pub mod webhook_receiver;
pub mod whoami;

use std::future::Future;
use std::time::Duration;

/// Await `fut` or fail the test with `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

/// Poll `check` until it returns `Some`, at most `tries` times `every` apart.
pub async fn eventually<T, F, Fut>(what: &str, tries: u32, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(every).await;
    }
    panic!("condition never held after {tries} tries: {what}");
}

/// What curl made of a request.
pub struct Curl {
    /// curl's exit code: 0 when it got an HTTP answer.
    pub exit: Option<i32>,
    /// 0 when there was no HTTP answer.
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// Run curl (`-sS`, 10 s at most) with `args`, the way a user would.
pub async fn curl(args: &[&str]) -> Curl {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl is installed (scripts/test.sh installs it)");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = all.rsplit_once('\n').unwrap_or(("", "0"));
    Curl {
        exit: out.status.code(),
        status: status.parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The admin token every test config uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Write an admin token file (`admin.token_file`) into `dir`.
pub fn admin_token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("tester:{ADMIN_TOKEN}\n")).unwrap();
    path
}

/// Serve HTTP/1.1 (upgrades allowed) on `listener` until the task is
/// aborted, each request answered by `answer(peer, request)`: the test
/// servers (upstream, web app, who-am-I) differ only in their answers.
pub fn serve_http1<F, Fut>(
    listener: tokio::net::TcpListener,
    answer: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(std::net::SocketAddr, http::Request<hyper::body::Incoming>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Result<http::Response<body::TestBody>, std::convert::Infallible>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(peer, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    })
}
