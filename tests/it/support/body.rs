//! A request/response body fed from a channel, so tests control when each
//! chunk is sent (streaming checks) and can end it with an error (aborts).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

pub type TestBody = BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> TestBody {
    full(Bytes::new())
}

pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

/// A body and the sender that writes it; dropping the sender ends the body.
pub fn channel() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, TestBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Read a whole body, counting bytes (never holding more than a chunk).
pub async fn count<B>(mut body: B) -> Result<u64, B::Error>
where
    B: Body + Unpin,
{
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            n += bytes::Buf::remaining(d) as u64;
        }
    }
    Ok(n)
}
