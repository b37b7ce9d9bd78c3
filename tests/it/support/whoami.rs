//! A small real web application with a LabKey-style who-am-I endpoint, for
//! `[login] method = "backend_session"`: sessions are cookies it hands out
//! (`sign_in`), `GET /login-whoami.api` answers `{"email": USER}` for a known
//! session and 401 otherwise, `GET /hang` never answers, `GET /broken` is a 500.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::body::{self, TestBody};
use super::gateway::Builder;

pub const COOKIE: &str = "app_session";

pub struct WhoAmI {
    pub addr: SocketAddr,
    sessions: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WhoAmI {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WhoAmI {
    pub async fn start() -> WhoAmI {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let s = sessions.clone();
        let task = super::serve_http1(listener, move |_, req| answer(s.clone(), req));
        WhoAmI {
            addr,
            sessions,
            task,
        }
    }

    /// `login.whoami_url`.
    pub fn whoami_url(&self) -> String {
        format!("http://{}/login-whoami.api", self.addr)
    }

    /// `[login]` for this app: `backend_session` against its who-am-I URL,
    /// `user_pointer = "/email"`, `login_url = "/login?next=/.keygate/keys"`.
    pub fn configure(&self, b: &mut Builder) {
        b.set("login", "method = \"backend_session\"")
            .set("login", &format!("whoami_url = \"{}\"", self.whoami_url()))
            .set("login", "user_pointer = \"/email\"")
            .set("login", "login_url = \"/login?next=/.keygate/keys\"");
    }

    /// A new session of `user`: the `name=value` a browser would send.
    pub fn sign_in(&self, user: &str) -> String {
        let token = format!("s{}", self.sessions.lock().unwrap().len() + 1000);
        self.sessions
            .lock()
            .unwrap()
            .insert(token.clone(), user.to_owned());
        format!("{COOKIE}={token}")
    }
}

async fn answer(
    sessions: Arc<Mutex<HashMap<String, String>>>,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    if req.uri().path() == "/hang" {
        std::future::pending::<()>().await;
    }
    let user = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        // UTF-8 too, as browsers send it and real applications read it.
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .flat_map(|v| {
            v.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .filter(|(k, _)| *k == COOKIE)
                .map(|(_, v)| v.to_owned())
                .collect::<Vec<_>>()
        })
        .next()
        .and_then(|v| sessions.lock().unwrap().get(&v).cloned());
    let (status, json) = match (req.uri().path(), user) {
        ("/login-whoami.api", Some(u)) => {
            (StatusCode::OK, serde_json::json!({ "email": u, "id": 7 }))
        }
        ("/broken", _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": "database down" }),
        ),
        ("/login-whoami.api", None) => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "not signed in" }),
        ),
        _ => (StatusCode::NOT_FOUND, serde_json::json!({})),
    };
    let mut resp = Response::new(body::full(json.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    Ok(resp)
}
