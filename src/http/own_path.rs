//! Which request paths belong to keygate (`/.keygate/…`) and so must never
//! reach the backend.
//!
//! keygate routes on the raw path, byte for byte: `/.keygate/keys` is the
//! page, anything else under `/.keygate/` is a 404 of its own. But backends
//! and the stacks in front of them read paths more loosely: they
//! percent-decode (`/%2ekeygate/`, sometimes twice: `%252e`), fold case
//! (IIS, Windows), merge slashes (`//.keygate/`), resolve dot segments
//! (`/x/../.keygate/`, RFC 3986 §5.2.4), drop Tomcat path parameters
//! (`/.keygate;x/`) and take `\` for `/`; Windows and IIS also read `%u002e`,
//! overlong UTF-8 (`%c0%ae`), drop trailing dots and spaces, stop at a NUL
//! and take `name::$DATA` for `name`. A path that any of these readings
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

/// `%XX` and IIS's `%uXXXX` decoded; an overlong two-byte UTF-8 form of
/// an ASCII character (`%c0%ae` for `.`) read as that character.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some((decoded, len)) = escape_at(&bytes[i..]) {
            let mut utf8 = [0; 4];
            out.extend_from_slice(decoded.encode_utf8(&mut utf8).as_bytes());
            i += len;
        } else if let Some(b) = escape_byte(&bytes[i..]) {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&overlong_to_ascii(out)).into_owned()
}

/// `%XX` at the start of `bytes`: the byte.
fn escape_byte(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', hi, lo, ..] => Some(hex(*hi)? << 4 | hex(*lo)?),
        _ => None,
    }
}

/// IIS's `%uXXXX` at the start of `bytes`: the character and the length.
fn escape_at(bytes: &[u8]) -> Option<(char, usize)> {
    match bytes {
        [b'%', b'u' | b'U', a, b, c, d, ..] => {
            let code = [a, b, c, d]
                .iter()
                .try_fold(0u32, |n, h| Some(n << 4 | u32::from(hex(**h)?)))?;
            Some((char::from_u32(code)?, 6))
        }
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `0xC0`/`0xC1` and a continuation byte: an ASCII character spelled in two
/// bytes, which strict UTF-8 forbids and old decoders accepted.
fn overlong_to_ascii(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.iter().any(|b| matches!(b, 0xC0 | 0xC1)) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (lead @ (0xC0 | 0xC1), Some(&cont)) if cont & 0xC0 == 0x80 => {
                out.push((lead & 0x1F) << 6 | (cont & 0x3F));
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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
        .is_some_and(|s| as_windows_reads(s).eq_ignore_ascii_case(".keygate"))
}

/// A path segment as Windows reads a file name: up to a NUL or an NTFS
/// stream (`name::$DATA`), without trailing dots and spaces.
fn as_windows_reads(segment: &str) -> &str {
    let name = segment.split(['\0', ':']).next().unwrap_or_default();
    name.trim()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
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
            "/.keygate./keys",
            "/.keygate . /keys",
            "/.keygate%00/keys",
            "/.keygate%00.jpg/keys",
            "/%u002ekeygate/keys",
            "/%U002Ekeygate/keys",
            "/%c0%ae%6beygate/keys",
            "/.keygate::$DATA/keys",
            "/.keygate%0a/keys",
            "/.keygate%0d/keys",
            "/.keygate%0c/keys",
            "/.keygate%c2%a0/keys",
            "/%c2%85.keygate/keys",
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
            "/.keygates/x",
            "/x.keygate/x",
            "/%u002e/x",
            "/%c0%ae/keygate",
        ] {
            assert!(!looks_own(path), "{path}");
        }
    }
}
