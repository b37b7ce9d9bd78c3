//! A small web application with its own login, as keygate's upstream in the
//! `backend_session` browser test: what keygate is put in front of.
//!
//! | route | answer |
//! |---|---|
//! | `GET /login` | an HTML sign-in form (`#username`, `#password`, `#sign-in`) |
//! | `POST /login` | a known user/password: `Set-Cookie: session=…` and 303 to `next` (default `/`) |
//! | `GET /login-whoami.api` | `200 {"email": user}` for a valid session cookie, else 401 |
//! | anything else | `200 {"identity": <identity header or null>}`, recorded |
//!
//! Every request's identity header (whatever keygate set) is recorded, so a
//! test can check what the application was told.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::body::{self, TestBody};

#[derive(Default)]
struct State {
    /// user name -> password
    users: HashMap<String, String>,
    /// session cookie value -> user name
    sessions: HashMap<String, String>,
    /// Every request's path and every value of any header spelled like
    /// `x-remote-user` (case and `_`/`-` ignored), as its bytes.
    seen: Vec<(String, Vec<Vec<u8>>)>,
}

pub struct WebApp {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebApp {
    /// The application on 127.0.0.1:0 with the users `(name, password)`.
    pub async fn start(users: &[(&str, &str)]) -> WebApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            ..State::default()
        }));
        let s = state.clone();
        let task = super::serve_http1(listener, move |_, req| answer(s.clone(), req));
        WebApp { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The identity-header values the application received for requests to `path`.
    pub fn identities_seen(&self, path: &str) -> Vec<Vec<String>> {
        self.identity_bytes_seen(path)
            .into_iter()
            .map(|values| values.iter().map(|v| lossy(v)).collect())
            .collect()
    }

    /// `identities_seen`, byte for byte.
    pub fn identity_bytes_seen(&self, path: &str) -> Vec<Vec<Vec<u8>>> {
        let st = self.state.lock().unwrap();
        st.seen
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn identity_values(req: &Request<Incoming>) -> Vec<Vec<u8>> {
    req.headers()
        .iter()
        .filter(|(n, _)| n.as_str().replace('_', "-") == "x-remote-user")
        .map(|(_, v)| v.as_bytes().to_vec())
        .collect()
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

fn session_user(st: &State, req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("session="))
        .find_map(|id| st.sessions.get(id).cloned())
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    state
        .lock()
        .unwrap()
        .seen
        .push((path.clone(), identity_values(&req)));
    let resp = match (req.method().as_str(), path.as_str()) {
        ("GET", "/login") => {
            let next = param(&query, "next").unwrap_or_else(|| "/".into());
            html(&login_form(&next, ""))
        }
        ("POST", "/login") => {
            let form = req.into_body().collect().await.unwrap().to_bytes();
            let form: HashMap<String, String> =
                form_urlencoded::parse(&form).into_owned().collect();
            let (user, password) = (
                form.get("username").cloned().unwrap_or_default(),
                form.get("password").cloned().unwrap_or_default(),
            );
            let next = form.get("next").cloned().unwrap_or_else(|| "/".into());
            let mut st = state.lock().unwrap();
            if st.users.get(&user) == Some(&password) && !user.is_empty() {
                let mut raw = [0u8; 16];
                getrandom::fill(&mut raw).unwrap();
                let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                st.sessions.insert(id.clone(), user);
                // Only same-site paths: the form is no open redirect.
                let next = if next.starts_with('/') && !next.starts_with("//") {
                    next
                } else {
                    "/".into()
                };
                Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header("location", next)
                    .header(
                        "set-cookie",
                        format!("session={id}; Path=/; HttpOnly; SameSite=Lax"),
                    )
                    .body(body::empty())
                    .unwrap()
            } else {
                let mut r = html(&login_form(&next, "Wrong user name or password."));
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r
            }
        }
        ("GET", "/login-whoami.api") => {
            let st = state.lock().unwrap();
            match session_user(&st, &req) {
                Some(user) => json(StatusCode::OK, serde_json::json!({ "email": user })),
                None => json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({ "error": "not signed in" }),
                ),
            }
        }
        _ => {
            let ids = identity_values(&req);
            json(
                StatusCode::OK,
                serde_json::json!({ "identity": ids.first().map(|v| lossy(v)), "path": path }),
            )
        }
    };
    Ok(resp)
}

fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn login_form(next: &str, error: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    format!(
        r#"<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Sign in to the test application</h1>
<p id="error">{}</p>
<form method="post" action="/login">
<input type="hidden" name="next" value="{}">
<label>User <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button>
</form></body></html>"#,
        esc(error),
        esc(next)
    )
}

fn html(text: &str) -> Response<TestBody> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(body::full(text.to_owned()))
        .unwrap()
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body::full(v.to_string()))
        .unwrap()
}
