//! keygate's small HTML pages (the self-service page, its messages, the
//! found-key form): escaping and the document head they share. Scripts and
//! styles come only from `/.keygate/static/` (the pages' CSP allows no other).

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
