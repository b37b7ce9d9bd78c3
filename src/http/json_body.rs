//! JSON request bodies of keygate's own APIs (admin, self-service), read one
//! way so both answer alike: 415 without `application/json`, 413 over the
//! size limit, 408 not all there within the deadline (`request_body`), 400
//! naming the field the type refuses.

use std::time::Duration;

use http::{header, Request};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::request_body::{self, Unread};
use crate::keys::format::redact_keys;

/// Why a body was refused; each API turns it into its own answer.
#[derive(Debug)]
pub enum BodyError {
    /// 415: no `Content-Type: application/json`.
    NotJson,
    /// 413: over the limit, or the client stopped sending.
    TooLarge,
    /// 408: not all there within the deadline (`request_body::SLOW_BODY`).
    Slow,
    /// 400: the message names the field (`ttl: invalid type …`) or the JSON error.
    Invalid(String),
}

pub async fn read<T: DeserializeOwned>(
    req: Request<Incoming>,
    max: usize,
    within: Duration,
) -> Result<T, BodyError> {
    let json_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(BodyError::NotJson);
    }
    let bytes = request_body::read(req, max, within)
        .await
        .map_err(|e| match e {
            Unread::TooLarge => BodyError::TooLarge,
            Unread::Slow => BodyError::Slow,
        })?;
    parse_object(&bytes).map_err(BodyError::Invalid)
}

/// `parse` for the bodies that are one object (every API request but the
/// leak reports' lists). serde would also take a struct's fields as an
/// array in order, and then name the struct in its error.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => parse(bytes),
        Some(_) => Err("invalid JSON body: expected an object ({...})".into()),
        None => Err("invalid JSON body: empty".into()),
    }
}

/// Parse a whole JSON document; the error names the field it is about,
/// and any key secret it would quote (serde's `invalid type: string
/// "kg_…"`, an unknown field's name) is redacted.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    parse_quoting(bytes).map_err(|e| redact_keys(&e).into_owned())
}

fn parse_quoting<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // `.` is the document itself; `?` where serde lost track (at its end).
        if path == "." || path == "?" {
            format!("invalid JSON body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("invalid JSON body: {e}"))?;
    Ok(value)
}
