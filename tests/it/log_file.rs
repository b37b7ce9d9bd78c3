//! `[log] file` with the real binary: the lines land in the file, SIGHUP
//! reopens it after logrotate renamed it, SIGTERM writes out what is
//! queued, and lines the writer cannot keep up with are counted in
//! `keygate_log_dropped_lines_total` and said in the log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use crate::support::bin::{self, Process};
use crate::support::client::{self, get, HttpsClient};
use crate::support::eventually;
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;

/// A config whose log goes to `log` (JSON, `--log-format json`), with `extra` in `[log]`.
fn config(dir: &Path, ca: &Ca, upstream: &str, log: &str, extra: &str) -> PathBuf {
    let sections = format!(
        "[auth]\nanonymous = \"passthrough\"\n[store]\nkind = \"memory\"\n\
         [log]\nfile = \"{log}\"\n{extra}"
    );
    bin::write_config(dir, ca, "localhost", upstream, &sections)
}

/// The JSON lines of a log file (a line still being written is skipped).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn access_paths(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["target"] == "keygate::access")
        .map(|l| l["path"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The listeners' addresses, from the "keygate listening" line of `lines`.
async fn listening(lines: impl Fn() -> Vec<Value>) -> (SocketAddr, SocketAddr) {
    eventually(
        "keygate logs its addresses to the log file",
        300,
        Duration::from_millis(20),
        || async {
            let l = lines()
                .into_iter()
                .find(|v| v["message"] == "keygate listening")?;
            Some((
                l["addr"].as_str()?.parse().ok()?,
                l["admin"].as_str()?.parse().ok()?,
            ))
        },
    )
    .await
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    eventually(what, 250, Duration::from_millis(20), || async {
        check().then_some(())
    })
    .await;
}

async fn get_ok(c: &HttpsClient, addr: SocketAddr, path: &str) {
    let a = get(c, &format!("https://127.0.0.1:{}{path}", addr.port())).await;
    assert_eq!(a.status, StatusCode::OK, "{path}");
}

#[tokio::test]
async fn access_lines_land_in_the_file_and_sigterm_writes_out_the_rest() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    // Relative: the config file's folder.
    let cfg = config(dir.path(), &ca, &up.url(), "keygate.log", "");
    let log = dir.path().join("keygate.log");
    let mut kg = Process::serve(&cfg);
    let (addr, _) = listening(|| lines(&log)).await;

    let c = client::h1(&ca);
    for i in 0..300 {
        get_ok(&c, addr, &format!("/request-{i}")).await;
    }
    kg.signal("TERM");
    assert_eq!(kg.wait(20).await, 0);

    let written = lines(&log);
    let paths = access_paths(&written);
    let expected: Vec<String> = (0..300).map(|i| format!("/request-{i}")).collect();
    assert_eq!(paths, expected, "one access line per request, in order");
    // The last line keygate logs before it exits is there too: the queue
    // was written out, not dropped with the process.
    let last = written.last().unwrap();
    assert_eq!(last["message"], "keygate stopped", "{last}");
    assert!(
        kg.log_lines().iter().all(|l| !l.is_object()),
        "nothing logged to stderr: {:?}",
        kg.log_lines()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640, "the log file is created 0640");
}

#[tokio::test]
async fn sighup_reopens_the_file_after_logrotate_renamed_it() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    let log = dir.path().join("keygate.log");
    let rotated = dir.path().join("keygate.log.1");
    let cfg = config(dir.path(), &ca, &up.url(), &log.display().to_string(), "");
    let kg = Process::serve(&cfg);
    let (addr, _) = listening(|| lines(&log)).await;
    let c = client::h1(&ca);

    get_ok(&c, addr, "/before-rotation").await;
    wait_for("the first request's line in the file", || {
        access_paths(&lines(&log)).contains(&"/before-rotation".to_owned())
    })
    .await;
    std::fs::rename(&log, &rotated).unwrap();
    kg.signal("HUP");
    wait_for("keygate says it reopened the file, in a new file", || {
        lines(&log)
            .iter()
            .any(|l| l["message"] == "log file reopened")
    })
    .await;
    get_ok(&c, addr, "/after-rotation").await;
    wait_for("the second request's line in the new file", || {
        access_paths(&lines(&log)) == ["/after-rotation"]
    })
    .await;
    assert_eq!(access_paths(&lines(&rotated)), ["/before-rotation"]);
}

/// A FIFO nobody reads: the writer thread blocks once the pipe is full,
/// the queue (`buffer_lines = 16`) fills, and further lines are dropped.
/// Once the FIFO is read again, the warning about them arrives.
#[tokio::test]
async fn lines_the_writer_cannot_keep_up_with_are_counted_and_said() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    let fifo = dir.path().join("keygate.log");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    // Read and write: opening never blocks, and keygate's open finds a reader.
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let cfg = config(
        dir.path(),
        &ca,
        &up.url(),
        &fifo.display().to_string(),
        "buffer_lines = 16",
    );
    let kg = Process::serve(&cfg);

    // Read the FIFO until keygate says where it listens, then stop reading.
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let reading = Arc::new(Mutex::new(true));
    let (s, r) = (seen.clone(), reading.clone());
    std::thread::spawn(move || {
        let mut lines = BufReader::new(pipe).lines();
        loop {
            let Some(Ok(line)) = lines.next() else { return };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            let listening = v["message"] == "keygate listening";
            s.lock().unwrap().push(v);
            if listening {
                *r.lock().unwrap() = false;
                // Paused until the test reads again.
                while !*r.lock().unwrap() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    });
    let (addr, admin) = listening(|| seen.lock().unwrap().clone()).await;
    let c = client::h1(&ca);
    let dropped = || async {
        let a = get(&c, &format!("https://127.0.0.1:{}/metrics", admin.port())).await;
        a.text()
            .lines()
            .find_map(|l| l.strip_prefix("keygate_log_dropped_lines_total "))
            .map(|v| v.parse::<f64>().unwrap())
            .expect("keygate_log_dropped_lines_total in /metrics")
    };
    assert_eq!(dropped().await, 0.0);

    // ~64 KiB of pipe and 16 queued lines: a few hundred requests fill both.
    for i in 0..2000 {
        get_ok(&c, addr, &format!("/r{i}")).await;
    }
    // Requests were answered all along; the loss is in the metric.
    let lost = eventually(
        "the drop counter rises",
        100,
        Duration::from_millis(50),
        || async { Some(dropped().await).filter(|n| *n > 0.0) },
    )
    .await;
    assert!(lost <= 2000.0, "{lost}");

    // Read again: the warning comes through.
    *reading.lock().unwrap() = true;
    eventually(
        "a warning says lines were dropped",
        250,
        Duration::from_millis(20),
        || async {
            seen.lock()
                .unwrap()
                .iter()
                .any(|l| {
                    l["level"] == "WARN"
                        && l["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("log lines dropped"))
                })
                .then_some(())
        },
    )
    .await;
    drop(kg);
}

/// A log file deleted (by hand, to free space, or a rotation without its
/// SIGHUP): keygate makes it again by its path within about two seconds
/// and says why, rather than write on into the deleted file unseen.
#[tokio::test]
async fn a_deleted_log_file_is_made_again_and_the_lines_go_there() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    let log = dir.path().join("keygate.log");
    let cfg = config(dir.path(), &ca, &up.url(), &log.display().to_string(), "");
    let _kg = Process::serve(&cfg);
    let (addr, _) = listening(|| lines(&log)).await;
    let c = client::h1(&ca);

    std::fs::remove_file(&log).unwrap();
    eventually(
        "keygate makes the deleted file again and says so",
        250,
        Duration::from_millis(20),
        || async {
            let said = lines(&log).into_iter().find(|l| {
                l["level"] == "WARN"
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("log.file was deleted or renamed"))
            })?;
            Some(said)
        },
    )
    .await;
    get_ok(&c, addr, "/after-deletion").await;
    wait_for("the request's line in the new file", || {
        access_paths(&lines(&log)).contains(&"/after-deletion".to_owned())
    })
    .await;
}

/// The log metric's value on the admin listener.
async fn dropped_lines(c: &HttpsClient, admin: SocketAddr) -> f64 {
    let a = get(c, &format!("https://127.0.0.1:{}/metrics", admin.port())).await;
    a.text()
        .lines()
        .find_map(|l| l.strip_prefix("keygate_log_dropped_lines_total "))
        .map(|v| v.parse::<f64>().unwrap())
        .expect("keygate_log_dropped_lines_total in /metrics")
}

/// A full disk (`/dev/full` behind the path after a SIGHUP): requests are
/// still answered, the lines that cannot be written are counted in
/// `keygate_log_dropped_lines_total` and said on stderr with the error,
/// and once there is room again (a real file, SIGHUP) lines land there.
#[tokio::test]
async fn lines_lost_to_a_full_disk_are_counted_and_said_on_stderr() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    let log = dir.path().join("keygate.log");
    let cfg = config(dir.path(), &ca, &up.url(), &log.display().to_string(), "");
    let mut kg = Process::serve(&cfg);
    let (addr, admin) = listening(|| lines(&log)).await;
    let c = client::h1(&ca);
    assert_eq!(dropped_lines(&c, admin).await, 0.0);

    std::fs::rename(&log, dir.path().join("keygate.log.1")).unwrap();
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    kg.signal("HUP");
    wait_for("keygate reopened the path: /dev/full", || {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", kg.pid())).unwrap();
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|target| target == Path::new("/dev/full"))
    })
    .await;
    for i in 0..200 {
        get_ok(&c, addr, &format!("/full-{i}")).await;
    }
    eventually(
        "stderr says the log file cannot be written",
        250,
        Duration::from_millis(20),
        || async {
            kg.log_lines()
                .iter()
                .filter_map(Value::as_str)
                .find(|l| l.contains("cannot write to log.file"))
                .map(str::to_owned)
        },
    )
    .await;
    // About 30 access lines fit the writer's 8 KiB buffer; the rest are lost.
    let lost = eventually(
        "the lost lines are counted",
        100,
        Duration::from_millis(50),
        || async { Some(dropped_lines(&c, admin).await).filter(|n| *n >= 150.0) },
    )
    .await;
    assert!(lost <= 210.0, "{lost}");
    let said: Vec<String> = kg
        .log_lines()
        .iter()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    assert!(
        said.iter().any(|l| l.contains(&log.display().to_string())
            && l.contains("No space left on device")
            && l.contains(" lost (keygate_log_dropped_lines_total")),
        "{said:?}"
    );

    // Lost within the minute after it was said: said at exit at the latest.
    for i in 0..20 {
        get_ok(&c, addr, &format!("/full-again-{i}")).await;
    }

    // Room again.
    std::fs::remove_file(&log).unwrap();
    kg.signal("HUP");
    wait_for("keygate reopened a real file", || log.is_file()).await;
    get_ok(&c, addr, "/room-again").await;
    wait_for("the line lands in the new file", || {
        access_paths(&lines(&log)).contains(&"/room-again".to_owned())
    })
    .await;
    kg.signal("TERM");
    assert_eq!(kg.wait(15).await, 0);
    let at_exit: Vec<String> = kg
        .log_lines()
        .iter()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .filter(|l| l.contains("lost at exit"))
        .collect();
    assert_eq!(at_exit.len(), 1, "{at_exit:?}");
    assert!(
        at_exit[0].contains("No space left on device"),
        "{at_exit:?}"
    );
}

#[test]
fn check_names_the_key_of_a_bad_log_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log file CA");
    for (log, extra, key, says) in [
        (
            "no-such-folder/keygate.log",
            "",
            "log.file",
            "does not exist",
        ),
        (
            "keygate.log",
            "buffer_lines = 0",
            "log.buffer_lines",
            "between 1 and",
        ),
    ] {
        let cfg = config(dir.path(), &ca, "http://127.0.0.1:9", log, extra);
        let out = bin::check(&cfg);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(key) && stderr.contains(says), "{stderr}");
    }
}
