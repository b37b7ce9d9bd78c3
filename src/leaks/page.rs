//! "Revoke a key you found": a plain HTML form, no script and no sign-in,
//! that posts the keys as text to `POST /.keygate/revoke`. The self-service
//! page carries it below the user's keys; `GET /.keygate/revoke` serves it on
//! its own, for whoever found a key. The answer page says the same whatever
//! the keys were. Style and icon are the self-service page's.

use crate::http::html::head;

/// The form, as a section of a page.
pub const FOUND_KEY_FORM: &str = r#"<section aria-labelledby="found-heading">
<h2 id="found-heading">Revoke a key you found</h2>
<p>Found an API key of this site somewhere it should not be (a repository, a
log, a ticket)? Paste it here. A live key stops working at once, on every
gateway; whose it was, or whether it was one, is not shown.</p>
<form id="found" method="post" action="/.keygate/revoke" enctype="text/plain">
<p><label for="found-keys">Keys, one per line</label><br>
<textarea id="found-keys" name="keys" rows="3" cols="72" spellcheck="false" autocomplete="off" required></textarea></p>
<p><button type="submit" id="found-button">Revoke found keys</button></p>
</form>
</section>"#;

/// `GET /.keygate/revoke`: the form on its own.
pub fn form_page() -> String {
    page("Revoke a key you found", FOUND_KEY_FORM)
}

/// After the form was sent.
pub fn accepted_page() -> String {
    page(
        "Thank you",
        r#"<h1>Thank you</h1>
<p>Any live key among those you sent no longer works, on any gateway.</p>
<p><a href="/.keygate/revoke">Revoke another key</a></p>"#,
    )
}

/// A whole page around `main` (fixed text only: nothing here comes from a request).
fn page(title: &str, main: &str) -> String {
    let mut html = head(title, "");
    html.push_str("<body>\n<main>\n");
    html.push_str(main);
    html.push_str("\n</main>\n</body>\n</html>\n");
    html
}
