//! API keys: the secret a client presents (`ApiKey`), its public id
//! (`KeyId`), and what the store keeps about it (`KeyRecord`, which holds
//! only an HMAC digest of the secret).

pub mod digest;
pub mod format;
pub mod seen;
pub mod user;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use digest::{Digest, DigestKey};

/// A key secret. Its `Debug` is redacted and it has no `Display`, so it
/// cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(text: String) -> Self {
        ApiKey(text)
    }

    /// The secret itself: only for printing it once to its owner, and for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The public id of a key: safe to log, list and revoke by. Twelve base62
/// characters held inline: `Copy`, so the request path (cache, rate limiter,
/// last use) passes ids around without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; format::ID_LEN]);

impl KeyId {
    /// An id as typed by an admin or read from the store; `None` unless it
    /// has the id format.
    pub fn parse(text: &str) -> Option<KeyId> {
        let bytes: [u8; format::ID_LEN] = text.as_bytes().try_into().ok()?;
        format::is_id(text).then_some(KeyId(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a key id is base62")
    }

    /// The id's characters, without checking them again as UTF-8.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.as_str()).finish()
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a key may do: `read` = GET/HEAD/OPTIONS only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Full,
    Read,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "full" => Some(Scope::Full),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Read => "read",
        }
    }
}

/// Where a key was made: shown in the admin listing and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `POST /v1/keys`.
    Admin,
    /// `keygate keys create` (and `keygate dev`'s demo key).
    Cli,
    /// The signed-in user on `/.keygate/keys`.
    SelfService,
    /// Whoever held the key, on `POST /.keygate/revoke` (changes only).
    Possession,
    /// A GitHub secret-scanning report (changes only).
    GithubSecretScanning,
    /// A GitLab secret-scanning report (changes only).
    GitlabSecretScanning,
    /// A key rotating itself on `POST /.keygate/api/rotate` (changes only).
    SelfRotation,
    /// The sweep of keys unused for `keys.revoke_unused_after` (changes only).
    Idle,
    /// An admin signed in on the console, `/.keygate/admin`.
    AdminConsole,
}

impl Source {
    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "admin" => Some(Source::Admin),
            "cli" => Some(Source::Cli),
            "self-service" => Some(Source::SelfService),
            "possession" => Some(Source::Possession),
            "github-secret-scanning" => Some(Source::GithubSecretScanning),
            "gitlab-secret-scanning" => Some(Source::GitlabSecretScanning),
            "self-rotation" => Some(Source::SelfRotation),
            "idle" => Some(Source::Idle),
            "admin-console" => Some(Source::AdminConsole),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Admin => "admin",
            Source::Cli => "cli",
            Source::SelfService => "self-service",
            Source::Possession => "possession",
            Source::GithubSecretScanning => "github-secret-scanning",
            Source::GitlabSecretScanning => "gitlab-secret-scanning",
            Source::SelfRotation => "self-rotation",
            Source::Idle => "idle",
            Source::AdminConsole => "admin-console",
        }
    }
}

/// A key as stored: everything but the secret, which is only a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub user: String,
    pub label: String,
    pub scope: Scope,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None` = never expires.
    pub expires_at: Option<u64>,
    pub digest: Digest,
    /// Unix seconds of the last authenticated use (written at most once a minute).
    pub last_used: Option<u64>,
    /// `None` for records written before keygate recorded it.
    pub source: Option<Source>,
    /// The key this one replaced (`Keyring::rotate`).
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one; set, this key lives out its grace period.
    pub rotated_to: Option<KeyId>,
    /// Unix seconds when the first key of this key's rotation chain was
    /// made, when that was before this key (self-rotation carries it: a
    /// chain never outlives `keys.max_ttl` from its start).
    pub chain_started: Option<u64>,
}

impl KeyRecord {
    /// When the first key of this key's rotation chain was made.
    pub fn chain_start(&self) -> u64 {
        self.chain_started.unwrap_or(self.created_at)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A freshly minted key: the secret (shown once) and its record.
pub struct NewKey {
    pub key: ApiKey,
    pub record: KeyRecord,
}

/// Mint a key for `user` that lives `ttl` (`None` = never).
pub fn mint(
    prefix: &str,
    digest_key: &DigestKey,
    user: &str,
    label: &str,
    scope: Scope,
    ttl: Option<Duration>,
) -> NewKey {
    let (key, id) = format::generate(prefix, user);
    let now = unix_now();
    let record = KeyRecord {
        id,
        user: user.to_owned(),
        label: label.to_owned(),
        scope,
        created_at: now,
        expires_at: ttl.map(|t| now + t.as_secs().max(1)),
        digest: digest_key.digest(key.expose()),
        last_used: None,
        source: None,
        rotated_from: None,
        rotated_to: None,
        chain_started: None,
    };
    NewKey { key, record }
}

/// A key as listed (CLI `--json`, admin API): never the secret or its digest.
#[derive(Debug, Serialize)]
pub struct KeyView<'a> {
    pub id: &'a KeyId,
    pub user: &'a str,
    pub label: &'a str,
    pub scope: Scope,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Absent for records made before keygate recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The key this one replaced; absent unless it was made by a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<&'a KeyId>,
    /// The key that replaced this one; absent unless it was rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<&'a KeyId>,
}

impl KeyRecord {
    pub fn view(&self) -> KeyView<'_> {
        KeyView {
            id: &self.id,
            user: &self.user,
            label: &self.label,
            scope: self.scope,
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            last_used_at: self.last_used.map(rfc3339),
            source: self.source,
            rotated_from: self.rotated_from.as_ref(),
            rotated_to: self.rotated_to.as_ref(),
        }
    }
}

/// A key just created: the one answer that carries the secret.
#[derive(Serialize)]
pub struct NewKeyView<'a> {
    pub id: &'a KeyId,
    pub key: &'a str,
    pub user: &'a str,
    pub label: &'a str,
    pub scope: Scope,
    pub created_at: String,
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The key this one replaced (a rotation's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<&'a KeyId>,
}

impl NewKey {
    pub fn view(&self) -> NewKeyView<'_> {
        let r = &self.record;
        NewKeyView {
            id: &r.id,
            key: self.key.expose(),
            user: &r.user,
            label: &r.label,
            scope: r.scope,
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            source: r.source,
            rotated_from: r.rotated_from.as_ref(),
        }
    }
}

/// "1 key", "2 keys": a count of keys as people write it.
pub fn counted(n: u64) -> String {
    if n == 1 {
        "1 key".to_owned()
    } else {
        format!("{n} keys")
    }
}

/// RFC 3339 UTC time of unix seconds.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
