//! `keygate init DIR`: from nothing to a configuration `keygate serve` runs.
//!
//! Writes, into DIR (created if missing):
//!
//! | file | what |
//! |---|---|
//! | `keygate.toml` | `config/keygate.example.toml` (every key, its default, its meaning) pointing at the files below; `[login]` commented out |
//! | `secret` | the store's HMAC secret, 0600 |
//! | `admin-token` | one named admin token (`admin:<token>`), 0600 |
//! | `tls/fullchain.pem`, `tls/key.pem` | with `--self-signed HOST`: a self-signed pair (key 0600) |
//!
//! and prints what to change next. It never overwrites a file: a second
//! secret would make every key already in the store unusable.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::CliError;

/// The example configuration, shipped in the binary: `init` writes it.
const EXAMPLE: &str = include_str!("../../config/keygate.example.toml");

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to write into, e.g. /etc/keygate (created if missing).
    dir: PathBuf,
    /// The application behind keygate ([upstream] url); default http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Also write a self-signed certificate for these host names or addresses
    /// (comma-separated); without it, put your own at DIR/tls/.
    #[arg(long, value_name = "HOST", value_delimiter = ',', num_args = 1..)]
    self_signed: Vec<String>,
    /// The admin token's name, as the audit log shows who acted.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    admin_name: String,
}

/// Where each file goes.
struct Layout {
    config: PathBuf,
    secret: PathBuf,
    token: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

pub fn run(mut args: Args) -> Result<(), CliError> {
    let usage = |m: String| CliError::Usage(m);
    // "a, b" is two hosts, as said back.
    for host in &mut args.self_signed {
        *host = host.trim().to_owned();
    }
    let dir = std::path::absolute(&args.dir)
        .map_err(|e| usage(format!("{}: {e}", args.dir.display())))?;
    if let Some(url) = &args.upstream {
        crate::config::upstream_url(url).map_err(|e| usage(format!("--upstream: {e}")))?;
    }
    let name_ok = !args.admin_name.is_empty()
        && args
            .admin_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !name_ok {
        return Err(usage(
            "--admin-name: use ASCII letters, digits, '-', '_', '.' or '@'".into(),
        ));
    }
    let at = Layout {
        config: dir.join("keygate.toml"),
        secret: dir.join("secret"),
        token: dir.join("admin-token"),
        cert: dir.join("tls/fullchain.pem"),
        key: dir.join("tls/key.pem"),
    };
    let mut writes = vec![&at.config, &at.secret, &at.token];
    if !args.self_signed.is_empty() {
        writes.extend([&at.cert, &at.key]);
    }
    let existing: Vec<String> = writes
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(usage(format!(
            "{} already exist{}; keygate init never overwrites (a new secret would make every key in the store unusable): remove {} or choose another folder",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        )));
    }
    let pair = match args.self_signed.as_slice() {
        [] => None,
        hosts => Some(self_signed(hosts).map_err(|e| usage(format!("--self-signed: {e}")))?),
    };
    let upstream = args.upstream.as_deref().unwrap_or("http://127.0.0.1:8080");
    let config = config_text(&at, upstream)?;

    let io = |path: &Path, e: std::io::Error| {
        CliError::Runtime(format!("cannot write {}: {e}", path.display()))
    };
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(0o750);
    dirs.create(&dir).map_err(|e| io(&dir, e))?;
    write_new(&at.config, 0o644, &config).map_err(|e| io(&at.config, e))?;
    write_new(
        &at.secret,
        0o600,
        &format!("{}\n", crate::random::hex::<32>()),
    )
    .map_err(|e| io(&at.secret, e))?;
    let token = format!("{}:{}\n", args.admin_name, crate::random::hex::<32>());
    write_new(&at.token, 0o600, &token).map_err(|e| io(&at.token, e))?;
    if let Some((cert, key)) = &pair {
        let tls = dir.join("tls");
        dirs.create(&tls).map_err(|e| io(&tls, e))?;
        write_new(&at.cert, 0o644, cert).map_err(|e| io(&at.cert, e))?;
        write_new(&at.key, 0o600, key).map_err(|e| io(&at.key, e))?;
    }
    print_next(&at, &args);
    Ok(())
}

/// The example with this folder's files, the upstream, and `[login]`
/// commented out (it needs the application's own sign-in details).
fn config_text(at: &Layout, upstream: &str) -> Result<String, CliError> {
    let set = [
        ("listen", "tls_cert", toml_string(&at.cert)?),
        ("listen", "tls_key", toml_string(&at.key)?),
        ("upstream", "url", quoted(upstream)?),
        ("store", "secret_file", toml_string(&at.secret)?),
        ("admin", "token_file", toml_string(&at.token)?),
    ];
    let mut done = 0;
    let mut section = "";
    let mut out = String::with_capacity(EXAMPLE.len() + 256);
    for line in EXAMPLE.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let active = !line.starts_with('#') && !line.trim().is_empty();
        if section == "login" && active {
            out.push_str("# ");
            out.push_str(line);
        } else if let Some((_, _, value)) = set
            .iter()
            .find(|(s, k, _)| *s == section && *k == key && active)
        {
            out.push_str(&format!("{key} = {value}"));
            done += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    // The example and this code drift apart only in a build that a test fails.
    assert_eq!(done, set.len(), "every path key is set in the example");
    Ok(out)
}

fn toml_string(path: &Path) -> Result<String, CliError> {
    let text = path
        .to_str()
        .ok_or_else(|| CliError::Usage(format!("{}: not a UTF-8 path", path.display())))?;
    quoted(text)
}

/// A TOML basic string.
fn quoted(text: &str) -> Result<String, CliError> {
    if text.chars().any(char::is_control) {
        return Err(CliError::Usage(format!(
            "{text:?}: control characters cannot go into the configuration"
        )));
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Write a file that must not exist yet, with `mode` from its creation on.
fn write_new(path: &Path, mode: u32, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Names every self-signed certificate has beside the ones asked for.
const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A self-signed certificate (PEM) and its key (PKCS#8 PEM) for `hosts`,
/// and for localhost and 127.0.0.1 (where the admin API listens), valid
/// for a year from yesterday.
fn self_signed(hosts: &[String]) -> Result<(String, String), String> {
    let mut names = hosts
        .iter()
        .map(|h| san_name(h))
        .collect::<Result<Vec<_>, _>>()?;
    for local in LOCAL_NAMES {
        if !names.iter().any(|n| n == local) {
            names.push(local.into());
        }
    }
    let common_name = names[0].clone();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let now = crate::keys::unix_now();
    let ((y0, m0, d0), (y1, m1, d1)) = (ymd(now - 86_400), ymd(now + 365 * 86_400));
    params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A host as a certificate names it: an IP address (`[::1]` as `::1`) or
/// a DNS name (`*.` allowed first). rcgen takes any text as a DNS name, so
/// "a b", "" or "host:8443" made a certificate no client matches.
fn san_name(host: &str) -> Result<String, String> {
    let host = host.trim();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let labels = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() <= 253 && labels.split('.').all(label_ok) {
        Ok(host.to_owned())
    } else {
        Err(format!(
            "{host:?} is neither a host name (letters, digits, '-', dots; \"*.\" first for a \
             wildcard; no port) nor an IP address"
        ))
    }
}

/// The UTC date `secs` falls on.
fn ymd(secs: u64) -> (i32, u8, u8) {
    let t = crate::keys::rfc3339(secs); // "2026-12-04T17:26:28Z"
    let num = |r: std::ops::Range<usize>| t[r].parse::<u16>().expect("rfc3339 writes digits");
    (i32::from(num(0..4)), num(5..7) as u8, num(8..10) as u8)
}

/// What was written, what `keygate check` says now, and the steps left.
fn print_next(at: &Layout, args: &Args) {
    let show = |p: &Path| p.display().to_string();
    let (config, token, cert) = (show(&at.config), show(&at.token), show(&at.cert));
    let dir = at.config.parent().map(show).unwrap_or_default();
    let self_signed = !args.self_signed.is_empty();
    println!("keygate init wrote:");
    println!("  {config}  every key, its default and its meaning");
    println!(
        "  {}  the key store's HMAC secret (0600): every instance of this deployment needs the same one; back it up",
        show(&at.secret)
    );
    println!("  {token}  admin token {:?} (0600)", args.admin_name);
    if self_signed {
        let also: Vec<_> = LOCAL_NAMES
            .iter()
            .filter(|local| !args.self_signed.iter().any(|n| n == *local))
            .copied()
            .collect();
        let also = match also.is_empty() {
            true => String::new(),
            false => format!(" (and {})", also.join(", ")),
        };
        println!(
            "  {cert}  a self-signed certificate for {}{also}, valid one year",
            args.self_signed.join(", ")
        );
        println!("  {}  its private key (0600)", show(&at.key));
    }

    let mut steps = Vec::new();
    if args.upstream.is_none() {
        steps.push(
            "[upstream] url: the application keygate fronts (now http://127.0.0.1:8080)".to_owned(),
        );
    }
    steps.push("[store] url: your Redis (now redis://127.0.0.1:6379/0; Cluster and Sentinel forms are in the file)".into());
    steps.push(if self_signed {
        "when you have a certificate from your CA, put it in place of the self-signed pair (same paths; SIGHUP reloads it)".into()
    } else {
        format!("put your certificate chain at {cert} and its key at {} (or rerun into a new folder with --self-signed HOST)", show(&at.key))
    });
    steps.push("[login]: to let people make their own keys on /.keygate/keys, uncomment it and choose a method".into());
    let key = if self_signed {
        format!(" {dir}/tls/key.pem")
    } else {
        String::new()
    };
    steps.push(format!(
        "if keygate runs as another user (deploy/systemd: keygate), let it read the files: \
         chgrp -R keygate {dir} && chmod g+r {dir}/secret {dir}/admin-token{key}"
    ));
    steps.push(format!(
        "keygate check -c {config}, then keygate serve -c {config}"
    ));
    println!("\nNext, in {config}:");
    for (i, step) in steps.iter().enumerate() {
        println!("  {}. {step}", i + 1);
    }
    match crate::config::load(&at.config) {
        Ok(_) => println!("\nkeygate check passes on it now."),
        Err(e) => println!("\nkeygate check says, until then: {e}"),
    }
    let ca = if self_signed {
        format!("--cacert {cert}")
    } else {
        "--cacert CA.pem".into()
    };
    println!(
        "\nThe admin API (https://127.0.0.1:9443) takes the token as a bearer token:\n  \
         curl {ca} -H \"Authorization: Bearer $(cut -d: -f2- {token})\" https://127.0.0.1:9443/v1/keys"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_takes_every_path_and_leaves_login_commented() {
        let at = Layout {
            config: "/srv/kg/keygate.toml".into(),
            secret: "/srv/kg/secret".into(),
            token: "/srv/kg/admin-token".into(),
            cert: "/srv/kg/tls/fullchain.pem".into(),
            key: "/srv/kg/tls/key.pem".into(),
        };
        let text = config_text(&at, "http://app.internal:8080").unwrap();
        for line in [
            "tls_cert = \"/srv/kg/tls/fullchain.pem\"",
            "tls_key = \"/srv/kg/tls/key.pem\"",
            "url = \"http://app.internal:8080\"",
            "secret_file = \"/srv/kg/secret\"",
            "token_file = \"/srv/kg/admin-token\"",
            "# [login]",
            "# method = \"backend_session\"",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        let active = text.lines().filter(|l| !l.starts_with('#'));
        assert!(
            !active.into_iter().any(|l| l.contains("/etc/keygate")),
            "{text}"
        );
        let table: toml::Table = text.parse().unwrap();
        assert!(!table.contains_key("login"));
        assert!(table.contains_key("self_service"));
    }
}
