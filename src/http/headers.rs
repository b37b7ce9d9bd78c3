//! Header rules applied to every request and response that crosses keygate:
//! hop-by-hop removal (RFC 9110 §7.6.1), removal of every client copy of the
//! identity headers keygate itself sets, and `X-Forwarded-*`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::header_names::{
    hop_by_hop_index, CONNECTION_AT, FORWARDED, HOP_BY_HOP, HOP_BY_HOP_COUNT, OWN_COOKIE_PREFIX,
    TRANSFER_ENCODING_AT, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
};
pub use crate::header_names::{KEY_EXPIRES, KEY_ID};

/// Remove hop-by-hop headers, including those the `Connection` header names
/// (never `Host`, which every HTTP/1.1 request needs). With `websocket` (a
/// WebSocket handshake), `Upgrade: websocket` and `Connection: upgrade` are
/// what is forwarded, since the upgrade is what is being forwarded.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    let found = Found::scan(headers);
    remove_found_hop_by_hop(headers, &found, websocket);
}

/// A backend's (non-101) response headers as the client may get them:
/// hop-by-hop headers gone, and what only keygate may say: the key's
/// expiry, and keygate's own cookies (`__Host-keygate-*`), which a backend
/// could otherwise set to sign a browser into someone else's self-service
/// session (keygate never shows the backend those cookies either).
pub fn for_client(headers: &mut HeaderMap) {
    let found = Found::scan(headers);
    remove_found_hop_by_hop(headers, &found, false);
    if found.key_expires {
        headers.remove(KEY_EXPIRES);
    }
    if found.set_cookie {
        remove_own_set_cookies(headers);
    }
}

/// Which of the fields the header rules act on a message carries, found in
/// one pass: most messages carry none, or only `Connection: keep-alive`,
/// and every lookup of a name hashes it.
struct Found {
    hop_by_hop: [bool; HOP_BY_HOP_COUNT],
    upgrade: bool,
    /// `Content-Length` fields (HTTP/2 lets the same value come twice).
    content_lengths: u8,
    set_cookie: bool,
    key_expires: bool,
}

impl Found {
    fn scan(headers: &HeaderMap) -> Found {
        let mut f = Found {
            hop_by_hop: [false; HOP_BY_HOP_COUNT],
            upgrade: false,
            content_lengths: 0,
            set_cookie: false,
            key_expires: false,
        };
        // Every field, repeated names too (as many as there are names, mostly).
        for (name, _) in headers.iter() {
            match hop_by_hop_index(name) {
                Some(i) => f.hop_by_hop[i] = true,
                None => {
                    f.upgrade |= name == header::UPGRADE;
                    f.content_lengths = f
                        .content_lengths
                        .saturating_add(u8::from(name == header::CONTENT_LENGTH));
                    f.set_cookie |= name == header::SET_COOKIE;
                    f.key_expires |= name == KEY_EXPIRES;
                }
            }
        }
        f
    }
}

/// The hop-by-hop rules, on what `Found::scan` saw.
fn remove_found_hop_by_hop(headers: &mut HeaderMap, found: &Found, websocket: bool) {
    // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    if found.hop_by_hop[CONNECTION_AT] && !only_keep_alive_or_close(headers) {
        for name in listed_present(headers, websocket) {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(found.hop_by_hop) {
        if present {
            headers.remove(name);
        }
    }
    // `Transfer-Encoding` beside `Content-Length`: the body was read by the
    // former, so the latter is wrong and must go (RFC 9112 §6.3); kept, it
    // would cut the body short where keygate sends it on.
    if found.hop_by_hop[TRANSFER_ENCODING_AT] && found.content_lengths > 0 {
        headers.remove(header::CONTENT_LENGTH);
    } else if found.content_lengths > 1 {
        // The same length in two fields (HTTP/2's and hyper's checks let
        // only equal ones through) reads as `2, 2` to a backend, which is
        // no length (RFC 9110 §8.6): sent once.
        if let Some(one) = headers.get(header::CONTENT_LENGTH).cloned() {
            headers.insert(header::CONTENT_LENGTH, one);
        }
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        // Only the protocol keygate tunnels, whatever else the client offered.
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    } else if found.upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// Remove every `Set-Cookie` of one of keygate's own cookies, in any case,
/// and the nameless ones whose value reads as one (`=__Host-keygate-…`).
pub fn remove_own_set_cookies(headers: &mut HeaderMap) {
    fn ours(v: &HeaderValue) -> bool {
        let pair = v.as_bytes().trim_ascii_start();
        let pair = pair.strip_prefix(b"=").unwrap_or(pair).trim_ascii_start();
        let prefix = OWN_COOKIE_PREFIX.as_bytes();
        pair.len() >= prefix.len() && pair[..prefix.len()].eq_ignore_ascii_case(prefix)
    }
    if !headers.get_all(header::SET_COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    tracing::warn!("removed a Set-Cookie of keygate's own cookies from an upstream response");
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Whether every `Connection` value is just `keep-alive` or `close`, as
/// nearly every message's is (a backend's `Connection: keep-alive` on each
/// response): they name no other header, so the token scan is skipped.
fn only_keep_alive_or_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().all(|v| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
    })
}

/// The headers that `Connection` names and the message carries, other than
/// the hop-by-hop ones removed anyway (`keep-alive`, `connection`), `Host`,
/// and `Upgrade` when the upgrade is forwarded. One pass over the tokens;
/// nothing is allocated unless a listed header is there.
fn listed_present(headers: &HeaderMap, upgrade: bool) -> Vec<HeaderName> {
    tokens(headers, &header::CONNECTION)
        .filter(|t| {
            !HOP_BY_HOP
                .iter()
                .any(|h| t.eq_ignore_ascii_case(h.as_str()))
        })
        .filter(|t| !t.eq_ignore_ascii_case("host"))
        .filter(|t| !(upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter(|t| headers.contains_key(*t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

/// Whether `value` is a `Host` field value (RFC 9110 §7.2: `uri-host [ ":"
/// port ]`, RFC 3986 §3.2.2; empty is allowed): none of the characters that
/// would end the host in a URL built from it (`/`, `?`, `#`, `@`), nor a
/// space, a control or a non-ASCII byte. One table lookup per byte: it
/// runs for every HTTP/1.1 request.
pub fn is_host(value: &[u8]) -> bool {
    value.iter().all(|&b| HOST_BYTES[usize::from(b)])
}

/// The bytes of `uri-host [ ":" port ]`: unreserved, sub-delims, `%`, `:`
/// and the brackets of an IPv6 literal; but no `,`, which no DNS name holds
/// and which makes `X-Forwarded-Host: good.example,evil.example` a list
/// (Werkzeug reads the last, Express the first).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+;=%:[]";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether an HTTP/1.1 request's headers ask to switch to WebSocket (RFC
/// 6455 §4.1), the one upgrade keygate tunnels. Any other protocol (`h2c`
/// above all, a known way to smuggle requests past a proxy's checks) goes
/// with the other hop-by-hop headers, and the request is forwarded as a
/// plain one.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &header::UPGRADE, "websocket")
        && has_token(headers, &header::CONNECTION, "upgrade")
}

/// Whether a comma-separated list in `name`'s values holds `token` (any case).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The items of the comma-separated lists in `name`'s values, trimmed.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The headers only keygate may set. A client copy under any spelling that a
/// backend might read as the same header (case, `_`, `-` or `.`) is removed:
/// CGI-style stacks and some frameworks map `X_Remote_User` and
/// `X-Remote-User` to the same variable.
#[derive(Debug, Clone)]
pub struct Spoofable {
    /// Normalized forms (lowercase, `_` and `.` as `-`).
    names: Vec<Vec<u8>>,
}

impl Spoofable {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a HeaderName>) -> Self {
        let names = names
            .into_iter()
            .map(|n| n.as_str().bytes().map(normalize).collect())
            .collect();
        Spoofable { names }
    }

    /// Remove every header whose normalized name is one of ours.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let mut found: Option<Vec<HeaderName>> = None;
        for name in headers.keys() {
            if self.matches(name) {
                found.get_or_insert_with(Vec::new).push(name.clone());
            }
        }
        for name in found.into_iter().flatten() {
            tracing::debug!(header = %name, "removed a client-supplied identity header");
            headers.remove(&name);
        }
    }

    fn matches(&self, name: &HeaderName) -> bool {
        let name = name.as_str().as_bytes();
        self.names.iter().any(|ours| {
            ours.len() == name.len() && ours.iter().zip(name).all(|(a, b)| *a == normalize(*b))
        })
    }
}

fn normalize(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// Set `X-Forwarded-For/-Proto/-Host`. A client's own values are kept (and
/// `X-Forwarded-For` extended) only when `peer` is a trusted proxy; from
/// anyone else they are replaced, so the backend can believe them.
/// `peer_header` is `peer` as a header value (made once per connection).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_header: &HeaderValue,
    tls: bool,
    host: Option<HeaderValue>,
    trusted_proxies: &[IpNet],
) {
    let trusted = trusted_proxies.iter().any(|net| net.contains(&peer));
    // One pass over the names: most requests carry none of these, and a
    // lookup of an absent name still hashes it.
    let (mut xff, mut proto, mut fwd_host, mut forwarded) = (false, false, false, false);
    for name in headers.keys() {
        xff |= name == X_FORWARDED_FOR;
        proto |= name == X_FORWARDED_PROTO;
        fwd_host |= name == X_FORWARDED_HOST;
        forwarded |= name == FORWARDED;
    }
    // A trusted proxy's list is extended; its lines are one list (RFC 9110
    // §5.3), as `client_ip` reads them, so the backend and keygate's log
    // name the same client.
    let prior = || {
        let lines: Option<Vec<&str>> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|v| v.to_str().ok())
            .collect();
        lines.map(|lines| lines.join(", "))
    };
    let extended = (trusted && xff)
        .then(prior)
        .flatten()
        .and_then(|prior| HeaderValue::try_from(format!("{prior}, {peer}")).ok());
    headers.insert(
        X_FORWARDED_FOR,
        extended.unwrap_or_else(|| peer_header.clone()),
    );

    if !(trusted && proto) {
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trusted && fwd_host) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h);
            }
            None if fwd_host => {
                headers.remove(X_FORWARDED_HOST);
            }
            None => {}
        }
    }
    if forwarded && !trusted {
        headers.remove(FORWARDED);
    }
}

/// An `X-Forwarded-For` entry's address: `192.0.2.7`, `2001:db8::7`, or
/// with the port some proxies append (`192.0.2.7:51234`, `[2001:db8::7]:443`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        // A dual-stack proxy's `::ffff:a.b.c.d` is the IPv4 client it was.
        .map(|ip| ip.to_canonical())
}

/// Entries of `X-Forwarded-For` looked at, from the right, at most: a
/// chain of proxies is a few hops, and a client's own list is not walked.
const MAX_FORWARDED_HOPS: usize = 16;

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the rightmost address in `X-Forwarded-For` that is not itself a trusted
/// proxy. Each trusted proxy appended the address it saw, so behind a
/// chain (a load balancer, then nginx) the last entry is the first proxy's
/// address: taken as the client, every client behind it would share one
/// failed-authentication limit. Entries left of the first untrusted one
/// are what the client said of itself and are not believed. Lines count
/// as one list (RFC 9110 §5.3): a proxy that adds a line of its own comes last.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let entries = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .map_while(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','))
        .take(MAX_FORWARDED_HOPS);
    let mut client = peer;
    for entry in entries {
        match forwarded_ip(entry.trim()) {
            Some(ip) if trusted(&ip) => client = ip,
            Some(ip) => return ip,
            // Unreadable: the proxies' hops seen so far are all there is to go by.
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_names::tests::map;

    #[test]
    fn strips_every_spelling_of_the_identity_headers() {
        let ours = [HeaderName::from_static("x-remote-user"), KEY_ID];
        let spoof = Spoofable::new(&ours);
        let mut h = map(&[
            ("X-Remote-User", "a"),
            ("x_remote_user", "b"),
            ("X.Remote.User", "c"),
            ("x-remote_user", "d"),
            ("X_KEYGATE_KEY_ID", "e"),
            ("x-remote-users", "kept"),
            ("accept", "*/*"),
        ]);
        spoof.strip(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-remote-users"]);
    }

    #[test]
    fn removes_hop_by_hop_and_connection_listed_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "close,x-other-hop , connection, x-absent"),
            ("x-secret-hop", "1"),
            ("x-other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic Zm9v"),
            ("x-end-to-end", "kept"),
        ]);
        remove_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["x-end-to-end"]);
    }

    #[test]
    fn a_plain_keep_alive_skips_the_scan_and_a_second_value_does_not() {
        let mut h = map(&[("connection", "Keep-Alive"), ("x-app", "kept")]);
        remove_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["x-app"]);

        let mut h = map(&[
            ("connection", "keep-alive"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("x-app", "kept"),
        ]);
        remove_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["x-app"], "the second Connection value names a hop");
    }

    #[test]
    fn keeps_upgrade_for_websocket_handshakes() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "h2c, WebSocket")]);
        assert!(is_websocket_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket", "h2c is not offered on");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        for (connection, upgrade) in [
            ("Upgrade, HTTP2-Settings", "h2c"),
            ("upgrade", "TLS/1.2"),
            ("keep-alive", "websocket"),
        ] {
            let h = map(&[("connection", connection), ("upgrade", upgrade)]);
            assert!(!is_websocket_upgrade(&h), "{connection} / {upgrade}");
        }
    }

    #[test]
    fn a_backend_answer_loses_a_stale_length_and_keygates_cookies() {
        let mut h = map(&[
            ("content-length", "3"),
            ("transfer-encoding", "chunked"),
            ("keygate-key-expires", "2020-01-01T00:00:00Z"),
            ("set-cookie", "__Host-keygate-session=x; Path=/"),
            ("set-cookie", "app=1"),
            ("set-cookie", " =__HOST-keygate-csrf=y"),
            ("set-cookie", "keygate=kept"),
        ]);
        for_client(&mut h);
        let left: Vec<_> = h.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        assert_eq!(
            left,
            [r#"set-cookie: "app=1""#, r#"set-cookie: "keygate=kept""#]
        );
        let mut h = map(&[("content-length", "3"), ("x-app", "kept")]);
        for_client(&mut h);
        assert_eq!(h["content-length"], "3", "a plain length stays");
    }

    #[test]
    fn a_host_is_a_host() {
        for good in [
            "a.example",
            "a.example:8443",
            "127.0.0.1",
            "[::1]:443",
            "xn--bcher-kva.example",
            "",
        ] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "a b",
            "a/b",
            "a?b",
            "a#b",
            "good.example@evil.example",
            "good.example,evil.example",
            "a\\b",
            "\"a\"",
            "a\tb",
            "bäd",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn connection_never_names_host_away() {
        let mut h = map(&[("connection", "host, x-hop"), ("host", "a"), ("x-hop", "1")]);
        remove_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, ["host"]);
    }

    #[test]
    fn the_client_is_the_last_address_the_trusted_proxy_saw() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7, 198.51.100.7"),
        ]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
    }

    #[test]
    fn behind_a_chain_of_trusted_proxies_the_client_is_the_first_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let client = |pairs: &[(&str, &str)]| client_ip(proxy, &map(pairs), &trusted);
        // A load balancer (10.0.0.5) then nginx, which appended the balancer.
        assert_eq!(
            client(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")]),
            ip("198.51.100.7")
        );
        // The balancer's own line, then nginx's.
        assert_eq!(
            client(&[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-for", "10.0.0.5")
            ]),
            ip("198.51.100.7")
        );
        // Only proxies: the farthest one; an unreadable hop stops the walk.
        assert_eq!(
            client(&[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]),
            ip("10.0.0.9")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.5")]),
            ip("10.0.0.5")
        );
        assert_eq!(client(&[]), proxy);
    }

    #[test]
    fn a_forwarded_address_with_its_port_is_the_address() {
        // Azure Application Gateway and some CDNs append `address:port`.
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        for (sent, client) in [
            ("198.51.100.7:51234", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("6.6.6.6, 198.51.100.7:51234, 10.0.0.5:80", "198.51.100.7"),
            ("198.51.100.7, ::ffff:10.0.0.5", "198.51.100.7"),
        ] {
            let h = map(&[("x-forwarded-for", sent)]);
            assert_eq!(
                client_ip(proxy, &h, &trusted),
                client.parse::<IpAddr>().unwrap(),
                "{sent}"
            );
        }
    }

    #[test]
    fn forwarded_for_is_replaced_unless_the_peer_is_trusted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // `pairs` forwarded over plain HTTP from `peer`.
        let forward = |peer: &'static str, pairs: &[(&str, &str)]| {
            let mut h = map(pairs);
            let ip: IpAddr = peer.parse().unwrap();
            set_forwarded(
                &mut h,
                ip,
                &HeaderValue::from_static(peer),
                false,
                None,
                &trusted,
            );
            h
        };
        let h = forward(
            "192.0.2.1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "http");

        let h = forward(
            "10.1.2.3",
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");

        // A trusted proxy's lines are one list, as client_ip reads them.
        let h = forward(
            "10.1.2.3",
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-for", "10.0.0.5"),
            ],
        );
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 10.0.0.5, 10.1.2.3");
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &trusted).to_string(), "198.51.100.7");
    }

    #[test]
    fn forwarded_host_and_forwarded_are_kept_only_from_a_trusted_peer() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let client = [
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
        ];
        let forward = |peer: &str, host: Option<&'static str>| {
            let mut h = map(&client);
            set_forwarded(
                &mut h,
                peer.parse().unwrap(),
                &HeaderValue::from_str(peer).unwrap(),
                true,
                host.map(HeaderValue::from_static),
                &trusted,
            );
            h
        };
        let h = forward("192.0.2.1", Some("app.example"));
        assert_eq!(h["x-forwarded-host"], "app.example");
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        let h = forward("192.0.2.1", None);
        assert!(!h.contains_key("x-forwarded-host"));

        let h = forward("10.0.0.2", Some("app.example"));
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(h["forwarded"], "for=6.6.6.6");
        // Two X-Forwarded-For fields are one list (RFC 9110 §5.3), extended
        // as one: a backend that reads it from the right, as keygate does,
        // finds the client its trusted proxy saw.
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 7.7.7.7, 10.0.0.2");
    }
}
