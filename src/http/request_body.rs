//! A whole request body that keygate answers itself (its APIs, the leak
//! reports, `/.keygate/revoke`), read one way: at most `max` bytes, and
//! within a deadline. No idle timeout runs while a request is in flight, so
//! a client that sends the head and then trickles the body, or never
//! finishes it, would otherwise hold its connection for ever.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Why the body was not read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    /// 413: over `max` (also when only announced), or the client stopped sending.
    TooLarge,
    /// 408: not all there within the deadline.
    Slow,
}

/// What a refusal for a slow body says, alike on every route.
/// It names the setting: an admin sending a large list over a slow link
/// needs to know what to raise.
pub const SLOW_BODY: &str = "the body did not arrive in time (half of leaks.answer_within)";

pub async fn read(req: Request<Incoming>, max: usize, within: Duration) -> Result<Bytes, Unread> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(Unread::TooLarge);
    }
    let whole = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(within, whole).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(Unread::TooLarge),
        Err(_) => Err(Unread::Slow),
    }
}
