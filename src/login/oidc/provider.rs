//! The OpenID provider's endpoints: discovery (`{issuer}/.well-known/
//! openid-configuration`, read when first needed and kept an hour), the
//! token endpoint (the code and PKCE verifier for tokens, the client
//! authenticated with its secret) and the userinfo endpoint.
//!
//! Every endpoint must be on the issuer's scheme, and plain http only on a
//! loopback address, as `login.issuer` itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::Uri;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::OidcError;
use crate::config::OidcClient;
use crate::login::fetch::Fetch;

/// How long the provider's metadata is used before it is read again.
const METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// The part of the provider's metadata keygate uses.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    /// Absent means `client_secret_basic` (OpenID Connect Discovery §3).
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// What the token endpoint answers (RFC 6749 §5.1, OpenID Connect §3.1.3.3).
#[derive(Deserialize)]
pub struct Tokens {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

pub struct Provider {
    issuer: String,
    fetch: Fetch,
    metadata: tokio::sync::Mutex<Option<(Arc<Metadata>, Instant)>>,
}

// === impl Provider ===

impl Provider {
    pub fn new(issuer: String, fetch: Fetch) -> Provider {
        Provider {
            issuer,
            fetch,
            metadata: tokio::sync::Mutex::new(None),
        }
    }

    pub fn fetch(&self) -> &Fetch {
        &self.fetch
    }

    /// The metadata, read again when older than an hour. One reader at a
    /// time: a burst of sign-ins asks the provider once.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((m, at)) = cached.as_ref() {
            if at.elapsed() < METADATA_MAX_AGE {
                return Ok(m.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let m: Metadata = self.get_json(&url, HeaderMap::new()).await?;
        if m.issuer != self.issuer {
            return Err(OidcError::Unreadable(format!(
                "the provider at {url} calls itself {:?}, but login.issuer is {:?}: they must be equal",
                m.issuer, self.issuer
            )));
        }
        for (name, url) in [
            ("authorization_endpoint", Some(&m.authorization_endpoint)),
            ("token_endpoint", Some(&m.token_endpoint)),
            ("jwks_uri", Some(&m.jwks_uri)),
            ("userinfo_endpoint", m.userinfo_endpoint.as_ref()),
            ("end_session_endpoint", m.end_session_endpoint.as_ref()),
        ] {
            if let Some(url) = url {
                self.endpoint(name, url)?;
            }
        }
        let m = Arc::new(m);
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// The code (with its PKCE verifier) for tokens. A refusal (`invalid_grant`
    /// for a code used twice or expired) is `Refused`, not an outage.
    pub async fn exchange(
        &self,
        m: &Metadata,
        client: &OidcClient,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, OidcError> {
        let url = self.endpoint("token_endpoint", &m.token_endpoint)?;
        let mut headers = accept_json();
        let basic = m
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_none_or(|methods| {
                methods.iter().any(|x| x == "client_secret_basic")
                    || !methods.iter().any(|x| x == "client_secret_post")
            });
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        if basic {
            // RFC 6749 §2.3.1: each form-encoded before the Basic encoding.
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                encode(&client.client_id),
                encode(&client.client_secret.0)
            );
            let value = format!("Basic {}", STANDARD.encode(pair));
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::try_from(value).expect("base64 is a valid header value"),
            );
        } else {
            form.push(("client_id", &client.client_id));
            form.push(("client_secret", &client.client_secret.0));
        }
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let (status, body) = self.fetch.post_form(&url, headers, form).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                OidcError::Unreadable(format!(
                    "the token endpoint's answer is not JSON tokens: {e}"
                ))
            });
        }
        match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) if status.is_client_error() => {
                tracing::warn!(
                    error = %printable(&e.error),
                    description = %crate::telemetry::escaped(&printable(e.error_description.as_deref().unwrap_or(""))),
                    "the OpenID provider's token endpoint refused the code{}",
                    if e.error == "invalid_client" {
                        "; check login.client_id and login.client_secret_file"
                    } else {
                        ""
                    }
                );
                Err(OidcError::Refused(printable(&e.error)))
            }
            _ => Err(OidcError::Unreadable(format!(
                "the token endpoint answered HTTP {status}"
            ))),
        }
    }

    /// The userinfo endpoint's claims for `access_token` (a JSON object).
    pub async fn userinfo(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let mut headers = accept_json();
        let bearer = HeaderValue::try_from(format!("Bearer {access_token}"))
            .map_err(|_| OidcError::Unreadable("the access token is not a header value".into()))?;
        headers.insert(header::AUTHORIZATION, bearer);
        self.get_json(url, headers).await
    }

    /// `url` as one of the provider's endpoints: absolute, on the issuer's
    /// scheme, plain http only on loopback.
    pub fn endpoint(&self, name: &str, url: &str) -> Result<Uri, OidcError> {
        let https = self.issuer.starts_with("https://");
        match url.parse::<Uri>() {
            Ok(u)
                if u.host().is_some()
                    && match u.scheme_str() {
                        Some("https") => https,
                        Some("http") => !https && u.host().is_some_and(crate::config::is_loopback),
                        _ => false,
                    } =>
            {
                Ok(u)
            }
            _ => Err(OidcError::Unreadable(format!(
                "the provider's {name} {url:?} is not an {} URL",
                if https {
                    "https://"
                } else {
                    "http:// loopback"
                }
            ))),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        headers: HeaderMap,
    ) -> Result<T, OidcError> {
        let uri = url
            .parse::<Uri>()
            .map_err(|_| OidcError::Unreadable(format!("{url:?} is not a URL")))?;
        let mut headers = headers;
        headers.extend(accept_json());
        let (status, body) = self.fetch.get(&uri, headers).await?;
        if !status.is_success() {
            return Err(OidcError::Unreadable(format!(
                "{url} answered HTTP {status}"
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            OidcError::Unreadable(format!("{url} did not answer the JSON expected: {e}"))
        })
    }
}

fn accept_json() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    h
}

/// A provider's word, safe to show and log: printable ASCII, at most 64 characters.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}
