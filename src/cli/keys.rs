//! `keygate keys create|list|rotate|revoke -c FILE`: the key store as configured,
//! from a shell. Only a shared store makes sense here: a memory store lives
//! inside the serving process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Subcommand};

use super::{CliError, ConfigArg};
use crate::audit::Actor;
use crate::keyring::{Claim, Keyring, MintError, Revocation, RotateError, RotateRequest, Ttl};
use crate::keys::{counted, rfc3339, ApiKey, KeyId, KeyRecord, Scope};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Mint a key; prints it once.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// The user the key authenticates as (sent upstream in the identity header).
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 30d, 12h, or "never" (only with keys.max_ttl = "never"); default keys.default_ttl.
        #[arg(long)]
        ttl: Option<String>,
        /// A note for the owner: what the key is for.
        #[arg(long, default_value = "")]
        label: String,
        /// full, or read (GET/HEAD/OPTIONS only).
        #[arg(long, default_value = "full", value_parser = ["full", "read"])]
        scope: String,
        /// Print the same JSON object as POST /v1/keys.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        /// Print the same JSON as GET /v1/keys.
        #[arg(long)]
        json: bool,
    },
    /// Rotate a key: prints its successor once; the old key works for --grace.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
        /// The key to rotate.
        #[arg(long)]
        id: String,
        /// How long the old key keeps working, e.g. 24h or 0s (default
        /// keys.rotation_grace, at most keys.max_rotation_grace).
        #[arg(long)]
        grace: Option<String>,
        /// The successor's lifetime (default: the old key's own lifetime, within keys.max_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the same JSON object as POST /v1/keys/{id}/rotate.
        #[arg(long)]
        json: bool,
    },
    /// Revoke keys; prints how many live keys were revoked.
    #[command(group(ArgGroup::new("what").required(true).args(["id", "user", "all", "leaked"])))]
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// Key ids.
        #[arg(long, num_args = 1..)]
        id: Vec<String>,
        /// Every key of these users.
        #[arg(long, num_args = 1..)]
        user: Vec<String>,
        /// Every key.
        #[arg(long)]
        all: bool,
        /// Leaked key secrets: one per line, a gitleaks JSON report, or a
        /// detect-secrets baseline (its secrets read back from the scanned
        /// files, relative to the current folder) or report ("-" = standard input).
        #[arg(long, value_name = "FILE")]
        leaked: Option<PathBuf>,
        /// Print how many live keys this would revoke, and revoke nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: Args) -> Result<(), CliError> {
    let config_path = match &args.command {
        KeysCommand::Create { config, .. }
        | KeysCommand::List { config, .. }
        | KeysCommand::Rotate { config, .. }
        | KeysCommand::Revoke { config, .. } => config.path.clone(),
    };
    let config = crate::config::load(&config_path)?;
    if matches!(config.store, crate::config::Store::Memory) {
        return Err(CliError::Usage(
            "keygate keys needs a shared store ([store] kind = \"redis\"); a memory store lives only inside the serving process".into(),
        ));
    }
    // A mistyped flag is named (exit 2) before the store is asked, also
    // when the store is down.
    let command = Checked::from(args.command)?;
    // Only a command that makes the first key may claim an empty store for
    // its secret: a listing with the wrong one would lock the gateways out
    // (a rotation needs a key there already, and proves nothing).
    let claim = match command {
        Checked::Create(_) => Claim::IfProven,
        Checked::List { .. } | Checked::Rotate { .. } | Checked::Revoke { .. } => Claim::Never,
    };
    let result = super::runtime(1)?.block_on(async {
        let keyring = Keyring::from_config(&config, claim)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        match command {
            Checked::Create(new) => {
                create(&keyring, new, &config.auth.username, &config_path).await
            }
            Checked::List { user, json } => list(&keyring, user.as_deref(), json).await,
            Checked::Rotate {
                id,
                grace,
                ttl,
                json,
            } => rotate(&keyring, id, grace, ttl, json, &config_path).await,
            Checked::Revoke { what, dry_run } => {
                say_not_keys(&what, &config.keys.prefix);
                revoke(&keyring, what, dry_run).await
            }
        }
    });
    // Every runtime failure here is the store's: say where keygate looked.
    result.map_err(|e| match e {
        CliError::Runtime(m) => CliError::Runtime(format!("{m}; tried {}", config.store.shown())),
        other => other,
    })
}

/// A subcommand whose flags parsed: what is left to check needs the store
/// (the runtime settings' lifetimes, the key itself).
enum Checked {
    Create(NewKey),
    List {
        user: Option<String>,
        json: bool,
    },
    Rotate {
        id: KeyId,
        grace: Option<Duration>,
        ttl: Ttl,
        json: bool,
    },
    Revoke {
        what: Revocation,
        dry_run: bool,
    },
}

/// `keys create`'s flags for the key.
struct NewKey {
    user: String,
    ttl: Ttl,
    label: String,
    scope: Scope,
    json: bool,
}

impl Checked {
    fn from(command: KeysCommand) -> Result<Checked, CliError> {
        Ok(match command {
            KeysCommand::Create {
                user,
                ttl,
                label,
                scope,
                json,
                ..
            } => {
                crate::keyring::check_new(&user, &label)
                    .map_err(|e| CliError::Usage(format!("--{e}")))?;
                Checked::Create(NewKey {
                    user,
                    ttl: match ttl {
                        None => Ttl::Default,
                        Some(t) => {
                            Ttl::parse(&t).map_err(|e| CliError::Usage(format!("--ttl: {e}")))?
                        }
                    },
                    label,
                    scope: Scope::parse(&scope).expect("clap allows only full|read"),
                    json,
                })
            }
            KeysCommand::List { user, json, .. } => {
                if let Some(user) = &user {
                    user_flag(user)?;
                }
                Checked::List { user, json }
            }
            KeysCommand::Rotate {
                id,
                grace,
                ttl,
                json,
                ..
            } => {
                let (grace, ttl) = RotateRequest::new(grace, ttl)
                    .parse()
                    .map_err(|e| CliError::Usage(format!("--{e}")))?;
                Checked::Rotate {
                    id: key_id(&id)?,
                    grace,
                    ttl,
                    json,
                }
            }
            KeysCommand::Revoke {
                id,
                user,
                all,
                leaked,
                dry_run,
                ..
            } => Checked::Revoke {
                what: revocation(id, user, all, leaked)?,
                dry_run,
            },
        })
    }
}

/// A `--user` to list or revoke by: a user name, and no key secret (a
/// secret pasted here would match nothing and, when revoking, go to the
/// audit log in clear: refused first, and not echoed).
fn user_flag(user: &str) -> Result<(), CliError> {
    use crate::keys::user::{check_typed, Typed};
    check_typed(user).map_err(|e| match e {
        Typed::Secret => CliError::Usage(
            "--user: looks like a key secret; revoke a leaked key with --leaked".into(),
        ),
        Typed::NoUser(why) => CliError::Usage(format!("--user {user:?}: {why}")),
    })
}

/// An `--id`, never echoed when it is a pasted key secret.
fn key_id(id: &str) -> Result<KeyId, CliError> {
    KeyId::parse(id).ok_or_else(|| match crate::keys::format::contains_key(id) {
        true => CliError::Usage(
            "--id: looks like a key secret; revoke a leaked key with --leaked".into(),
        ),
        false => CliError::Usage(format!("--id: {id:?} is not a key id")),
    })
}

/// `basic_user`: `auth.username`, the Basic user name the key goes with.
async fn create(k: &Keyring, new: NewKey, basic_user: &str, config: &Path) -> Result<(), CliError> {
    let minted = k
        .mint(&Actor::cli(), &new.user, new.ttl, &new.label, new.scope)
        .await
        .map_err(|e| match e {
            MintError::Store(e) => CliError::Runtime(e.to_string()),
            other => CliError::Usage(format!("--{other}")),
        })?;
    let shown = match new.json {
        true => serde_json::to_string(&minted.view()).expect("serializable"),
        false => minted.key.expose().to_owned(),
    };
    show_secret(&shown, &minted.record.id, config)?;
    if !new.json {
        let r = &minted.record;
        eprintln!(
            "\nid {} for user {:?}, scope {}, expires {}.\nThis is the only time the key is shown: store it now (e.g. in ~/.netrc as the password of user {basic_user:?}).",
            r.id,
            r.user,
            r.scope.as_str(),
            r.expires_at.map_or("never".into(), rfc3339)
        );
    }
    Ok(())
}

async fn rotate(
    k: &Keyring,
    id: KeyId,
    grace: Option<Duration>,
    ttl: Ttl,
    json: bool,
    config: &Path,
) -> Result<(), CliError> {
    let rotated = k
        .rotate(&Actor::cli(), id, grace, ttl)
        .await
        .map_err(|e| match e {
            RotateError::Store(e) => CliError::Runtime(e.to_string()),
            e @ (RotateError::Grace(_) | RotateError::Ttl(_)) => CliError::Usage(format!("--{e}")),
            RotateError::NotFound => CliError::Runtime(format!(
                "--id: no such key {id} (never issued, expired or revoked)"
            )),
            e @ (RotateError::Rotated { .. } | RotateError::ChainEnded { .. }) => {
                CliError::Runtime(e.to_string())
            }
        })?;
    let shown = match json {
        true => serde_json::to_string(&rotated.view()).expect("serializable"),
        false => rotated.key.key.expose().to_owned(),
    };
    show_secret(&shown, &rotated.key.record.id, config)?;
    if !json {
        let r = &rotated.key.record;
        eprintln!(
            "\nid {} replaces {id} for user {:?}, scope {}, expires {}.\n{id} keeps working until {}.\nThis is the only time the key is shown: store it now.",
            r.id,
            r.user,
            r.scope.as_str(),
            r.expires_at.map_or("never".into(), rfc3339),
            rfc3339(rotated.old_expires_at)
        );
    }
    if let Some(warning) = rotated.warning() {
        // The background retries the warning speaks of end with this process.
        eprintln!(
            "\nwarning: {warning}\nThis command does not keep trying once it exits: `keygate keys revoke --id {id}` stops the old key now."
        );
    }
    Ok(())
}

async fn list(k: &Keyring, user: Option<&str>, json: bool) -> Result<(), CliError> {
    let keys = k
        .list(user)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    stdout_lines(|out| list_to(out, &keys, json))
}

fn list_to(out: &mut dyn Write, keys: &[KeyRecord], json: bool) -> std::io::Result<()> {
    if json {
        let views: Vec<_> = keys.iter().map(|r| r.view()).collect();
        let page = serde_json::json!({ "keys": views, "next_cursor": null });
        return writeln!(out, "{page}");
    }
    writeln!(
        out,
        "{:<12}  {:<24}  {:<5}  {:<20}  {:<20}  LABEL",
        "ID", "USER", "SCOPE", "CREATED", "EXPIRES"
    )?;
    for r in keys {
        // A rotated key lives out its grace period: say so beside its label.
        let replaced = r
            .rotated_to
            .map_or(String::new(), |to| format!(" (rotated to {to})"));
        writeln!(
            out,
            "{:<12}  {:<24}  {:<5}  {:<20}  {:<20}  {}{replaced}",
            r.id,
            r.user,
            r.scope.as_str(),
            rfc3339(r.created_at),
            r.expires_at.map_or("never".into(), rfc3339),
            r.label
        )?;
    }
    Ok(())
}

/// Write to standard output through `write`. A reader that left early
/// (`keygate keys list | head`) wanted no more: no error (`println!`
/// panicked there, exit 101).
fn stdout_lines(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), CliError> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Runtime(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(()),
    }
}

/// Print a new key's secret (or its JSON). If no one can read it, the key
/// exists all the same: say which, and how to revoke it (exit 1).
fn show_secret(shown: &str, id: &KeyId, config: &Path) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{shown}")
        .and_then(|()| out.flush())
        .map_err(|e| {
            CliError::Runtime(format!(
                "cannot print the new key ({e}); key {id} exists but no one has seen it: \
                 keygate keys revoke -c {} --id {id}",
                config.display()
            ))
        })
}

/// What `keys revoke`'s flags name; `--leaked`'s file is read here.
fn revocation(
    ids: Vec<String>,
    users: Vec<String>,
    all: bool,
    leaked: Option<PathBuf>,
) -> Result<Revocation, CliError> {
    if all {
        return Ok(Revocation::All);
    }
    if !users.is_empty() {
        for user in &users {
            user_flag(user)?;
        }
        return Ok(Revocation::Users(users));
    }
    if let Some(path) = leaked {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(&path)
        }
        .map_err(|e| CliError::Usage(format!("--leaked: cannot read {}: {e}", path.display())))?;
        let secrets = crate::leaks::scan_report::secrets_in(&text, std::path::Path::new("."))
            .map_err(|e| CliError::Usage(format!("--leaked: {}: {e}", path.display())))?;
        return Ok(Revocation::Leaked(
            secrets.into_iter().map(ApiKey::new).collect(),
        ));
    }
    let ids = ids.iter().map(|id| key_id(id)).collect::<Result<_, _>>()?;
    Ok(Revocation::Ids(ids))
}

/// Say on stderr how many `--leaked` entries are not this deployment's key
/// (another prefix, a cut or mangled key, the wrong file): they revoke
/// nothing, and "revoked 0 keys" alone reads as "none of them was live".
/// Never echoed: an entry may be some other secret.
fn say_not_keys(what: &Revocation, prefix: &str) {
    let Revocation::Leaked(secrets) = what else {
        return;
    };
    let not_keys = secrets
        .iter()
        .filter(|s| crate::keys::format::parse(prefix, s.expose()).is_none())
        .count();
    if not_keys > 0 {
        eprintln!(
            "keygate: {not_keys} of the {} entries of --leaked are not keys of this deployment \
             ({prefix}_ followed by its id and secret); they revoke nothing",
            secrets.len()
        );
    }
}

async fn revoke(k: &Keyring, what: Revocation, dry_run: bool) -> Result<(), CliError> {
    if dry_run {
        let n = k
            .would_revoke(&what)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        return stdout_lines(|out| {
            writeln!(
                out,
                "would revoke {} (dry run: nothing revoked)",
                counted(n)
            )
        });
    }
    let done = k
        .revoke(&Actor::cli(), what)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let n = done.count;
    if !done.fleet.unacknowledged.is_empty() {
        eprintln!(
            "keygate: instances {} did not acknowledge; waited until their cache lease ran out",
            done.fleet.unacknowledged.join(", ")
        );
    }
    stdout_lines(|out| writeln!(out, "revoked {}", counted(n)))
}
