//! The response body every handler returns: either the upstream's streamed
//! body or a small body keygate wrote itself, without boxing either.
//!
//! It also carries the request's `Completion`, so the access-log line is
//! written (and the connection's in-flight count dropped) when the last byte
//! has gone out or the client went away, as nginx logs after the response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use std::sync::Arc;

use super::access::Completion;
use crate::conn::send_stall::Waiting;
use crate::upstream::pool::Lease;

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner {
        // The lease returns the backend connection to the pool at end of stream.
        Upstream { #[pin] body: Incoming, lease: Option<Lease> },
        Local { #[pin] body: Full<Bytes> },
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseBody {
        #[pin]
        inner: Inner,
        // Dropped with the body: logs the request and marks it finished.
        completion: Option<Completion>,
        // The body's note for `limits.send_timeout`.
        waiting: Option<Arc<Waiting>>,
    }
}

impl ResponseBody {
    pub fn upstream(body: Incoming, lease: Lease) -> Self {
        let mut lease = Some(lease);
        if body.is_end_stream() {
            if let Some(l) = lease.take() {
                l.release();
            }
        }
        Self {
            inner: Inner::Upstream { body, lease },
            completion: None,
            waiting: None,
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Local {
                body: Full::new(bytes.into()),
            },
            completion: None,
            waiting: None,
        }
    }

    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// For a HEAD response: drop a body keygate wrote itself and return its
    /// length. An upstream body is left alone (the backend answered HEAD).
    pub(crate) fn take_local(&mut self) -> Option<u64> {
        let Inner::Local { body } = &self.inner else {
            return None;
        };
        let len = body.size_hint().exact();
        self.inner = Inner::Local {
            body: Full::new(Bytes::new()),
        };
        len
    }

    pub(crate) fn set_completion(&mut self, completion: Completion) {
        self.watch_sends(completion.sends());
        self.completion = Some(completion);
    }

    /// Watch this body for `limits.send_timeout`. Every body, keygate's own
    /// too: an HTTP/2 client that never opens its window would otherwise
    /// hold a 401, and with it the connection's slot, for ever
    /// (`conn::send_stall`).
    pub fn watch_sends(&mut self, sends: &crate::conn::send_stall::Sends) {
        self.waiting = Some(sends.track());
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        if let Some(w) = this.waiting.as_ref() {
            w.taken();
        }
        let polled = match this.inner.project() {
            InnerProj::Upstream { mut body, lease } => {
                let polled = body.as_mut().poll_frame(cx);
                // hyper stops polling once `is_end_stream` says so: release on
                // the last frame, not only on the final `None`.
                let done = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    _ => false,
                };
                if done {
                    if let Some(l) = lease.take() {
                        l.release();
                    }
                }
                polled
            }
            InnerProj::Local { body } => body.poll_frame(cx).map_err(|never| match never {}),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                if let Some(c) = this.completion.as_mut() {
                    c.add_bytes(data.len() as u64);
                }
                if let Some(w) = this.waiting.as_ref() {
                    w.handed();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream { body, .. } => body.is_end_stream(),
            Inner::Local { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream { body, .. } => body.size_hint(),
            Inner::Local { body } => body.size_hint(),
        }
    }
}
