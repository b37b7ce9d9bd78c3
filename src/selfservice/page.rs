//! The "External Tool Access" page and keygate's other small HTML pages,
//! written as strings. Every value that comes from a user, the store or the
//! config goes through `escape`; scripts and styles come only from
//! `/.keygate/static/` (see the Content-Security-Policy in `mod.rs`).

pub use crate::http::html::escape;
use crate::http::html::head;
use crate::keys::{rfc3339, KeyRecord};

/// "2026-11-27 04:05 UTC", as `app.js` writes it too.
pub fn when(secs: u64) -> String {
    let t = rfc3339(secs);
    format!("{} UTC", t.replace('T', " ").get(..16).unwrap_or(&t))
}

/// The head of a page with a script (`/.keygate/static/{script}`) that
/// writes: the CSRF token it sends back.
pub fn app_head(title: &str, csrf_token: &str, script: &str) -> String {
    head(
        title,
        &format!(
            "<meta name=\"csrf-token\" content=\"{}\">\n<script src=\"/.keygate/static/{script}\" defer></script>\n",
            escape(csrf_token)
        ),
    )
}

/// " Sign out" as a link, where keygate keeps the session itself.
pub fn sign_out(logout: Option<&str>) -> String {
    logout.map_or(String::new(), |href| {
        format!(" <a href=\"{}\">Sign out</a>", escape(href))
    })
}

/// What the signed-in user sees.
pub struct KeysPage<'a> {
    pub user: &'a str,
    /// The gateway's host name as the browser knows it (the `.netrc` line).
    pub host: &'a str,
    pub csrf_token: &'a str,
    pub keys: &'a [KeyRecord],
    pub ttl_choices: &'a [String],
    pub default_ttl: &'a str,
    /// Shown as "Sign out" (CAS: keygate's own session).
    pub logout: Option<&'a str>,
    /// `keys.warn_before`'s longest offset, seconds: keys expiring within it
    /// are in the banner.
    pub warn_window: Option<u64>,
    /// An admin: the link to the console ("External Tool Settings") on top.
    pub console: bool,
}

pub fn keys_page(p: &KeysPage<'_>) -> String {
    let mut html = app_head("External Tool Access", p.csrf_token, "app.js");
    let logout = sign_out(p.logout);
    let options: String = p
        .ttl_choices
        .iter()
        .map(|c| {
            let selected = if c == p.default_ttl { " selected" } else { "" };
            format!(
                "<option value=\"{v}\"{selected}>{text}</option>",
                v = escape(c),
                text = escape(&lifetime_text(c))
            )
        })
        .collect();
    let rows: String = p.keys.iter().map(key_row).collect();
    let banner = expiring_banner(p);
    let console = if p.console {
        "<nav><a id=\"console-link\" href=\"/.keygate/admin\">External Tool Settings</a></nav>\n"
    } else {
        ""
    };
    html.push_str(&format!(
        r#"<body>
<header>
{console}<h1>External Tool Access</h1>
<p>Signed in as <strong id="user">{user}</strong>.{logout}</p>
</header>
<main>
{banner}
<section aria-labelledby="new-heading">
<h2 id="new-heading">New API key</h2>
<p>Scripts and tools (curl, git, R, Python) sign in with HTTP Basic auth: user name
<code>apikey</code>, password the key. In <code>~/.netrc</code>:
<code>machine {host} login apikey password KEY</code>.</p>
<form id="generate">
<p><label for="label">Label</label>
<input id="label" name="label" maxlength="200" autocomplete="off" placeholder="e.g. laptop R scripts"></p>
<p><label for="lifetime">Lifetime</label>
<select id="lifetime" name="lifetime">{options}</select></p>
<p><button type="submit" id="generate-button">Generate API Key</button></p>
</form>
<div id="new-key-panel" hidden>
<p>Your new API key. Copy it now: it is shown only once.</p>
<p><code id="new-key"></code></p>
<p><button type="button" id="copy">Copy to Clipboard</button>
<button type="button" id="done">Done</button></p>
</div>
<p id="status" role="status" aria-live="polite"></p>
</section>
<section aria-labelledby="keys-heading">
<h2 id="keys-heading">Your API keys</h2>
<table id="keys" aria-labelledby="keys-heading">
<thead><tr><th scope="col">Label</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
<tbody>{rows}</tbody>
</table>
<p id="no-keys"{hidden}>You have no API keys.</p>
</section>
{found}
</main>
</body>
</html>
"#,
        user = escape(p.user),
        host = escape(p.host),
        hidden = if p.keys.is_empty() { "" } else { " hidden" },
        found = crate::leaks::page::FOUND_KEY_FORM,
    ));
    html
}

fn label_of(r: &KeyRecord) -> &str {
    if r.label.is_empty() {
        "(no label)"
    } else {
        &r.label
    }
}

fn key_row(r: &KeyRecord) -> String {
    let label = label_of(r);
    format!(
        "<tr data-key-id=\"{id}\"><td>{label}</td><td>{created}</td><td>{expires}</td><td>{used}</td>\
         <td>{rotate}<button type=\"button\" class=\"revoke\" aria-label=\"Revoke {label}\">Revoke</button></td></tr>\n",
        id = escape(r.id.as_str()),
        label = escape(label),
        created = when(r.created_at),
        expires = r.expires_at.map_or("never".into(), when),
        used = r.last_used.map_or("never".into(), when),
        rotate = rotate_button(r),
    )
}

/// Rotate, for a key not rotated yet; a rotated one says it is replaced.
fn rotate_button(r: &KeyRecord) -> String {
    match r.rotated_to {
        Some(_) => "<span class=\"replaced\">Replaced</span> ".into(),
        None => format!(
            "<button type=\"button\" class=\"rotate\" aria-label=\"Rotate {}\">Rotate</button> ",
            escape(label_of(r))
        ),
    }
}

/// The keys that expire within the longest `warn_before` offset (and were
/// not rotated yet), each with Rotate; hidden when there are none. `app.js`
/// redraws it from `data-window` after a change.
fn expiring_banner(p: &KeysPage<'_>) -> String {
    let window = p.warn_window.unwrap_or(0);
    let soon = crate::keys::unix_now().saturating_add(window);
    let items: String = p
        .keys
        .iter()
        .filter(|r| p.warn_window.is_some() && r.rotated_to.is_none())
        .filter(|r| r.expires_at.is_some_and(|e| e <= soon))
        .map(|r| {
            format!(
                "<li data-key-id=\"{id}\"><strong>{label}</strong> expires {expires}. \
                 <button type=\"button\" class=\"rotate\" aria-label=\"Rotate {label}\">Rotate</button></li>\n",
                id = escape(r.id.as_str()),
                label = escape(label_of(r)),
                expires = r.expires_at.map_or("never".into(), when),
            )
        })
        .collect();
    format!(
        "<section id=\"expiring\" role=\"alert\" data-window=\"{window}\"{hidden}>\n\
         <h2>Keys expiring soon</h2>\n\
         <p>Scripts using these keys stop working when they expire. Rotate gives a new key \
         (shown once) and keeps the old one working for a while, so you can switch.</p>\n\
         <ul id=\"expiring-keys\">{items}</ul>\n</section>",
        hidden = if items.is_empty() { " hidden" } else { "" },
    )
}

/// "30d" -> "30 days", "never" -> "Never expires".
fn lifetime_text(choice: &str) -> String {
    let c = choice.trim();
    if c == "never" {
        return "Never expires".into();
    }
    let (n, unit) = c.split_at(c.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(c.len()));
    let word = match unit {
        "d" => "day",
        "h" => "hour",
        "m" => "minute",
        "s" => "second",
        _ => return c.to_owned(),
    };
    match n {
        "1" => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}

/// A page that explains why there is nothing to do here, with an optional
/// link onwards (`href`, text). `text` is plain text; it is escaped here.
pub fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let mut html = head(title, "");
    let link = link.map_or(String::new(), |(href, label)| {
        format!(
            "<p><a id=\"login\" href=\"{}\">{}</a></p>\n",
            escape(href),
            escape(label)
        )
    });
    html.push_str(&format!(
        "<body>\n<main>\n<h1>{}</h1>\n<p>{}</p>\n{link}</main>\n</body>\n</html>\n",
        escape(title),
        escape(text)
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_in_text_and_attributes() {
        assert_eq!(
            escape(r#"<img src=x onerror="alert('1')">&"#),
            "&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(lifetime_text("1d"), "1 day");
        assert_eq!(lifetime_text("90d"), "90 days");
        assert_eq!(lifetime_text("never"), "Never expires");
        assert_eq!(lifetime_text("1h 30m"), "1h 30m");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
    }
}
