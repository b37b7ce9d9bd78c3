//! Logging setup. Events are structured (`client`, `status`, `key_id`, ...);
//! no event carries a key secret: secrets are typed so that they cannot be
//! formatted (see `auth::Credential`'s Debug). The access line is a
//! product feature rather than a diagnostic event: it skips tracing and has
//! a formatter of its own (`access_line`, [`access`]).
//!
//! A request's thread formats its line and queues it (`log.buffer_lines`);
//! one writer thread writes the queue to stderr or `[log] file`. A full
//! queue drops the line rather than stall requests: the drops are counted
//! (`keygate_log_dropped_lines_total`) and said in the log (`Logging::watch`).
//! Lines the writer cannot write (a full disk) are counted in the same
//! metric and said on stderr (`write_errors`).
//! Dropping [`Logging`] writes out what is queued (SIGTERM loses nothing).

mod access_line;
#[cfg(test)]
pub(crate) mod captured;
mod log_file;
pub mod throttle;
mod timestamp;
mod write_errors;

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{silences_keygate, LogFormat};
use crate::metrics::Metrics;
pub use access_line::AccessLine;
use log_file::LogFile;
use throttle::Throttled;
use timestamp::Timestamps;
use write_errors::WriteErrors;

/// Where the lines go and how many may wait for the writer.
pub struct Output<'a> {
    /// `None`: stderr.
    pub file: Option<&'a Path>,
    pub buffer_lines: usize,
}

impl Output<'_> {
    /// stderr, tracing-appender's default queue (`keygate dev`).
    pub const STDERR: Output<'static> = Output {
        file: None,
        buffer_lines: tracing_appender::non_blocking::DEFAULT_BUFFERED_LINES_LIMIT,
    };
}

/// The installed log writer. Keep it until the process ends: dropping it
/// writes out the queue.
pub struct Logging {
    file: Option<LogFile>,
    dropped: ErrorCounter,
    write_errors: Arc<WriteErrors>,
    /// Dropped first by `Drop`: the queue written out, then what could
    /// not be written said.
    flush_on_drop: Option<WorkerGuard>,
}

impl Drop for Logging {
    /// The queue written out (SIGTERM loses nothing that can be written),
    /// then the lines lost and not yet said (the watch says them at most
    /// once a minute, and "keygate stopped" may be one): straight to
    /// stderr, as nothing logs any more.
    fn drop(&mut self) {
        drop(self.flush_on_drop.take());
        let lost = self.write_errors.take_unsaid();
        if lost > 0 {
            let error = self.write_errors.last_error().unwrap_or_default();
            let to = match &self.file {
                Some(f) => format!("log.file {}", f.path().display()),
                None => "stderr".to_owned(),
            };
            lost_on_stderr(
                &to,
                &error,
                lost,
                " at exit (keygate_log_dropped_lines_total)",
            );
        }
    }
}

/// Install the global subscriber. `RUST_LOG`, when set, overrides `level`.
/// Fails only when `[log] file` cannot be opened.
pub fn init(format: LogFormat, level: &str, output: Output<'_>) -> std::io::Result<Logging> {
    let (filter, bad_env) = filter(level);
    let file = output.file.map(LogFile::open).transpose()?;
    let builder = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(output.buffer_lines)
        .thread_name("keygate-log");
    let write_errors = Arc::new(WriteErrors::default());
    let (writer, guard) = match &file {
        Some(f) => builder.finish(write_errors.counting(f.clone())),
        // Buffered: the writer thread flushes after each batch it takes.
        None => builder.finish(write_errors.counting(std::io::BufWriter::new(std::io::stderr()))),
    };
    let dropped = writer.error_counter();
    let ansi = colours(file.is_none() && std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some(error) = bad_env {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; using [log] level instead");
    }
    // The filter is fixed from now on: ask it once whether access lines pass.
    let wanted = tracing::enabled!(target: "keygate::access", tracing::Level::INFO);
    // JSON has no colours: its lines take the fast way at a terminal too,
    // so they are the same bytes wherever they go.
    let json = format == LogFormat::Json;
    if installed.is_ok() && wanted && (json || !ansi) {
        let _ = ACCESS.set(AccessSink { json, writer });
    }
    Ok(Logging {
        file,
        dropped,
        write_errors,
        flush_on_drop: Some(guard),
    })
}

/// `RUST_LOG` when it says something, else `[log] level`. An empty one is
/// unset (it would allow errors only: `Environment=RUST_LOG=` silenced every
/// warning); one that does not parse is returned to be said once logging
/// is in place, not ignored in silence, and so is one that lets none of
/// keygate's own lines through.
fn filter(level: &str) -> (EnvFilter, Option<String>) {
    let configured = || EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(text) if text.trim().is_empty() => (configured(), None),
        Ok(text) => match (EnvFilter::try_new(&text), silences_keygate(&text)) {
            // `RUST_LOG=warning` parses, as a target's name: keygate
            // would start and say nothing, this warning included.
            (Ok(_), Some(why)) => (configured(), Some(why)),
            (Ok(filter), None) => (filter, None),
            (Err(e), _) => (configured(), Some(format!("{text:?}: {e}"))),
        },
        Err(std::env::VarError::NotPresent) => (configured(), None),
        Err(e) => (configured(), Some(e.to_string())),
    }
}

/// The access line's own way to the writer thread (the queue tracing's
/// events take, so that the lines stay in order).
struct AccessSink {
    json: bool,
    writer: NonBlocking,
}

static ACCESS: OnceLock<AccessSink> = OnceLock::new();

thread_local! {
    /// A request thread's line buffer and timestamp cache, reused line after line.
    static LINE: RefCell<(Vec<u8>, Timestamps)> = RefCell::new((Vec::with_capacity(512), Timestamps::default()));
}

/// Log one request's access line: straight to the writer's queue once
/// [`init`] installed it (no colours, the filter lets `keygate::access`
/// through), else as a tracing event (colours, tests, another subscriber).
pub fn access(line: &AccessLine<'_>) {
    let Some(sink) = ACCESS.get() else {
        return line.trace();
    };
    LINE.with_borrow_mut(|(buf, stamps)| {
        buf.clear();
        line.write(sink.json, SystemTime::now(), stamps, buf);
        // Lossy: a full queue counts the line in `dropped` and returns Ok.
        let _ = sink.writer.clone().write_all(buf);
    });
}

// === impl Logging ===

impl Logging {
    /// SIGHUP: reopen `[log] file` by its path (after logrotate renamed it).
    /// Off the runtime: a writer stuck on a write that blocks (a full pipe,
    /// a hung NFS mount) holds the file's lock, and the serve loop must
    /// still hear SIGTERM meanwhile.
    pub fn reopen(&self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        tokio::task::spawn_blocking(move || match file.reopen() {
            Ok(()) => tracing::info!(file = %file.path().display(), "log file reopened"),
            Err(e) => tracing::error!(
                file = %file.path().display(), error = %e,
                "cannot reopen log.file; still writing to the file opened before"
            ),
        });
    }

    /// Every second: reopen `[log] file` when its path no longer names
    /// it (`reopen_if_gone`); add the lines dropped since the last look to the
    /// metric and say so in the log (that line may itself be dropped; then
    /// it is counted and said the next second). Lines the writer could not
    /// write are counted too, and said at most once a minute: on stderr
    /// when the log goes to `[log] file` (the file is what fails), else in
    /// the log.
    pub fn watch(&self, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        if let Some(f) = self.file.clone() {
            // A thread of its own: a stat or an open may block (a hung
            // NFS mount, a reopen waiting on a writer stuck on a pipe).
            let _ = std::thread::Builder::new()
                .name("keygate-log-file".into())
                .spawn(move || {
                    let mut gone = GoneFile::default();
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                        gone.reopen_if_gone(&f);
                    }
                });
        }
        let dropped = self.dropped.clone();
        let errors = self.write_errors.clone();
        let file = self.file.as_ref().map(|f| f.path().to_owned());
        tokio::spawn(async move {
            let mut seen = 0;
            let mut seen_lost = 0;
            let mut say_lost = Throttled::each_minute();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = dropped.dropped_lines();
                if now > seen {
                    let lines = now - seen;
                    metrics.log_dropped_lines(lines as u64);
                    tracing::warn!(
                        dropped = lines,
                        total = now,
                        "the log writer fell behind: {lines} log lines dropped (log.buffer_lines)"
                    );
                    seen = now;
                }
                let lost = errors.lost();
                if lost > seen_lost {
                    metrics.log_dropped_lines(lost - seen_lost);
                    seen_lost = lost;
                }
                if errors.any_unsaid() && say_lost.due(Instant::now()).is_some() {
                    let error = errors.last_error().unwrap_or_default();
                    say_lost_lines(file.as_deref(), &error, errors.take_unsaid());
                }
            }
        })
    }
}

/// `[log] file` deleted, or renamed and not followed by a SIGHUP: its
/// lines would go on into a file nobody reads (a deleted one filling the
/// disk unseen), so it is reopened by its path, as SIGHUP does.
#[derive(Default)]
struct GoneFile {
    /// Not the file written at the last look: a logrotate rename is
    /// followed by a new file (`create`) and its SIGHUP at once, so a path
    /// is reopened only once it named another file, or none, a whole second.
    away: bool,
    cannot_reopen: Option<Throttled>,
}

impl GoneFile {
    fn reopen_if_gone(&mut self, file: &LogFile) {
        let what = match file.at_path() {
            log_file::AtPath::Same => {
                self.away = false;
                return;
            }
            _ if !std::mem::replace(&mut self.away, true) => return,
            log_file::AtPath::Missing => "deleted or renamed",
            log_file::AtPath::Other => "replaced by another file",
        };
        match file.reopen_if_moved() {
            Ok(false) => self.away = false,
            Ok(true) => {
                self.away = false;
                self.cannot_reopen = None;
                tracing::warn!(
                    file = %file.path().display(),
                    "log.file was {what} and no SIGHUP followed within a second; \
                     reopened it by its path (the lines before went to the old file)"
                );
            }
            Err(e) => {
                let throttle = self
                    .cannot_reopen
                    .get_or_insert_with(Throttled::each_minute);
                if let Some(unsaid) = throttle.due(Instant::now()) {
                    tracing::error!(
                        file = %file.path().display(), error = %e, unlogged = unsaid,
                        "log.file was {what} and cannot be made again; still writing to the old file"
                    );
                    // That line goes to the old file, which nobody may see
                    // any more: stderr (journald) too.
                    let _ = writeln!(
                        std::io::stderr(),
                        "keygate: log.file {} was {what} and cannot be made again ({e}); \
                         still writing to the old file (said at most once a minute)",
                        file.path().display()
                    );
                }
            }
        }
    }
}

/// Say that `lines` log lines could not be written. To `[log] file`'s
/// reader on stderr (journald under systemd), straight rather than through
/// the queue: a line queued for the file would be lost, and counted, too.
fn say_lost_lines(file: Option<&Path>, error: &str, lines: u64) {
    let Some(file) = file else {
        // The log is stderr: this line is written if stderr works again.
        return tracing::error!(
            lost = lines,
            error,
            "cannot write the log to stderr: {} lost",
            lines_of(lines)
        );
    };
    lost_on_stderr(
        &format!("log.file {}", file.display()),
        error,
        lines,
        " (keygate_log_dropped_lines_total; said at most once a minute)",
    );
}

/// `keygate: cannot write to <to>: <error>: N log lines lost<note>`, on stderr.
fn lost_on_stderr(to: &str, error: &str, lines: u64, note: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "keygate: cannot write to {to}: {error}: {} lost{note}",
        lines_of(lines)
    );
}

/// "1 log line", "2 log lines".
fn lines_of(n: u64) -> String {
    match n {
        1 => "1 log line".to_owned(),
        n => format!("{n} log lines"),
    }
}

/// Colours only for a person at a terminal: a file, a pipe or journald gets
/// plain text. `NO_COLOR` (no-color.org) turns them off there too.
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Client-controlled text (user names, audit targets) as a log field.
/// Plain text stays as it is (and is not copied); text that could forge
/// something in the `human` format is quoted and escaped as Rust's `Debug`
/// does: a control character (a newline would start a forged line), an
/// invisible or direction-changing one (`U+202E` turns what follows it
/// around, `U+2028` breaks the line in some viewers: `keys::user`), or
/// whitespace and `=` (`bob action=revoke` would read as a field of its
/// own). Other UTF-8 (`zoë`, `例え`) stays as it is. JSON logs escape on
/// their own; the quoting shows there only for such text.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    let forges_a_line = text
        .chars()
        .any(|c| c.is_control() || crate::keys::user::is_invisible(c));
    let forges_a_field = text.contains('=') && text.chars().any(char::is_whitespace);
    if !(forges_a_line || forges_a_field) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(format!("{text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// logrotate's `create`: the file renamed away and a new one made, its
    /// SIGHUP a moment later. The watch leaves that a second (no warning
    /// on every rotation); a path that still names another file after it
    /// is reopened.
    #[test]
    fn a_file_replaced_is_reopened_only_when_it_stays_replaced_a_whole_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("keygate.log.1")).unwrap();
        std::fs::write(&path, "").unwrap();
        let mut gone = GoneFile::default();
        gone.reopen_if_gone(&log);
        assert_eq!(log.at_path(), log_file::AtPath::Other, "reopened at once");
        gone.reopen_if_gone(&log);
        assert_eq!(log.at_path(), log_file::AtPath::Same);
    }

    #[test]
    fn control_characters_in_logged_text_are_escaped() {
        assert_eq!(escaped("alice"), "alice");
        assert!(matches!(
            escaped("DOMAIN\\bob é"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escaped("mallory\r\n2026-12-05T18:11:00Z  INFO keygate::audit: x\t\u{1b}[31m"),
            "\"mallory\\r\\n2026-12-05T18:11:00Z  INFO keygate::audit: x\\t\\u{1b}[31m\""
        );
        assert_eq!(
            escaped("bob action=revoke target=all"),
            "\"bob action=revoke target=all\""
        );
        // Compact JSON (the settings' audit target) and a list of users
        // forge nothing: as they are.
        assert_eq!(
            escaped(r#"{"default_ttl":"30d"}"#),
            r#"{"default_ttl":"30d"}"#
        );
        assert_eq!(escaped("users alice,bob"), "users alice,bob");
        // UTF-8 names as they are; a direction override or a line
        // separator, which no name may hold, escaped.
        assert_eq!(escaped("zoë, josé@例え.jp"), "zoë, josé@例え.jp");
        assert_eq!(
            escaped("users al\u{202E}ecila"),
            "\"users al\\u{202e}ecila\""
        );
        assert_eq!(escaped("a\u{2028}b\u{85}"), "\"a\\u{2028}b\\u{85}\"");
    }
}
