//! The console's HTML: the settings form filled in on the server, the
//! grid's and the audit log's frames that `console.js` fills from the JSON
//! API. Every value goes through `escape`; no inline script or style.

use super::super::page::{app_head, escape, sign_out};
use crate::settings::Settings;

pub struct ConsolePage<'a> {
    pub user: &'a str,
    pub csrf_token: &'a str,
    pub settings: &'a Settings,
    pub logout: Option<&'a str>,
}

pub fn console_page(p: &ConsolePage<'_>) -> String {
    let mut html = app_head("External Tool Settings", p.csrf_token, "console.js");
    let logout = sign_out(p.logout);
    let s = p.settings;
    html.push_str(&format!(
        r#"<body class="console">
<header>
<nav><a href="/.keygate/keys">External Tool Access</a>{logout}</nav>
<h1>External Tool Settings</h1>
<p>Signed in as <strong id="user">{user}</strong>, an administrator.</p>
</header>
<main>
<section aria-labelledby="settings-heading">
<h2 id="settings-heading">Settings</h2>
<form id="settings" novalidate>
<p><input type="checkbox" id="self_service" name="self_service"{checked}>
<label for="self_service" class="inline">Users may create their own API keys (self-service)</label></p>
{choices}
{default}
{max}
<p><button type="submit" id="save-settings">Save settings</button></p>
<p id="settings-status" role="status" aria-live="polite"></p>
</form>
</section>
<section aria-labelledby="keys-heading">
<h2 id="keys-heading">API keys</h2>
<form id="filter" role="search" aria-label="Filter keys">
<p><label for="f-user">User</label> <input id="f-user" name="user" autocomplete="off">
<label for="f-label">Label</label> <input id="f-label" name="label" autocomplete="off"></p>
<p><label for="f-expires">Expires before</label> <input id="f-expires" name="expires_before" type="date">
<label for="f-sort">Sort</label> <select id="f-sort" name="sort">
<option value="created:desc">Created, newest first</option>
<option value="created:asc">Created, oldest first</option>
<option value="expires:asc">Expires, soonest first</option>
<option value="expires:desc">Expires, latest first</option>
</select>
<label for="f-limit">Per page</label> <select id="f-limit" name="limit">
<option value="50">50</option><option value="100" selected>100</option><option value="200">200</option><option value="500">500</option>
</select>
<button type="submit" id="apply-filter">Apply</button></p>
</form>
<p class="toolbar">
<button type="button" id="delete" disabled>Delete</button>
<button type="button" id="select-matching">Select every key that matches the filter</button>
<button type="button" id="revoke-all">Revoke all keys</button>
<button type="button" id="leaked-open" aria-controls="leaked" aria-expanded="false">Revoke leaked keys</button>
</p>
<form id="leaked" aria-label="Revoke leaked keys" hidden>
<p><label for="leaked-text">Leaked API keys</label>
<span id="leaked-hint" class="hint">Paste them one per line, or a secret scanner's report or a log excerpt: every key in the text is looked up, whoever owns it.</span></p>
<p><textarea id="leaked-text" rows="5" autocomplete="off" spellcheck="false" aria-describedby="leaked-hint"></textarea></p>
<p><button type="submit" id="find-leaked">Find these keys</button>
<button type="button" id="leaked-close">Close</button></p>
</form>
<div id="confirm" role="group" aria-labelledby="confirm-text" hidden>
<p id="confirm-text"></p>
<p id="confirm-type" hidden><label for="confirm-count">Type the number of keys to confirm</label>
<input id="confirm-count" inputmode="numeric" autocomplete="off"></p>
<p><button type="button" id="confirm-delete">Delete</button>
<button type="button" id="confirm-cancel">Cancel</button></p>
</div>
<div id="new-key-panel" role="group" aria-labelledby="new-key-text" hidden>
<p id="new-key-text">The new API key. Copy it now: it is shown only once.</p>
<p><code id="new-key"></code></p>
<p><button type="button" id="copy">Copy to Clipboard</button>
<button type="button" id="done">Done</button></p>
</div>
<p id="grid-status" role="status" aria-live="polite"></p>
<div class="scroll">
<table id="grid" aria-labelledby="keys-heading">
<thead><tr><th scope="col"><input type="checkbox" id="select-page" aria-label="Select every key on this page"></th>
<th scope="col">User</th><th scope="col">Label</th><th scope="col">Source</th><th scope="col">Scope</th>
<th scope="col" id="th-created" aria-sort="descending">Created</th><th scope="col" id="th-expires">Expires</th><th scope="col">Last used</th><th scope="col">Key id</th><th scope="col">Rotation</th></tr></thead>
<tbody></tbody>
</table>
</div>
<p id="no-match" hidden>No key matches this filter.</p>
<nav aria-label="Pages of keys" class="pager">
<button type="button" id="first-page" disabled>First page</button>
<button type="button" id="prev-page" disabled>Previous page</button>
<span id="page-number">Page 1</span>
<button type="button" id="next-page" disabled>Next page</button>
</nav>
</section>
<section aria-labelledby="audit-heading">
<h2 id="audit-heading">Audit log</h2>
<div class="scroll">
<table id="audit" aria-labelledby="audit-heading">
<thead><tr><th scope="col">Time</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Whom</th>
<th scope="col">How many</th><th scope="col">Source</th><th scope="col">Client</th></tr></thead>
<tbody></tbody>
</table>
</div>
<nav aria-label="Pages of the audit log" class="pager">
<button type="button" id="audit-newest" disabled>Newest events</button>
<button type="button" id="audit-older" disabled>Older events</button>
</nav>
</section>
</main>
</body>
</html>
"#,
        user = escape(p.user),
        checked = if s.self_service { " checked" } else { "" },
        choices = field(
            "ttl_choices",
            "Lifetimes users may choose",
            &s.ttl_choices.join(", "),
            "Comma-separated, e.g. 1d, 30d, 90d, never.",
        ),
        default = field(
            "default_ttl",
            "Default lifetime",
            &s.default_ttl,
            "One of the durations above, e.g. 30d.",
        ),
        max = field(
            "max_ttl",
            "Maximum lifetime",
            &s.max_ttl,
            "e.g. 365d, or never.",
        ),
    ));
    html
}

/// A labelled text field with its hint and the place for its error.
fn field(name: &str, label: &str, value: &str, hint: &str) -> String {
    format!(
        "<p><label for=\"{name}\">{label}</label> <input id=\"{name}\" name=\"{name}\" value=\"{value}\" \
         autocomplete=\"off\" aria-describedby=\"{name}-hint {name}-error\">\n\
         <span id=\"{name}-hint\" class=\"hint\">{hint}</span>\n\
         <span id=\"{name}-error\" class=\"field-error\"></span></p>",
        value = escape(value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_nothing_runs_inline() {
        let settings = Settings {
            self_service: false,
            ttl_choices: vec!["1d".into(), "\"><b>".into()],
            default_ttl: "1d".into(),
            max_ttl: "never".into(),
        };
        let html = console_page(&ConsolePage {
            user: "<i>root</i>",
            csrf_token: "t\"",
            settings: &settings,
            logout: None,
        });
        assert!(html.contains("<strong id=\"user\">&lt;i&gt;root&lt;/i&gt;</strong>"));
        assert!(html.contains("value=\"1d, &quot;&gt;&lt;b&gt;\""), "{html}");
        assert!(html.contains("content=\"t&quot;\""));
        assert!(
            html.contains("<input type=\"checkbox\" id=\"self_service\" name=\"self_service\">")
        );
        assert!(!html.contains("<script>") && !html.contains(" style="));
        let handler = |w: &str| w.starts_with("on") && w.contains('=');
        assert!(!html.split_whitespace().any(handler), "{html}");
        assert!(!html.contains("Sign out"));
    }
}
