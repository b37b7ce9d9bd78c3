//! The auth listener (`[authz] addr`): keygate as the auth service of a
//! proxy in the data path. `contract`: each route against its proxy's
//! documented contract, asked directly (the answers, the refusals, who may
//! ask, bad descriptions, bodies, Envoy's ext_authz); `proxies`: real nginx,
//! Caddy, Traefik and Envoy in front of a real backend, with the shipped
//! example configurations of deploy/; `binary`: the real binary's start
//! line, access log and metrics.

mod binary;
mod contract;
mod proxies;

use http::{Method, Request};

use crate::support::body;
use crate::support::client::{send, Answer, HttpsClient};
use crate::support::gateway::{builder, Builder, TestGateway};
use crate::support::upstream::Upstream;

/// A gateway whose auth listener (TLS, on 127.0.0.1:0) trusts 127.0.0.1,
/// with `anonymous = "reject"`; `shape` adds to the config.
async fn gateway(shape: impl FnOnce(&mut Builder)) -> (Upstream, TestGateway) {
    let up = Upstream::start().await;
    let mut b = builder(&up.url());
    b.set("auth", "anonymous = \"reject\"")
        .set("authz", "addr = \"127.0.0.1:0\"")
        .set("authz", "trusted_proxies = [\"127.0.0.1/32\"]");
    shape(&mut b);
    let gw = b.start().await;
    (up, gw)
}

/// One check: `method` on the auth listener's `path`, with `headers`.
async fn ask(
    c: &HttpsClient,
    gw: &TestGateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(gw.authz_url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(c, req.body(body::empty()).unwrap()).await
}
