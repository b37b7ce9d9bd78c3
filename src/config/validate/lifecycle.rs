//! `[keys]` on a key's life after its creation: expiry notices, rotation,
//! idle keys. Each problem names its key (`keys.warn_before[1]`).

use super::*;

/// Most offsets in `keys.warn_before`.
const MAX_OFFSETS: usize = 10;

pub(super) fn section(raw: &raw::Keys, p: &mut Problems) -> Option<Lifecycle> {
    let warn_before = warn_before(&raw.warn_before, p);
    let rotation_grace = grace(p, "keys.rotation_grace", &raw.rotation_grace);
    let max_rotation_grace = grace(p, "keys.max_rotation_grace", &raw.max_rotation_grace);
    let revoke_unused_after = match raw.revoke_unused_after.as_deref() {
        None => Some(None),
        Some(text) => p.duration("keys.revoke_unused_after", text).map(Some),
    };
    let (rotation_grace, max_rotation_grace) = (rotation_grace?, max_rotation_grace?);
    if rotation_grace > max_rotation_grace {
        p.push(
            "keys.rotation_grace",
            format!(
                "{} is longer than keys.max_rotation_grace ({})",
                raw.rotation_grace, raw.max_rotation_grace
            ),
        );
        return None;
    }
    Some(Lifecycle {
        warn_before: warn_before?,
        self_rotation: raw.self_rotation,
        rotation_grace,
        max_rotation_grace,
        revoke_unused_after: revoke_unused_after?,
    })
}

/// Positive, distinct offsets, longest first.
fn warn_before(raw: &[String], p: &mut Problems) -> Option<Vec<Duration>> {
    if raw.len() > MAX_OFFSETS {
        p.push(
            "keys.warn_before",
            format!("give at most {MAX_OFFSETS} offsets"),
        );
        return None;
    }
    let mut offsets = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (i, text) in raw.iter().enumerate() {
        let key = format!("keys.warn_before[{i}]");
        match p.duration(&key, text) {
            Some(d) if offsets.contains(&d) => {
                p.push(&key, format!("{text} is given twice"));
                ok = false;
            }
            Some(d) => offsets.push(d),
            None => ok = false,
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    ok.then_some(offsets)
}

/// A grace period: a duration, zero allowed (the old key stops at once).
fn grace(p: &mut Problems, key: &str, text: &str) -> Option<Duration> {
    parse_duration(text).map_err(|e| p.push(key, e)).ok()
}
