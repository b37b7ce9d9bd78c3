//! HTTP on the main listener: the gateway's steps (`gateway`: route, admit,
//! forward; `admission`: strip, authenticate, limit, authorize, identify),
//! its refusals answered in one place (`refusal`), every answer keygate
//! writes (`response`; `html` for its pages), the header rules, the response body type and the
//! access log. (The connection-level defences, HTTP/2 floods and stalled
//! clients, are the connection's: `conn`.)

pub(crate) mod access;
pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod expiry;
pub(crate) mod gateway;
pub mod headers;
pub(crate) mod html;
pub(crate) mod json_body;
pub mod own_path;
pub(crate) mod refusal;
pub(crate) mod request_body;
pub(crate) mod response;
pub(crate) mod self_rotation;
