//! keygate's small HTML pages (the self-service page, its messages, the
//! found-key form): escaping, the document head they share, and the headers
//! of every answer under `/.keygate/`. Scripts and styles come only from
//! `/.keygate/static/` (the pages' CSP allows no other).

use http::header::{self, HeaderValue};
use http::Response;

use super::body::ResponseBody;

/// Only keygate's own script, style and API: no inline code, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The headers of every answer under `/.keygate/` (the self-service
/// module's, and self-rotation's): never framed, sniffed, referred from
/// or, unless it says otherwise, stored.
pub fn with_own_headers(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // The CAS ticket is in the callback URL: never hand it on.
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// HTML-escape text for element content and quoted attribute values
/// (OWASP XSS rules 1 and 2: `& < > " '`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The document up to `<body>`: `title` (escaped), keygate's style and icon, then `extra` as is.
pub fn head(title: &str, extra: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/.keygate/static/app.css">
<link rel="icon" href="/.keygate/static/icon.svg" type="image/svg+xml">
{extra}</head>
"#,
        title = escape(title)
    )
}
