//! `[authz]`: the auth listener that proxies ask (`src/authz/`). Off unless
//! `addr` is set. TLS with the `[listen]` certificate by default; plain HTTP
//! only when asked for, and off loopback only when asked for twice: every
//! API key a client sends crosses that connection.

use super::*;

/// `None` when a value is bad (recorded); `Some(None)` when the listener is off.
pub(super) fn section(
    raw: Option<raw::Authz>,
    listen_plaintext: bool,
    p: &mut Problems,
) -> Option<Option<Authz>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let trusted_proxies = p.cidrs("authz.trusted_proxies", &raw.trusted_proxies);
    // Checked with the listener off too: the operator meant something by it.
    let mut ok = true;
    if !raw.plaintext && raw.plaintext_off_loopback {
        p.push(
            "authz.plaintext_off_loopback",
            "only means something with authz.plaintext = true",
        );
        ok = false;
    }
    let Some(text) = raw.addr.as_deref() else {
        return trusted_proxies.filter(|_| ok).map(|_| None);
    };
    let addr = p.socket_addr("authz.addr", text);
    if raw.trusted_proxies.is_empty() {
        p.push(
            "authz.trusted_proxies",
            "required with authz.addr: the addresses (CIDRs) of the proxies that ask keygate; \
             every other peer is refused, e.g. [\"127.0.0.1/32\"] for a proxy on this host",
        );
        ok = false;
    }
    if listen_plaintext && !raw.plaintext {
        p.push(
            "authz.plaintext",
            "the auth listener's TLS uses the [listen] certificate, and listen.plaintext = true \
             has none: set authz.plaintext = true (on loopback), or give [listen] a certificate",
        );
        ok = false;
    }
    if let Some(a) = addr {
        if raw.plaintext && !a.ip().is_loopback() && !raw.plaintext_off_loopback {
            p.push(
                "authz.plaintext",
                format!(
                    "plain HTTP on {a}, which is not a loopback address: the proxy would send \
                     every API key over the network in clear. Use TLS (remove plaintext), \
                     listen on 127.0.0.1, or, on a network nobody else can read, also set \
                     authz.plaintext_off_loopback = true"
                ),
            );
            ok = false;
        }
    }
    let authz = Authz {
        addr: addr?,
        tls: !raw.plaintext,
        trusted_proxies: trusted_proxies?,
    };
    ok.then_some(Some(authz))
}
