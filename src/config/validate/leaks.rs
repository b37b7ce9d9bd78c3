//! `[leaks]` (secret-scanning intakes, revocation by possession) and
//! `[[webhooks]]` (signed events to key owners' systems).

use super::*;
use crate::webhooks::{EventType, Secret};

pub(super) fn section(raw: raw::Leaks, p: &mut Problems) -> Option<Leaks> {
    let action = match raw.action.as_str() {
        "revoke" => Some(LeakAction::Revoke),
        "notify" => Some(LeakAction::Notify),
        other => {
            p.push(
                "leaks.action",
                format!("{other:?} is not one of \"revoke\", \"notify\""),
            );
            None
        }
    };
    // A local file serves every intake that is on; else each its own URL.
    let file = match raw.public_keys_file.as_deref() {
        Some(path) => {
            let file = p.readable_file("leaks.public_keys_file", path)?;
            let read = std::fs::read(&file).map_err(|e| e.to_string());
            if let Err(e) = read.and_then(|json| crate::leaks::signature::key_list(&json)) {
                p.push("leaks.public_keys_file", e);
                return None;
            }
            Some(KeysFrom::File(file))
        }
        None => None,
    };
    let github = intake(
        raw.github,
        &file,
        "leaks.github_keys_url",
        Some(&raw.github_keys_url),
        p,
    );
    let gitlab = intake(
        raw.gitlab,
        &file,
        "leaks.gitlab_keys_url",
        raw.gitlab_keys_url.as_deref(),
        p,
    );
    let refetch_interval = p.duration("leaks.refetch_interval", &raw.refetch_interval);
    let fetch_timeout = p.duration("leaks.fetch_timeout", &raw.fetch_timeout);
    let answer_within = p.duration("leaks.answer_within", &raw.answer_within);
    // Half of it bounds reading every body keygate reads itself (admin
    // lists of up to 8 MiB included).
    if answer_within.is_some_and(|d| d < std::time::Duration::from_secs(2)) {
        p.push(
            "leaks.answer_within",
            "must be at least 2s: half of it bounds reading a request body keygate answers itself",
        );
    }
    let size_ok = (1024..=256 * 1024 * 1024).contains(&raw.max_report_bytes);
    if !size_ok {
        p.push(
            "leaks.max_report_bytes",
            format!("{} is outside 1024..=268435456", raw.max_report_bytes),
        );
    }
    let leaks = Leaks {
        github: github?,
        gitlab: gitlab?,
        action: action?,
        refetch_interval: refetch_interval?,
        fetch_timeout: fetch_timeout?,
        answer_within: answer_within?,
        max_report_bytes: raw.max_report_bytes,
        possession: raw.possession,
        possession_per_minute: raw.possession_per_minute,
    };
    size_ok.then_some(leaks)
}

/// One intake: off, or where its keys come from. `Some(None)` is off.
fn intake(
    on: bool,
    file: &Option<KeysFrom>,
    url_key: &str,
    url: Option<&str>,
    p: &mut Problems,
) -> Option<Option<KeysFrom>> {
    if !on {
        return Some(None);
    }
    if let Some(file) = file {
        return Some(Some(file.clone()));
    }
    match url.filter(|u| !u.trim().is_empty()) {
        None => {
            let intake = url_key.trim_end_matches("_keys_url");
            p.push(url_key, format!("required with {intake} = true (the scanner's public key list), unless leaks.public_keys_file is set"));
            None
        }
        Some(text) => match absolute_url(text) {
            Ok(uri) => Some(Some(KeysFrom::Url(uri))),
            // A scanner's public key list: nothing secret to hide, but
            // for a password before an '@'.
            Err(e) if text.contains('@') => {
                p.push(url_key, e);
                None
            }
            Err(e) => {
                p.push(url_key, format!("{text:?} {e}"));
                None
            }
        },
    }
}

/// An absolute http(s) URL (path and query allowed), without a user name
/// or password, which keygate would never send and logs would show. The
/// error does not quote it: a webhook's URL often carries the receiver's token.
fn absolute_url(text: &str) -> Result<http::Uri, &'static str> {
    match text.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some_and(|a| a.as_str().contains('@')) => Err(
            "a user name or password in the URL is not supported (keygate would not send it); \
             a receiver's token goes in the path or query",
        ),
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            Ok(uri)
        }
        _ => Err("must be an absolute http:// or https:// URL"),
    }
}

pub(super) fn webhooks(raw: Vec<raw::Webhook>, p: &mut Problems) -> Option<Vec<Webhook>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (i, entry) in raw.into_iter().enumerate() {
        match webhook(i, entry, p) {
            Some(w) if out.iter().any(|o: &Webhook| o.url == w.url) => {
                p.push(
                    &format!("webhooks[{i}].url"),
                    "the same URL as an earlier entry; list every event it wants in one entry",
                );
                ok = false;
            }
            Some(w) => out.push(w),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn webhook(i: usize, raw: raw::Webhook, p: &mut Problems) -> Option<Webhook> {
    let key = |k: &str| format!("webhooks[{i}].{k}");
    let url = match raw.url.as_deref() {
        None => {
            p.push(&key("url"), "required: where to POST the events");
            None
        }
        Some(text) => absolute_url(text).map_err(|e| p.push(&key("url"), e)).ok(),
    };
    let secret = match raw.secret_file.as_deref() {
        None => {
            p.push(
                &key("secret_file"),
                "required: a file holding the signing secret (`echo whsec_$(openssl rand -base64 32)`)",
            );
            None
        }
        Some(path) => p.readable_file(&key("secret_file"), path).and_then(|file| {
            // Never echo the file's content: only what is wrong with it.
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            Secret::parse(&text)
                .map_err(|e| p.push(&key("secret_file"), format!("{}: {e}", file.display())))
                .ok()
        }),
    };
    let events = match raw.events {
        None => Some(EventType::ALL.to_vec()),
        Some(names) if names.is_empty() => {
            p.push(
                &key("events"),
                "must name at least one event type (leave it out for all)",
            );
            None
        }
        Some(names) => {
            let mut events = Vec::new();
            for (j, name) in names.iter().enumerate() {
                match EventType::parse(name) {
                    Some(t) if !events.contains(&t) => events.push(t),
                    Some(_) => {}
                    None => p.push(
                        &format!("webhooks[{i}].events[{j}]"),
                        format!("{name:?} is not one of {}", EventType::names()),
                    ),
                }
            }
            (events.len() == names.iter().collect::<std::collections::HashSet<_>>().len())
                .then_some(events)
        }
    };
    let timeout = p.duration(&key("timeout"), &raw.timeout);
    let mut keep = p.duration(&key("keep"), &raw.keep);
    if keep.is_some_and(|k| k < Duration::from_secs(3600)) {
        p.push(
            &key("keep"),
            "must be at least 1h: a receiver may be down that long",
        );
        keep = None;
    }
    let mut max_retry_interval = p.duration(&key("max_retry_interval"), &raw.max_retry_interval);
    match (max_retry_interval, keep) {
        // A pause of milliseconds would send a message again almost at
        // once, over and over, to a receiver that is down.
        (Some(m), _) if m < Duration::from_secs(1) => {
            p.push(&key("max_retry_interval"), "must be at least 1s");
            max_retry_interval = None;
        }
        // A message is dropped at `keep`: a longer pause would end its
        // tries unseen (the drop is found, logged and counted when it is due).
        (Some(m), Some(k)) if m > k => {
            p.push(
                &key("max_retry_interval"),
                format!(
                    "{} is longer than {} ({})",
                    raw.max_retry_interval,
                    key("keep"),
                    raw.keep
                ),
            );
            max_retry_interval = None;
        }
        _ => {}
    }
    Some(Webhook {
        url: url?,
        secret: secret?,
        events: events?,
        timeout: timeout?,
        keep: keep?,
        max_retry_interval: max_retry_interval?,
    })
}
