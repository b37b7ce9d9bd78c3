//! `store.url` and `upstream.url` as they may be shown: in an error, a log
//! line, a listing.

/// The URL without its password (`redis://app:***@h:6379/0`) and without a
/// query string (`redis+unix:///s.sock?pass=…` carries one there): the
/// scheme, user, hosts and path stay, so an operator sees what was tried.
pub fn redacted_url(url: &str) -> String {
    let (url, query) = match url.split_once(['?', '#']) {
        Some((before, _)) => (before, "?…"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL at all: nothing in it can be told from a password.
        return "(not a URL)".into();
    };
    // Everything before the last '@' is userinfo, even a password holding
    // an unencoded '/' or '@'.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let user = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => format!("{info}@"),
        },
        None => String::new(),
    };
    format!("{scheme}://{user}{rest}{query}")
}

/// `upstream.url` as it may be shown: scheme and authority without any
/// userinfo. Validation refuses userinfo; this keeps a password out of the
/// start line even if a URL ever reached it another way.
pub fn shown_upstream(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let authority = url.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    format!("{scheme}://{host_port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_is_shown_without_its_userinfo() {
        for (url, shown) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://app.example.org/", "https://app.example.org"),
            ("http://app:hunter2@h:1", "http://h:1"),
            ("http://hunter2@[::1]:8080", "http://[::1]:8080"),
        ] {
            let uri: http::Uri = url.parse().unwrap();
            assert_eq!(shown_upstream(&uri), shown, "{url}");
        }
    }

    #[test]
    fn passwords_and_query_strings_are_hidden_hosts_are_kept() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "rediss://app:hunter2@redis.example.org:6380/1",
                "rediss://app:***@redis.example.org:6380/1",
            ),
            ("redis://:hunter2@h", "redis://:***@h"),
            (
                "redis+sentinel://:p@ss:w0rd@s1:26379,s2/mymaster",
                "redis+sentinel://:***@s1:26379,s2/mymaster",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?…",
            ),
            ("redis://u:pa/ss@h:1/2", "redis://u:***@h:1/2"),
            ("hunter2", "(not a URL)"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
}
