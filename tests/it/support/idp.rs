//! A tiny hand-made OpenID provider for the answers a real one never gives:
//! discovery, a JWK set of ES256 keys it made at start (ring), an
//! authorization endpoint that signs everyone in at once (the code bound to
//! the request's nonce, PKCE challenge and redirect URI), and a token
//! endpoint that checks the client's Basic credentials and the PKCE verifier
//! and signs an ID token for alice, which the test may change first
//! (`tweak`): another audience, an expiry in the past, another key...
//!
//! Its discovery names an `end_session_endpoint` (`/logout`, which keygate
//! only redirects to). Each path's requests are counted (`hits`); a path can
//! be made to never answer (`hang`). Stopped on drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::body::{self, TestBody};

pub const CLIENT_ID: &str = "keygate-test";
pub const CLIENT_SECRET: &str = "hand-made-client-secret";
pub const USER: &str = "alice@example.org";

/// The ID token about to be signed: its header and claims, for `tweak`.
pub struct Token {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// The key that signs it (an index into the provider's keys).
    pub key: usize,
    /// Sign with HMAC-SHA256 under the client secret instead (`alg` HS256).
    pub hmac: bool,
}

type Tweak = Box<dyn Fn(&mut Token) + Send>;

struct State {
    /// (kid, key pair): three made at start.
    keys: Vec<(String, EcdsaKeyPair)>,
    /// Which keys `/jwks` lists.
    published: Vec<usize>,
    /// Which key signs, unless a tweak says otherwise.
    signing: usize,
    /// code -> (nonce, code_challenge, redirect_uri); taken by the token endpoint.
    codes: HashMap<String, (String, String, String)>,
    tweak: Option<Tweak>,
    hits: HashMap<String, usize>,
    hang: Option<String>,
    next_code: u64,
    /// The last ID token the token endpoint handed out.
    last_id_token: Option<String>,
}

pub struct Idp {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    /// Holds `client_secret_file`.
    dir: tempfile::TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl Idp ===

impl Idp {
    /// Keys 0, 1, 2 (kids "k0", "k1", "k2"); only key 0 is published and signs.
    pub async fn start() -> Idp {
        let rng = SystemRandom::new();
        let keys = (0..3)
            .map(|i| {
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.as_ref(),
                    &rng,
                )
                .unwrap();
                (format!("k{i}"), pair)
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            keys,
            published: vec![0],
            signing: 0,
            codes: HashMap::new(),
            tweak: None,
            hits: HashMap::new(),
            hang: None,
            next_code: 0,
            last_id_token: None,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = state.clone();
        let task = super::serve_http1(listener, move |_, req| answer(addr, s.clone(), req));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), CLIENT_SECRET).unwrap();
        Idp {
            addr,
            state,
            task,
            dir,
        }
    }

    /// `login.issuer`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn secret_file(&self) -> std::path::PathBuf {
        self.dir.path().join("client-secret")
    }

    /// Change every ID token from now on (`None`: sign them as they come).
    pub fn tweak(&self, tweak: Option<Tweak>) {
        self.state.lock().unwrap().tweak = tweak;
    }

    /// Publish exactly `keys` at `/jwks`, and sign with `signing`.
    pub fn rotate(&self, keys: &[usize], signing: usize) {
        let mut s = self.state.lock().unwrap();
        s.published = keys.to_vec();
        s.signing = signing;
    }

    /// Requests to `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The last ID token the token endpoint handed out.
    pub fn last_id_token(&self) -> Option<String> {
        self.state.lock().unwrap().last_id_token.clone()
    }

    /// Never answer requests to `path` (`None`: answer everything).
    pub fn hang(&self, path: Option<&str>) {
        self.state.lock().unwrap().hang = path.map(str::to_owned);
    }
}

fn json_answer(status: StatusCode, v: Value) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(v.to_string()))
        .unwrap()
}

async fn answer(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let hang = {
        let mut s = state.lock().unwrap();
        *s.hits.entry(path.clone()).or_default() += 1;
        s.hang.as_deref() == Some(path.as_str())
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let issuer = format!("http://{addr}");
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    Ok(match path.as_str() {
        "/.well-known/openid-configuration" => json_answer(
            StatusCode::OK,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "userinfo_endpoint": format!("{issuer}/userinfo"),
                "end_session_endpoint": format!("{issuer}/logout"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }),
        ),
        "/jwks" => {
            let s = state.lock().unwrap();
            let keys: Vec<Value> = s
                .published
                .iter()
                .map(|&i| {
                    let (kid, pair) = &s.keys[i];
                    let point = pair.public_key().as_ref();
                    json!({
                        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
                    })
                })
                .collect();
            json_answer(StatusCode::OK, json!({ "keys": keys }))
        }
        "/authorize" => {
            let code = {
                let mut s = state.lock().unwrap();
                s.next_code += 1;
                let code = format!("code-{}", s.next_code);
                let q = |k: &str| query.get(k).cloned().unwrap_or_default();
                s.codes.insert(
                    code.clone(),
                    (q("nonce"), q("code_challenge"), q("redirect_uri")),
                );
                code
            };
            let back = format!(
                "{}?{}",
                query.get("redirect_uri").map_or("", String::as_str),
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("code", &code)
                    .append_pair("state", query.get("state").map_or("", String::as_str))
                    .finish()
            );
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, back)
                .body(body::empty())
                .unwrap()
        }
        "/token" => token(&issuer, &state, req).await,
        // What the provider knows of the token's subject; only for the
        // access token the token endpoint handed out.
        "/userinfo" => match req.headers().get(header::AUTHORIZATION) {
            Some(v) if v == "Bearer at-1" => json_answer(
                StatusCode::OK,
                json!({ "sub": "u-alice", "email": USER, "email_verified": true }),
            ),
            _ => json_answer(
                StatusCode::UNAUTHORIZED,
                json!({ "error": "invalid_token" }),
            ),
        },
        _ => json_answer(StatusCode::NOT_FOUND, json!({ "error": "not_found" })),
    })
}

/// The token endpoint: client credentials, the code once, the PKCE verifier.
async fn token(issuer: &str, state: &Mutex<State>, req: Request<Incoming>) -> Response<TestBody> {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| *v == *expected);
    let form = req.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&form).into_owned().collect();
    let field = |k: &str| form.get(k).map_or("", String::as_str);
    if !authorized {
        return json_answer(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "invalid_client" }),
        );
    }
    let mut s = state.lock().unwrap();
    let Some((nonce, challenge, redirect_uri)) = s.codes.remove(field("code")) else {
        return json_answer(StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }));
    };
    let pkce = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if pkce != challenge
        || field("redirect_uri") != redirect_uri
        || field("grant_type") != "authorization_code"
    {
        return json_answer(StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut t = Token {
        header: json!({ "alg": "ES256", "typ": "JWT", "kid": s.keys[s.signing].0 })
            .as_object()
            .unwrap()
            .clone(),
        claims: json!({
            "iss": issuer, "aud": CLIENT_ID, "sub": "u-alice", "email": USER,
            "email_verified": true, "nonce": nonce, "iat": now, "exp": now + 300,
        })
        .as_object()
        .unwrap()
        .clone(),
        key: s.signing,
        hmac: false,
    };
    if let Some(tweak) = &s.tweak {
        tweak(&mut t);
    }
    let b64 = |v: &Map<String, Value>| URL_SAFE_NO_PAD.encode(Value::Object(v.clone()).to_string());
    let message = format!("{}.{}", b64(&t.header), b64(&t.claims));
    let signature = if t.hmac {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    } else {
        s.keys[t.key]
            .1
            .sign(&SystemRandom::new(), message.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let id_token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
    s.last_id_token = Some(id_token.clone());
    json_answer(
        StatusCode::OK,
        json!({ "id_token": id_token, "access_token": "at-1", "token_type": "Bearer", "expires_in": 300 }),
    )
}
