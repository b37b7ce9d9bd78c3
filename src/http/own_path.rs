//! Which request paths belong to keygate (`/.keygate/…`) and so must never
//! reach the backend.
//!
//! keygate routes on the raw path, byte for byte: `/.keygate/keys` is the
//! page, anything else under `/.keygate/` is a 404 of its own. But backends
//! and the stacks in front of them read paths more loosely: they
//! percent-decode (`/%2ekeygate/`, sometimes twice: `%252e`), fold case
//! (IIS, Windows), merge slashes (`//.keygate/`), resolve dot segments
//! (`/x/../.keygate/`, RFC 3986 §5.2.4), drop Tomcat path parameters
//! (`/.keygate;x/`) and take `\` for `/`. A path that any of these readings
//! places under `/.keygate` is keygate's too: answered here, never forwarded.

/// The raw path is one of keygate's routes (or a 404 of keygate's).
pub fn is_own(path: &str) -> bool {
    path.starts_with("/.keygate/")
}

/// Whether some lenient reading of `path` puts it under `/.keygate`.
pub fn looks_own(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Hot path: nearly every request has neither an escape nor the name.
    if !bytes.contains(&b'%')
        && !bytes
            .windows(KEYGATE.len())
            .any(|w| w.eq_ignore_ascii_case(KEYGATE))
    {
        return false;
    }
    // Decode until nothing changes (bounded: `%25` nests at most this deep in practice).
    let mut text = path.to_owned();
    for _ in 0..4 {
        let decoded = percent_decode(&text);
        if decoded == text {
            break;
        }
        text = decoded;
    }
    first_segment_is_keygate(&text)
}

const KEYGATE: &[u8] = b"keygate";

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolve the path as a lenient server would and test its first segment.
fn first_segment_is_keygate(path: &str) -> bool {
    let mut stack: Vec<&str> = Vec::new();
    for segment in path.split(['/', '\\']) {
        // Tomcat drops `;params` from each segment.
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    stack
        .first()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case(".keygate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lenient_spelling_of_the_prefix_is_ours() {
        for path in [
            "/.keygate/keys",
            "/.keygate",
            "/.KEYGATE/keys",
            "/.KeyGate/api/keys",
            "//.keygate/keys",
            "/./.keygate/keys",
            "/x/../.keygate/keys",
            "/%2ekeygate/keys",
            "/%2Ekeygate/api/keys",
            "/%252ekeygate/keys",
            "/.keygate%2fkeys",
            "/.keygate;jsessionid=1/keys",
            "/\\.keygate\\keys",
            "/%2e%6b%65%79%67%61%74%65/keys",
        ] {
            assert!(looks_own(path), "{path}");
        }
        for path in [
            "/",
            "/app",
            "/keygate/keys",
            "/.keygate-docs/x",
            "/app/.keygate/keys",
            "/a%20b",
            "/.keygate/../app",
        ] {
            assert!(!looks_own(path), "{path}");
        }
    }
}
