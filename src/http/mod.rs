//! HTTP on the main listener: the gateway pipeline and what it needs —
//! header rules, keygate's own responses, the response body type and the
//! access log — and, on both listeners, the connection-level defences hyper
//! leaves to its user: HTTP/2 control-frame floods and a readable close
//! (`h2_guard`), and clients that stop taking responses (`send_stall`).

pub(crate) mod access;
pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod gateway;
pub(crate) mod h2_guard;
pub mod headers;
pub(crate) mod json_body;
pub mod own_path;
pub(crate) mod refusal;
pub(crate) mod response;
pub(crate) mod send_stall;
