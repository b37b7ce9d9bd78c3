//! `[login]` and `[self_service]`: the login method and the keys each one
//! needs (a key of another method is a problem), and the per-user limits.

use super::*;

pub(super) fn section(raw: raw::Login, p: &mut Problems) -> Option<Login> {
    let public_url = raw
        .public_url
        .as_deref()
        .map(|u| origin_url(p, "login.public_url", u));
    let timeout = p.duration("login.timeout", raw.timeout.as_deref().unwrap_or("5s"));
    let session_ttl = p.duration(
        "login.session_ttl",
        raw.session_ttl.as_deref().unwrap_or("8h"),
    );
    let method = login_method(&raw, public_url.is_some(), p);
    Some(Login {
        method: method?,
        public_url: public_url.transpose().ok()?,
        timeout: timeout?,
        session_ttl: session_ttl?,
    })
}

fn login_method(raw: &raw::Login, has_public_url: bool, p: &mut Problems) -> Option<LoginMethod> {
    fn required<'a>(
        p: &mut Problems,
        key: &str,
        v: &'a Option<String>,
        method: &str,
    ) -> Option<&'a str> {
        if v.is_none() {
            p.push(key, format!("required with method = \"{method}\""));
        }
        v.as_deref()
    }
    // Keys that belong to another method are mistakes, not silently ignored.
    let mut only = |key: &str, set: bool, method: &str| {
        if set {
            p.push(
                &format!("login.{key}"),
                format!("only used with method = \"{method}\""),
            );
        }
    };
    let method = raw.method.as_deref().unwrap_or("");
    if method != "backend_session" {
        only("whoami_url", raw.whoami_url.is_some(), "backend_session");
        only(
            "user_pointer",
            raw.user_pointer.is_some(),
            "backend_session",
        );
        only("login_url", raw.login_url.is_some(), "backend_session");
        only("guest_users", raw.guest_users.is_some(), "backend_session");
    }
    if method != "trusted_header" {
        only("header", raw.header.is_some(), "trusted_header");
        only(
            "trusted_proxies",
            raw.trusted_proxies.is_some(),
            "trusted_header",
        );
    }
    if method != "cas" {
        only("cas_url", raw.cas_url.is_some(), "cas");
    }
    if method != "oidc" {
        for (key, set) in super::oidc::keys_set(raw) {
            only(key, set, "oidc");
        }
    }
    if method != "cas" && method != "oidc" && raw.session_ttl.is_some() {
        p.push(
            "login.session_ttl",
            "only used with method = \"cas\" or \"oidc\"",
        );
    }
    match raw.method.as_deref() {
        Some("backend_session") => {
            let whoami = required(p, "login.whoami_url", &raw.whoami_url, "backend_session");
            let pointer = raw.user_pointer.clone().unwrap_or_else(|| "/email".into());
            let pointer_ok = pointer.is_empty() || pointer.starts_with('/');
            if !pointer_ok {
                p.push(
                    "login.user_pointer",
                    "a JSON pointer starts with '/', e.g. \"/email\"",
                );
            }
            let login_url = raw.login_url.clone().unwrap_or_else(|| "/login".into());
            // A user:password@ is said on its own (and not quoted).
            let login_url_ok = !refused_userinfo(p, "login.login_url", &login_url);
            let login_url_ok = login_url_ok && {
                // `/\host` is `//host` to a browser: another site.
                let path = login_url.starts_with('/')
                    && !login_url.starts_with("//")
                    && !login_url.starts_with("/\\");
                let ok =
                    (path || login_url.starts_with("https://") || login_url.starts_with("http://"))
                        && !login_url.chars().any(|c| c.is_control() || c == ' ');
                if !ok {
                    p.push(
                        "login.login_url",
                        "must be a path (\"/login\") or an http(s):// URL",
                    );
                }
                ok
            };
            let whoami = whoami?;
            if refused_userinfo(p, "login.whoami_url", whoami) {
                return None;
            }
            let whoami_url = match whoami.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                    u
                }
                _ => {
                    p.push(
                        "login.whoami_url",
                        "must be an absolute http:// or https:// URL",
                    );
                    return None;
                }
            };
            if !(pointer_ok && login_url_ok) {
                return None;
            }
            Some(LoginMethod::BackendSession {
                whoami_url,
                user_pointer: pointer,
                login_url,
                guest_users: raw
                    .guest_users
                    .clone()
                    .unwrap_or_else(|| vec!["guest".into()]),
            })
        }
        Some("trusted_header") => {
            let header = p.header_name(
                "login.header",
                raw.header.as_deref().unwrap_or("X-Remote-User"),
            );
            let proxies = match &raw.trusted_proxies {
                Some(list) if !list.is_empty() => p.cidrs("login.trusted_proxies", list),
                _ => {
                    p.push(
                        "login.trusted_proxies",
                        "required with method = \"trusted_header\": the addresses of the SSO proxy",
                    );
                    None
                }
            };
            if let Some(h) = &header {
                if crate::header_names::is_reserved(h) {
                    p.push(
                        "login.header",
                        format!(
                            "{h} is a header keygate reads or manages itself (a credential, \
                             Host, X-Forwarded-For/-Proto/-Host, hop-by-hop, ...); use e.g. X-Remote-User"
                        ),
                    );
                    return None;
                }
            }
            Some(LoginMethod::TrustedHeader {
                header: header?,
                trusted_proxies: proxies?,
            })
        }
        Some("cas") => {
            if !has_public_url {
                p.push(
                    "login.public_url",
                    "required with method = \"cas\": the gateway's address as browsers see it, e.g. \"https://keygate.example.org\" (the CAS service URL is built on it)",
                );
            }
            let url = required(p, "login.cas_url", &raw.cas_url, "cas")?;
            if refused_userinfo(p, "login.cas_url", url) {
                return None;
            }
            match url.parse::<http::Uri>() {
                // Plain http only to a CAS server on this machine: over a
                // network, whoever can answer /p3/serviceValidate picks the
                // signed-in user, and browsers would send passwords in clear.
                Ok(u)
                    if (u.scheme_str() == Some("https")
                        || (u.scheme_str() == Some("http")
                            && u.host().is_some_and(is_loopback)))
                        && u.host().is_some()
                        && u.query().is_none() =>
                {
                    Some(LoginMethod::Cas {
                        cas_url: url.trim_end_matches('/').to_owned(),
                    })
                }
                _ => {
                    p.push(
                        "login.cas_url",
                        "must be an absolute https:// URL without a query (http:// only on a loopback address), e.g. \"https://cas.example.org/cas\"",
                    );
                    None
                }
            }
        }
        Some("oidc") => super::oidc::method(raw, has_public_url, p),
        Some(other) => {
            p.push(
                "login.method",
                format!("{other:?} is not one of \"backend_session\", \"trusted_header\", \"cas\", \"oidc\""),
            );
            None
        }
        None => {
            p.push("login.method", "required when [login] is present");
            None
        }
    }
}

/// `localhost`, 127.0.0.0/8 or `::1` (a URI host, IPv6 in brackets).
pub fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` with nothing after it (a trailing `/` is dropped).
fn origin_url(p: &mut Problems, key: &str, text: &str) -> Result<String, ()> {
    if refused_userinfo(p, key, text) {
        return Err(());
    }
    let trimmed = text.trim_end_matches('/');
    match trimmed.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some()
                && matches!(u.path(), "" | "/")
                && u.query().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => {
            p.push(
                key,
                format!("{text:?} must be scheme://host[:port] only, e.g. \"https://keygate.example.org\""),
            );
            Err(())
        }
    }
}

pub(super) fn self_service(raw: raw::SelfService, p: &mut Problems) -> Option<SelfService> {
    let mut ok = true;
    if !(1..=10_000).contains(&raw.max_live_keys) {
        p.push("self_service.max_live_keys", "must be from 1 to 10000");
        ok = false;
    }
    if raw.creates_per_hour == 0 {
        p.push("self_service.creates_per_hour", "must be at least 1");
        ok = false;
    }
    ok.then_some(SelfService {
        max_live_keys: raw.max_live_keys,
        creates_per_hour: raw.creates_per_hour,
    })
}

/// Whether a URL's authority holds a user name or password (`user:pass@`).
/// A path (`/login?next=https://a@b`) has none.
fn has_userinfo(text: &str) -> bool {
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if !scheme.contains(['/', '?', '#']) => rest,
        Some(_) => return false,
        None if text.starts_with('/') => return false,
        None => text,
    };
    rest.split(['/', '?', '#'])
        .next()
        .is_some_and(|authority| authority.contains('@'))
}

/// Refuse a login URL with a user name or password, without quoting it:
/// keygate sends none, and it would reach browsers (the CAS and OpenID
/// redirects, the `.netrc` line) and logs.
pub(super) fn refused_userinfo(p: &mut Problems, key: &str, text: &str) -> bool {
    let found = has_userinfo(text);
    if found {
        p.push(
            key,
            "a user name or password in the URL is not supported: keygate sends none, and \
             browsers would be sent to it; give the URL without user:password@",
        );
    }
    found
}
