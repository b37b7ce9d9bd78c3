//! The real `keygate` binary, for the command line, signals and memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_keygate");

pub fn check(config: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "-c"])
        .arg(config)
        .output()
        .unwrap()
}

/// `keygate <command> <subcommand> -c config <rest>` (e.g. `["keys",
/// "create", "--user", "alice"]`), which must succeed: its stdout, trimmed.
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args([args[0], args[1], "-c"])
        .arg(config)
        .args(&args[2..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A config file for the real binary in `dir`: a TLS listener on
/// 127.0.0.1:0 with a `leaf` certificate of `ca`, `upstream`, an admin
/// listener with a token file, then `sections` (at least `[store]`).
pub fn write_config(
    dir: &Path,
    ca: &super::tls::Ca,
    leaf: &str,
    upstream: &str,
    sections: &str,
) -> PathBuf {
    let (cert, key) = ca.leaf(leaf).write(dir);
    let cfg = dir.join("keygate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [upstream]\nurl = \"{upstream}\"\n\
             [admin]\naddr = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n{sections}",
            cert.display(),
            key.display(),
            super::admin_token_file(dir).display()
        ),
    )
    .unwrap();
    cfg
}

/// `keygate serve` with JSON logs collected from stderr.
pub struct Process {
    child: Child,
    pub logs: Arc<Mutex<Vec<serde_json::Value>>>,
    /// The process's TMPDIR: what it leaves there when killed (`keygate
    /// dev`'s admin token file) goes with the test.
    _tmp: tempfile::TempDir,
}

impl Process {
    pub fn serve(config: &Path) -> Process {
        Process::serve_in(config, Path::new("."))
    }

    /// `keygate serve` started in the directory `cwd`.
    pub fn serve_in(config: &Path, cwd: &Path) -> Process {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--log-format", "json", "-c"])
            .arg(config)
            .current_dir(cwd);
        Process::spawn(cmd)
    }

    /// Any `keygate` command; each stderr line is kept, parsed when it is JSON.
    pub fn spawn(mut cmd: Command) -> Process {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = cmd
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                sink.lock().unwrap().push(v);
            }
        });
        Process {
            child,
            logs,
            _tmp: tmp,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The main listener's address, from the "keygate listening" log line.
    pub async fn main_addr(&self) -> SocketAddr {
        self.listening("addr").await
    }

    /// The admin listener's address, from the same log line.
    pub async fn admin_addr(&self) -> SocketAddr {
        self.listening("admin").await
    }

    /// The auth listener's address (`[authz] addr`), from the same log line.
    pub async fn authz_addr(&self) -> SocketAddr {
        self.listening("authz").await
    }

    async fn listening(&self, field: &str) -> SocketAddr {
        super::eventually(
            &format!("keygate logs its {field} address"),
            300,
            Duration::from_millis(20),
            || async {
                self.logs
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|v| v["message"] == "keygate listening")
                    .and_then(|v| v[field].as_str()?.parse().ok())
            },
        )
        .await
    }

    /// Wait until a log line's message contains `text`.
    /// Wait for the first log line whose message holds `text`; that line.
    pub async fn logged(&self, text: &str) -> serde_json::Value {
        super::eventually(
            &format!("a log line says {text:?}"),
            250,
            Duration::from_millis(20),
            || async {
                self.logs
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
                    .cloned()
            },
        )
        .await
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig}");
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs.lock().unwrap().clone()
    }

    /// The exit code, if keygate has exited.
    pub fn exited(&mut self) -> Option<i32> {
        let status = self.child.try_wait().unwrap()?;
        Some(status.code().unwrap_or(-1))
    }

    /// Wait for exit (bounded); returns the exit code.
    pub async fn wait(&mut self, secs: u64) -> i32 {
        for _ in 0..secs * 50 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("keygate did not exit within {secs}s");
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
