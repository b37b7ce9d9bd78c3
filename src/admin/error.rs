//! Why an admin request is not answered as asked, and the one place where
//! each reason becomes its status, headers and `{"error": ...}` body.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::MAX_BODY;
use crate::http::body::ResponseBody;
use crate::http::json_body::BodyError;
use crate::http::request_body;
use crate::http::response::{self, RETRY_SOON};
use crate::keyring::{RevokeError, RotateError};
use crate::keys::KeyId;
use crate::store::StoreError;

/// An answer that is not a success. Client input never yields a 500.
#[derive(Debug)]
pub enum ApiError {
    /// 400, the message naming the field.
    BadRequest(String),
    /// 401: no bearer token, or not one of `admin.token_file`'s.
    Unauthorized,
    /// 404: no such key, no such route.
    NotFound(String),
    /// 409: the key was rotated before; its successor's id is in the body
    /// (`rotated_to`) and no third key is made.
    Rotated { message: String, to: KeyId },
    /// 405 with the methods the route answers (RFC 9110 §15.5.6 requires `Allow`).
    Method(&'static str),
    /// 415: not `application/json`.
    UnsupportedMedia,
    /// 413: over `MAX_BODY`, or the client stopped sending.
    TooLarge,
    /// 408: the body was not all there within its deadline.
    SlowBody,
    /// 503: the key store cannot be asked.
    Store(StoreError),
    /// 503: revoked in the store, not confirmed by every instance; retry.
    NotPropagated(RevokeError),
    /// 503: settings saved and in force, not confirmed by a replica; save again.
    SettingsUnconfirmed(crate::keyring::SettingsError),
}

// === impl ApiError ===

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    /// Status, headers and body, in one exhaustive match.
    pub fn into_response(self) -> Response<ResponseBody> {
        use StatusCode as S;
        let (status, message, extra) = match self {
            // Both may quote client input; `json_error` redacts key secrets.
            ApiError::BadRequest(m) => (S::BAD_REQUEST, m, None),
            ApiError::Unauthorized => (
                S::UNAUTHORIZED,
                "missing or invalid bearer token".into(),
                Some((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keygate-admin\""),
                )),
            ),
            ApiError::NotFound(m) => (S::NOT_FOUND, m, None),
            ApiError::Rotated { message, to } => {
                return response::json(
                    S::CONFLICT,
                    &serde_json::json!({ "error": message, "rotated_to": to }),
                );
            }
            ApiError::Method(allow) => (
                S::METHOD_NOT_ALLOWED,
                format!("method not allowed; allowed: {allow}"),
                Some((header::ALLOW, HeaderValue::from_static(allow))),
            ),
            ApiError::UnsupportedMedia => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json".into(),
                None,
            ),
            ApiError::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes or unreadable"),
                None,
            ),
            ApiError::SlowBody => (S::REQUEST_TIMEOUT, request_body::SLOW_BODY.into(), None),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "admin request failed: key store unavailable");
                let resp =
                    response::json_error(S::SERVICE_UNAVAILABLE, "the key store is unavailable");
                return response::retry_after(resp, RETRY_SOON);
            }
            ApiError::NotPropagated(e) => {
                tracing::error!(error = %e, "revocation not confirmed by the fleet");
                let resp = response::json_error(S::SERVICE_UNAVAILABLE, &e.to_string());
                return response::retry_after(resp, RETRY_SOON);
            }
            ApiError::SettingsUnconfirmed(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "settings saved, not confirmed by a replica");
                let resp = response::json_error(S::SERVICE_UNAVAILABLE, &e.to_string());
                return response::retry_after(resp, RETRY_SOON);
            }
        };
        let mut resp = response::json_error(status, &message);
        if let Some((name, value)) = extra {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<RevokeError> for ApiError {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::Store(e) => ApiError::Store(e),
            e @ RevokeError::NotPropagated { .. } => ApiError::NotPropagated(e),
        }
    }
}

impl From<RotateError> for ApiError {
    fn from(e: RotateError) -> Self {
        match e {
            e @ (RotateError::Grace(_) | RotateError::Ttl(_) | RotateError::ChainEnded { .. }) => {
                ApiError::BadRequest(e.to_string())
            }
            RotateError::NotFound => {
                ApiError::NotFound("no such key (never issued, expired or revoked)".into())
            }
            e @ RotateError::Rotated { to, .. } => ApiError::Rotated {
                message: e.to_string(),
                to,
            },
            RotateError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotJson => ApiError::UnsupportedMedia,
            BodyError::TooLarge => ApiError::TooLarge,
            BodyError::Slow => ApiError::SlowBody,
            BodyError::Invalid(message) => ApiError::BadRequest(message),
        }
    }
}
