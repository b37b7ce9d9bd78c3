//! Valid settings that are probably a mistake: `keygate check` prints them
//! as warnings (and still exits 0), `keygate serve` logs them at start.

use super::{Config, ConfigProblem, LoginMethod};

/// Every warning for `config`, each named by its TOML key.
pub fn warnings(config: &Config) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    // "0.0.0.0/0" (or "::/0") makes every client a trusted proxy: what it
    // trusts them with anyone on the network can then say.
    let mut everyone = |key: &str, list: &[ipnet::IpNet], what: &str| {
        if let Some((i, net)) = list.iter().enumerate().find(|(_, n)| n.prefix_len() == 0) {
            out.push(ConfigProblem::new(
                format!("{key}[{i}]"),
                format!("{net} trusts every address: any client can {what}; list only the proxies' addresses"),
            ));
        }
    };
    everyone(
        "listen.trusted_proxies",
        &config.listen.trusted_proxies,
        "set X-Forwarded-For and so choose the address the failed-authentication limit counts",
    );
    if let Some(authz) = &config.authz {
        everyone(
            "authz.trusted_proxies",
            &authz.trusted_proxies,
            "ask the auth listener, naming any client in X-Forwarded-For",
        );
    }
    if let Some(LoginMethod::TrustedHeader {
        header,
        trusted_proxies,
    }) = config.login.as_ref().map(|l| &l.method)
    {
        everyone(
            "login.trusted_proxies",
            trusted_proxies,
            &format!("send {header} and be signed in as whoever it names"),
        );
    }
    // rustls serves whatever pair it is given; clients refuse it.
    if let Some(tls) = &config.listen.tls {
        if let Some(problem) = crate::tls::validity_problem(&tls.cert) {
            out.push(ConfigProblem::new("listen.tls_cert", problem));
        }
    }
    // On the auth listener every request comes from the proxy that asks,
    // carrying its client's headers: a login header believed from that
    // proxy is the client's word unless the proxy clears it first.
    if let (Some(authz), Some(login)) = (&config.authz, &config.login) {
        if let LoginMethod::TrustedHeader {
            header,
            trusted_proxies,
        } = &login.method
        {
            let overlap = trusted_proxies.iter().any(|l| {
                authz
                    .trusted_proxies
                    .iter()
                    .any(|a| l.contains(a) || a.contains(l))
            });
            if overlap {
                out.push(ConfigProblem::new(
                    "login.trusted_proxies",
                    format!(
                        "includes proxies that ask the auth listener ([authz] trusted_proxies): \
                         keygate takes their {header} as the signed-in user, so each must clear \
                         a client's copy before asking (the shipped proxy configurations clear \
                         X-Remote-User; docs/external-auth.md)"
                    ),
                ));
            }
        }
    }
    if let Some(login) = &config.login {
        // An SSO proxy in front serves the page on its own address; without
        // public_url keygate expects https://<Host it receives>, and every
        // write from the page is refused.
        if matches!(login.method, LoginMethod::TrustedHeader { .. }) && login.public_url.is_none() {
            out.push(ConfigProblem::new(
                "login.public_url",
                "not set with method = \"trusted_header\": if the SSO proxy in front serves the \
                 page on another address than https://<the Host keygate receives>, the page's \
                 writes (Generate API Key, Revoke) are refused; set it to the address browsers \
                 use, e.g. \"https://sso.example.org\"",
            ));
        }
    }
    // Every key would be "expiring" from its first minute: a notice at
    // creation and the expiry header on every answer.
    if let (Some(max), Some(longest)) = (
        config.keys.max_ttl,
        config.keys.lifecycle.warn_before.first(),
    ) {
        if *longest >= max {
            out.push(ConfigProblem::new(
                "keys.warn_before",
                format!(
                    "{} is not shorter than keys.max_ttl ({}): every key would be warned about \
                     (key.expiring, KeyGate-Key-Expires) from the moment it is made; give \
                     offsets shorter than the keys' lifetime",
                    crate::settings::short_duration(*longest),
                    crate::settings::short_duration(max)
                ),
            ));
        }
    }
    // Events name users and key ids: over plain HTTP anyone on the path
    // reads them (the signature only proves who sent them).
    for (i, w) in config.webhooks.iter().enumerate() {
        let host = w.url.host().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if w.url.scheme_str() == Some("http") && !loopback {
            out.push(ConfigProblem::new(
                format!("webhooks[{i}].url"),
                "plain http: the events (users, key ids, labels) cross the network readable by \
                 anyone on the path; use https",
            ));
        }
    }
    out
}
