//! Parsers under generated input (proptest): never a panic, and the
//! properties the contract states. Case counts are bounded for CI (the
//! whole file runs in a few seconds); `PROPTEST_CASES=100000 cargo test
//! --test it properties::` runs each property that many times (README,
//! "Try it, test it"). The CAS answer parser's properties live beside it
//! (`src/login/cas.rs`), its parser being private.

use http::{HeaderMap, HeaderName, HeaderValue};
use keygate::auth::basic::{self, Parsed};
use keygate::http::headers::Spoofable;
use keygate::http::own_path;
use keygate::keys::format;
use proptest::collection::vec;
use proptest::prelude::*;

use base64::Engine;

/// `default` cases, or `PROPTEST_CASES` when set (a longer run before a release).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A scheme name as a client may spell it.
fn spelled(word: &'static str) -> impl Strategy<Value = String> {
    vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

// === Authorization: Basic and Bearer ===

proptest! {
    #![proptest_config(config(512))]

    /// Whatever the bytes, the decoder answers (no panic), and a Basic
    /// answer is exactly what was encoded.
    #[test]
    fn any_authorization_value_is_decoded_or_refused(value in vec(any::<u8>(), 0..5000)) {
        if let Parsed::Basic(c) = basic::parse(&value, &basic::OurUser::new("apikey")) {
            let user = c.user().to_owned();
            prop_assert!(!user.contains(':'));
            let _ = c.into_pass();
        }
    }

    /// Base64 of arbitrary bytes after `Basic `: UTF-8 with a colon is
    /// split at the first colon, anything else is malformed.
    #[test]
    fn basic_of_any_bytes_is_split_at_the_first_colon_or_malformed(
        scheme in spelled("basic"),
        raw in vec(any::<u8>(), 0..300),
        pad in 1usize..4,
    ) {
        let value = format!("{scheme}{}{}  ", " ".repeat(pad), b64(&raw));
        let other_user = !raw.starts_with(b"apikey:");
        match (basic::parse(value.as_bytes(), &basic::OurUser::new("apikey")), String::from_utf8(raw)) {
            // Another user's credential may be told by its first bytes alone.
            (Parsed::OtherUser(_), _) => prop_assert!(other_user),
            (Parsed::Basic(c), Ok(text)) => {
                let (user, pass) = text.split_once(':').expect("a colon");
                prop_assert_eq!(c.user(), user);
                let key = c.into_pass();
                prop_assert_eq!(key.expose(), pass);
            }
            (Parsed::Malformed, Ok(text)) => prop_assert!(!text.contains(':')),
            (Parsed::Malformed, Err(_)) => {}
            (_, raw) => prop_assert!(false, "neither Basic nor Malformed for {raw:?}"),
        }
    }

    #[test]
    fn basic_credentials_round_trip(
        scheme in spelled("basic"),
        user in "[^:]{0,40}",
        pass in any::<String>(),
    ) {
        let value = format!("{scheme} {}", b64(format!("{user}:{pass}").as_bytes()));
        // Parsed for this user (ours): decoded whole, whatever its length.
        match basic::parse(value.as_bytes(), &basic::OurUser::new(&user)) {
            Parsed::Basic(c) if value.len() <= 4096 => {
                prop_assert_eq!(c.user(), user.as_str());
                let key = c.into_pass();
                prop_assert_eq!(key.expose(), pass.as_str());
            }
            Parsed::Malformed => prop_assert!(value.len() > 4096),
            _ => prop_assert!(false, "not Basic: {value:?}"),
        }
        // Parsed for another user name: never taken for it.
        match basic::parse(value.as_bytes(), &basic::OurUser::new("apikey")) {
            Parsed::OtherUser(_) => prop_assert_ne!(user.as_str(), "apikey"),
            Parsed::Basic(c) => prop_assert_eq!(c.user(), user.as_str()),
            Parsed::Malformed => prop_assert!(value.len() > 4096),
            _ => prop_assert!(false, "not Basic: {value:?}"),
        }
    }

    /// One of our keys as any other user's password is found, whether
    /// the credential is told by its first bytes or decoded whole.
    #[test]
    fn a_key_as_another_users_password_is_always_found(
        user in "[^:]{0,40}",
        prefix in "[a-z]{1,8}",
    ) {
        prop_assume!(user != "apikey");
        let (key, _) = format::generate(&prefix, "someone");
        let value = format!("Basic {}", b64(format!("{user}:{}", key.expose()).as_bytes()));
        let pass = match basic::parse(value.as_bytes(), &basic::OurUser::new("apikey")) {
            Parsed::OtherUser(token) => {
                prop_assert!(basic::KeyMarks::new(&prefix).may_hold_key(token));
                String::from_utf8(basic::other_password(token).expect("decodes")).unwrap()
            }
            Parsed::Basic(c) => c.pass().to_owned(),
            _ => return Err(TestCaseError::fail(format!("not Basic: {value:?}"))),
        };
        prop_assert_eq!(pass.as_str(), key.expose());
    }

    #[test]
    fn bearer_tokens_round_trip_trimmed(
        scheme in spelled("bearer"),
        token in "[!-~]{1,200}",
        before in 1usize..4,
        after in 0usize..4,
    ) {
        let value = format!("{scheme}{}{token}{}", " ".repeat(before), " ".repeat(after));
        prop_assert!(matches!(basic::parse(value.as_bytes(), &basic::OurUser::new("apikey")), Parsed::Bearer(t) if t == token));
    }
}

// === The key format ===

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_key_round_trips_to_its_id(prefix in "[A-Za-z0-9]{1,16}", user in any::<String>()) {
        let (key, id) = format::generate(&prefix, &user);
        let text = key.expose();
        prop_assert_eq!(format::parse(&prefix, text), Some(id));
        prop_assert!(format::is_id(id.as_str()));
        prop_assert!(id.as_str().starts_with(&format::user_tag(&user)));
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    /// The checksum catches every mistyped character and every swap of two
    /// neighbours, without asking the store.
    #[test]
    fn one_typo_or_swap_is_caught_by_the_checksum(
        user in any::<String>(),
        at in any::<prop::sample::Index>(),
        with in "[A-Za-z0-9_]",
        swap in any::<bool>(),
    ) {
        let (key, _) = format::generate("kg", &user);
        let mut bytes = key.expose().as_bytes().to_vec();
        let i = at.index(bytes.len() - 1);
        if swap {
            bytes.swap(i, i + 1);
        } else {
            bytes[i] = with.as_bytes()[0];
        }
        let typo = String::from_utf8(bytes).unwrap();
        if typo != key.expose() {
            prop_assert_eq!(format::parse("kg", &typo), None, "{}", typo);
        }
    }

    #[test]
    fn arbitrary_text_is_never_a_key(prefix in "[a-z]{1,4}", text in any::<String>()) {
        if let Some(id) = format::parse(&prefix, &text) {
            prop_assert!(format::is_id(id.as_str()));
        }
    }
}

// === /.keygate/ path recognition ===

/// `text` with some characters percent-encoded, `%` itself encoded again
/// up to twice (`.` -> `%2e` -> `%252e`), in either hex case.
fn escaped(text: String) -> BoxedStrategy<String> {
    let n = text.chars().count();
    (vec(any::<bool>(), n), 0usize..3, any::<bool>())
        .prop_map(move |(which, depth, upper)| {
            let mut out = String::new();
            for (c, escape) in text.chars().zip(which) {
                if escape {
                    let mut e = if upper {
                        format!("%{:02X}", c as u32)
                    } else {
                        format!("%{:02x}", c as u32)
                    };
                    for _ in 0..depth {
                        e = e.replacen('%', "%25", 1);
                    }
                    out.push_str(&e);
                } else {
                    out.push(c);
                }
            }
            out
        })
        .boxed()
}

/// A spelling of `/.keygate/<rest>` that a lenient server reads as it:
/// dot segments and empty segments before it, any case, escapes, `;`
/// parameters, `\` for `/`.
fn keygate_spelling() -> impl Strategy<Value = String> {
    let detour = prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        Just("/.".to_owned()),
        "[a-z0-9]{1,8}".prop_map(|s| format!("/{s}/..")),
        "[a-z0-9]{1,8}".prop_map(|s| format!("/{s}/%2e%2e")),
    ];
    let name = spelled(".keygate").prop_flat_map(escaped);
    let params = prop_oneof![
        Just(String::new()),
        "[a-z]{1,6}=[0-9]{1,4}".prop_map(|p| format!(";{p}"))
    ];
    let slash = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        escaped("/".to_owned())
    ];
    let rest = "[a-z/]{0,20}";
    (vec(detour, 0..3), slash.clone(), name, params, slash, rest).prop_map(
        |(detours, lead, name, params, sep, rest)| {
            // The path itself starts with a real `/`.
            let lead = if lead == "/" { String::new() } else { lead };
            format!("{}/{lead}{name}{params}{sep}{rest}", detours.concat())
        },
    )
}

proptest! {
    #![proptest_config(config(1024))]

    /// Every spelling is answered by keygate (routed to self-service, whose
    /// only answers are its pages and its own 404), never forwarded.
    #[test]
    fn every_spelling_of_the_keygate_prefix_is_keygates(path in keygate_spelling()) {
        prop_assert!(own_path::is_own(&path) || own_path::looks_own(&path), "{}", path);
    }

    /// Paths of an application (no segment that reads as `.keygate`) are
    /// forwarded.
    #[test]
    fn application_paths_are_not_taken(segments in vec("[a-zA-Z0-9_~-]{1,10}", 0..6), slash in any::<bool>()) {
        let path = format!("/{}{}", segments.join("/"), if slash { "/" } else { "" });
        prop_assert!(!own_path::is_own(&path) && !own_path::looks_own(&path), "{}", path);
    }

    #[test]
    fn any_path_is_judged_without_a_panic(path in any::<String>()) {
        let _ = own_path::looks_own(&path);
    }
}

// === Identity header normalization ===

/// A header name (lowercase words joined by `-`).
fn header_name() -> impl Strategy<Value = String> {
    vec("[a-z][a-z0-9]{0,6}", 1..4).prop_map(|words| words.join("-"))
}

/// `name` as a client may spell it: any case, each `-` as `-`, `_` or `.`.
fn spelling_of(name: String) -> impl Strategy<Value = String> {
    let n = name.len();
    (vec(any::<bool>(), n), vec(0u8..3, n)).prop_map(move |(upper, sep)| {
        name.chars()
            .zip(upper.iter().zip(&sep))
            .map(|(c, (u, s))| match c {
                '-' => ['-', '_', '.'][*s as usize],
                c if *u => c.to_ascii_uppercase(),
                c => c,
            })
            .collect()
    })
}

fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

proptest! {
    #![proptest_config(config(512))]

    /// Every spelling of the identity header is stripped, every other
    /// header is kept.
    #[test]
    fn every_spelling_of_the_identity_header_is_stripped(
        (ours, spellings) in header_name().prop_flat_map(|n| (Just(n.clone()), vec(spelling_of(n), 1..5))),
        others in vec(header_name(), 0..5),
    ) {
        let identity = HeaderName::from_bytes(ours.as_bytes()).unwrap();
        let spoofable = Spoofable::new([&identity]);
        let mut headers = HeaderMap::new();
        for s in &spellings {
            headers.append(HeaderName::from_bytes(s.as_bytes()).unwrap(), HeaderValue::from_static("mallory"));
        }
        for o in &others {
            headers.append(HeaderName::from_bytes(o.as_bytes()).unwrap(), HeaderValue::from_static("kept"));
        }
        spoofable.strip(&mut headers);
        for name in headers.keys() {
            prop_assert_ne!(normalized(name.as_str()), normalized(&ours), "{} left in", name);
        }
        for o in others.iter().filter(|o| normalized(o) != normalized(&ours)) {
            prop_assert!(headers.contains_key(o.as_str()), "{} removed", o);
        }
    }
}

// === The config parser ===

/// Every `[section]` and key the example config documents (commented-out
/// keys included).
fn documented_keys() -> Vec<(String, Vec<String>)> {
    let text = include_str!("../../config/keygate.example.toml");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // `[[webhooks]]` is an array of tables: its keys are a section's.
            let section = section.trim_matches(['[', ']']);
            if !section.contains(' ') {
                out.push((section.to_owned(), Vec::new()));
            }
        } else if let (Some((key, _)), Some(last)) = (line.split_once(" = "), out.last_mut()) {
            if key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                last.1.push(key.to_owned());
            }
        }
    }
    out
}

/// A TOML value of any type, some of them plausible for keygate.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        // JSON's string escapes are TOML's (DEL aside: a TOML error, also fine).
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop_oneof![
            Just("30s"),
            Just("0s"),
            Just("never"),
            Just("memory"),
            Just("redis"),
            Just("127.0.0.1:0"),
            Just("[::1]:99999"),
            Just("http://127.0.0.1:1"),
            Just("redis+sentinel://a,b/m/0"),
            Just("rediss+cluster://"),
            Just("/nonexistent"),
            Just("trusted_header"),
            Just("cas"),
            Just("backend_session"),
            Just("json"),
        ]
        .prop_map(|s| format!("{s:?}")),
        Just("1979-05-27T07:32:00Z".to_owned()),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            vec(("[a-z_]{1,8}", inner), 0..3).prop_map(|kv| format!(
                "{{ {} }}",
                kv.iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ]
    })
}

/// A config file: documented sections and keys (and some unknown ones),
/// each with a value of any type.
fn config_text() -> impl Strategy<Value = String> {
    let known = documented_keys();
    let section = (
        any::<prop::sample::Index>(),
        vec(
            (any::<prop::sample::Index>(), any::<bool>(), toml_value()),
            0..8,
        ),
    );
    vec(section, 0..6).prop_map(move |sections| {
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        for (s, keys) in sections {
            let (name, names) = &known[s.index(known.len())];
            if !seen.insert(name.clone()) {
                continue;
            }
            text.push_str(&format!("[{name}]\n"));
            let mut used = std::collections::HashSet::new();
            for (k, unknown, value) in keys {
                let key = match (unknown, names.is_empty()) {
                    (false, false) => names[k.index(names.len())].clone(),
                    _ => format!("unknown_{}", k.index(3)),
                };
                if used.insert(key.clone()) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text: an answer (a config or problems), never a panic.
    #[test]
    fn any_text_is_a_config_or_problems(text in any::<String>()) {
        if let Err(e) = keygate::config::parse(&text) {
            prop_assert!(!e.0.is_empty());
        }
    }

    /// Documented keys with values of any type: a config, or problems each
    /// named by a TOML key of the file.
    #[test]
    fn any_values_for_the_documented_keys_are_a_config_or_named_problems(text in config_text()) {
        let sections: Vec<String> = documented_keys().into_iter().map(|(s, _)| s).collect();
        match keygate::config::parse(&text) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(!e.0.is_empty());
                for p in &e.0 {
                    let section = p.key.split(['.', '[']).next().unwrap_or("");
                    prop_assert!(
                        p.key == "toml" || sections.iter().any(|s| s == section),
                        "problem not named by a TOML key: {} in\n{}", p, text
                    );
                }
            }
        }
    }
}

/// The generator above covers the documented keys, not an empty list.
#[test]
fn the_config_generator_knows_every_section_and_key() {
    let keys = documented_keys();
    let find = |s: &str| {
        keys.iter()
            .find(|(name, _)| name == s)
            .map(|(_, k)| k.clone())
    };
    let mut names: Vec<&str> = keys.iter().map(|(name, _)| name.as_str()).collect();
    let mut sections = keygate::config::SECTIONS.to_vec();
    names.sort();
    sections.sort();
    assert_eq!(names, sections, "{keys:?}");
    assert!(find("limits")
        .unwrap()
        .contains(&"h2_max_control_frames".to_owned()));
    assert!(find("login").unwrap().contains(&"public_url".to_owned()));
    assert!(find("admin").unwrap().contains(&"client_ca".to_owned()));
}
