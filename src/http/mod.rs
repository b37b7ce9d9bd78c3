//! HTTP on the main listener: the gateway pipeline and what it needs —
//! header rules, keygate's own responses, the response body type and the
//! access log.

pub mod access;
pub mod body;
pub mod gateway;
pub mod headers;
pub mod json_body;
pub mod own_path;
pub mod response;
