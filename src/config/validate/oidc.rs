//! `[login] method = "oidc"`: the provider, the client and its secret, the
//! claims keygate reads, and `[admin] groups`, which only OIDC fills.

use super::*;

/// The keys only `method = "oidc"` reads.
pub(super) fn keys_set(raw: &raw::Login) -> [(&'static str, bool); 7] {
    [
        ("issuer", raw.issuer.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("user_claim", raw.user_claim.is_some()),
        ("groups_claim", raw.groups_claim.is_some()),
        ("allowed_groups", raw.allowed_groups.is_some()),
        ("scopes", raw.scopes.is_some()),
    ]
}

pub(super) fn method(
    raw: &raw::Login,
    has_public_url: bool,
    p: &mut Problems,
) -> Option<LoginMethod> {
    if !has_public_url {
        p.push(
            "login.public_url",
            "required with method = \"oidc\": the gateway's address as browsers see it, e.g. \"https://keygate.example.org\" (the redirect URI {public_url}/.keygate/login is built on it)",
        );
    }
    let issuer = issuer(raw.issuer.as_deref(), p);
    let client_id = match raw.client_id.as_deref() {
        Some(id) if !id.is_empty() && !id.chars().any(char::is_control) => Some(id.to_owned()),
        Some(_) => {
            p.push(
                "login.client_id",
                "must be non-empty, without control characters",
            );
            None
        }
        None => {
            p.push(
                "login.client_id",
                "required with method = \"oidc\": the client id registered at the provider",
            );
            None
        }
    };
    let client_secret = client_secret(raw.client_secret_file.as_deref(), p);
    let user_claim = claim_name(p, "login.user_claim", raw.user_claim.as_deref(), "email");
    let groups_claim = claim_name(
        p,
        "login.groups_claim",
        raw.groups_claim.as_deref(),
        "groups",
    );
    let allowed_groups = groups(p, "login.allowed_groups", raw.allowed_groups.as_deref());
    let scopes = scopes(raw.scopes.as_deref(), p);
    Some(LoginMethod::Oidc(OidcClient {
        issuer: issuer?,
        client_id: client_id?,
        client_secret: client_secret?,
        user_claim: user_claim?,
        groups_claim: groups_claim?,
        allowed_groups: allowed_groups?,
        scopes: scopes?,
    }))
}

/// `https://`, or `http://` to this machine only (as `cas_url`): whoever
/// answers discovery and the JWKS decides who signs in. Kept exactly as
/// written: the provider's `issuer` and every token's `iss` must equal it.
fn issuer(text: Option<&str>, p: &mut Problems) -> Option<String> {
    let Some(text) = text else {
        p.push(
            "login.issuer",
            "required with method = \"oidc\": the provider's issuer URL, e.g. \"https://id.example.org/realms/main\"",
        );
        return None;
    };
    if login::refused_userinfo(p, "login.issuer", text) {
        return None;
    }
    match text.parse::<http::Uri>() {
        Ok(u)
            if (u.scheme_str() == Some("https")
                || (u.scheme_str() == Some("http")
                    && u.host().is_some_and(login::is_loopback)))
                && u.host().is_some()
                && u.query().is_none()
                && !text.contains('#') =>
        {
            Some(text.to_owned())
        }
        _ => {
            p.push(
                "login.issuer",
                "must be an absolute https:// URL without a query (http:// only on a loopback address), e.g. \"https://id.example.org/realms/main\"",
            );
            None
        }
    }
}

/// `KEYGATE_OIDC_CLIENT_SECRET`, else the file's content without the
/// surrounding whitespace. Never quoted in a message.
fn client_secret(path: Option<&str>, p: &mut Problems) -> Option<ClientSecret> {
    let (source, text) = match (super::env::oidc_client_secret(), path) {
        (Some(from_env), _) => (super::env::OIDC_CLIENT_SECRET.to_owned(), from_env),
        (None, Some(path)) => {
            let path = p.path(path);
            match std::fs::read_to_string(&path) {
                Ok(text) => (path.display().to_string(), text),
                Err(e) => {
                    let shown = path.display();
                    p.push(
                        "login.client_secret_file",
                        format!("cannot read {shown}: {e}"),
                    );
                    return None;
                }
            }
        }
        (None, None) => {
            p.push(
                "login.client_secret_file",
                format!(
                    "required with method = \"oidc\" (or set {})",
                    super::env::OIDC_CLIENT_SECRET
                ),
            );
            return None;
        }
    };
    let secret = text.trim();
    if secret.is_empty() || secret.chars().any(char::is_control) {
        p.push(
            "login.client_secret_file",
            format!("{source}: the client secret must be one non-empty line"),
        );
        return None;
    }
    Some(ClientSecret(secret.to_owned()))
}

fn claim_name(p: &mut Problems, key: &str, text: Option<&str>, default: &str) -> Option<String> {
    let name = text.unwrap_or(default);
    if name.is_empty() || name.chars().any(char::is_control) {
        p.push(
            key,
            "must be a claim name such as \"email\", \"preferred_username\" or \"sub\"",
        );
        return None;
    }
    Some(name.to_owned())
}

/// Group names as the provider spells them (`login.allowed_groups`, `admin.groups`).
pub(super) fn groups(p: &mut Problems, key: &str, list: Option<&[String]>) -> Option<Vec<String>> {
    let list = list.unwrap_or_default();
    let mut ok = true;
    for (i, g) in list.iter().enumerate() {
        if g.is_empty() || g.chars().any(char::is_control) {
            p.push(&format!("{key}[{i}]"), "must be a non-empty group name");
            ok = false;
        }
    }
    ok.then(|| list.to_vec())
}

/// RFC 6749 §3.3 scope tokens; `openid` makes it an OpenID request.
fn scopes(list: Option<&[String]>, p: &mut Problems) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(["openid", "email", "profile"].map(String::from).to_vec());
    };
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        let token = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !token {
            p.push(
                &format!("login.scopes[{i}]"),
                format!("{s:?} is not a scope (printable ASCII, no spaces, quotes or backslashes)"),
            );
            ok = false;
        }
    }
    if !list.iter().any(|s| s == "openid") {
        p.push("login.scopes", "must include \"openid\"");
        ok = false;
    }
    ok.then(|| list.to_vec())
}
