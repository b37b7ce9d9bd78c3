//! The yes: `200` with what the proxy copies onto the request to the app.
//!
//! After admission, the check's headers hold exactly what the backend may
//! see of keygate's headers: the identity header and `X-Keygate-Key-Id`
//! that admission set (every client copy was removed first). Those go into
//! the answer. When the answer names nobody (anonymous passthrough, or the
//! key id of an SSO user):
//! * forward-auth and auth-request answers carry the header empty, so that
//!   a proxy copying it replaces the client's copy with nothing (nginx sends
//!   no empty header; Caddy 2.6's `copy_headers` would otherwise put the
//!   literal text of its placeholder on the request);
//! * Envoy's answer leaves it out and names it in
//!   `x-envoy-auth-headers-to-remove`, with the credential headers the key
//!   came in (the app never needs the key).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::contract::Contract;
use crate::auth::APIKEY_HEADER;
use crate::http::body::ResponseBody;
use crate::http::headers::KEY_ID;
use crate::http::response;

/// Envoy's HTTP ext_authz: request headers to remove before going upstream.
pub const ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The headers that can carry an API key, as they were before admission
/// took the credential out.
pub struct Credentials {
    authorization: bool,
    apikey: bool,
}

// === impl Credentials ===

impl Credentials {
    pub fn present(h: &HeaderMap) -> Self {
        Credentials {
            authorization: h.contains_key(header::AUTHORIZATION),
            apikey: h.contains_key(&APIKEY_HEADER),
        }
    }

    /// The ones admission removed from `h`: those that carried the key.
    fn removed(&self, h: &HeaderMap) -> Vec<HeaderName> {
        [
            (self.authorization, header::AUTHORIZATION),
            (self.apikey, APIKEY_HEADER),
        ]
        .into_iter()
        .filter(|(was, name)| *was && !h.contains_key(name))
        .map(|(_, name)| name)
        .collect()
    }
}

/// The `200` for a check whose headers `h` admission let through.
pub fn answer(
    contract: Contract,
    h: &mut HeaderMap,
    identity_header: &HeaderName,
    credentials: &Credentials,
) -> Response<ResponseBody> {
    let mut resp = response::text(StatusCode::OK, "");
    let out = resp.headers_mut();
    let mut to_remove = credentials.removed(h);
    for name in [identity_header.clone(), KEY_ID] {
        match h.remove(&name) {
            Some(value) => {
                out.insert(name, value);
            }
            None if contract == Contract::ExtAuthz => to_remove.push(name),
            None => {
                out.insert(name, HeaderValue::from_static(""));
            }
        }
    }
    if contract == Contract::ExtAuthz && !to_remove.is_empty() {
        let names: Vec<&str> = to_remove.iter().map(HeaderName::as_str).collect();
        let list = HeaderValue::try_from(names.join(", ")).expect("header names are values");
        out.insert(ENVOY_HEADERS_TO_REMOVE, list);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_names::tests::map;

    fn remove_list(resp: &Response<ResponseBody>) -> &str {
        resp.headers()[ENVOY_HEADERS_TO_REMOVE].to_str().unwrap()
    }

    #[test]
    fn the_identity_set_by_admission_is_copied_and_envoy_drops_the_credential() {
        let before = map(&[("authorization", "Basic x"), ("apikey", "other")]);
        let credentials = Credentials::present(&before);
        // Admission took the Authorization credential and identified alice.
        let mut after = map(&[
            ("apikey", "other"),
            ("x-remote-user", "alice"),
            ("x-keygate-key-id", "abc"),
        ]);
        let identity = HeaderName::from_static("x-remote-user");
        let resp = answer(Contract::ExtAuthz, &mut after, &identity, &credentials);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-remote-user"], "alice");
        assert_eq!(resp.headers()["x-keygate-key-id"], "abc");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(remove_list(&resp), "authorization");

        let mut after = map(&[("apikey", "other")]);
        let resp = answer(Contract::ForwardAuth, &mut after, &identity, &credentials);
        assert!(!resp.headers().contains_key(ENVOY_HEADERS_TO_REMOVE));
        assert_eq!(resp.headers()["x-remote-user"], "");
        assert_eq!(resp.headers()["x-keygate-key-id"], "");
    }

    #[test]
    fn envoy_removes_what_an_anonymous_answer_does_not_set() {
        let mut h = map(&[("authorization", "Bearer app-token")]);
        let credentials = Credentials::present(&h);
        let identity = HeaderName::from_static("x-user");
        let resp = answer(Contract::ExtAuthz, &mut h, &identity, &credentials);
        assert_eq!(remove_list(&resp), "x-user, x-keygate-key-id");
    }
}
