//! Real Basic-auth clients through keygate, configured the way the README
//! tells users to: the key in a `.netrc` as the password of `apikey`, the
//! gateway's CA as the trust anchor. curl, Python `requests`, and `git clone`.
//! Every gateway here rejects anonymous requests, so a client that reached
//! the upstream did so with the key from its `.netrc`.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::{builder, TestGateway};
use crate::support::githost::GitHost;
use crate::support::upstream::Upstream;

/// A user's files in a temp dir: `ca.pem` (the gateway's CA) and `.netrc`.
struct UserFiles {
    dir: tempfile::TempDir,
}

impl UserFiles {
    fn new(gw: &TestGateway, key: &str) -> UserFiles {
        let files = UserFiles {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(files.ca(), gw.ca.pem()).unwrap();
        files.set_key(key);
        files
    }

    /// Rewrite `.netrc` with `key`, mode 0600 as users are told.
    fn set_key(&self, key: &str) {
        let netrc = self.netrc();
        std::fs::write(
            &netrc,
            format!("machine 127.0.0.1 login apikey password {key}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn netrc(&self) -> PathBuf {
        self.dir.path().join(".netrc")
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

async fn reject_gateway(upstream_url: &str) -> TestGateway {
    builder(upstream_url)
        .set("auth", "anonymous = \"reject\"")
        .start()
        .await
}

/// `cmd` with no proxy, no askpass helper and no user config from the test
/// machine's environment deciding the outcome.
fn isolated(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_CONFIG_GLOBAL",
        "XDG_CONFIG_HOME",
        "NETRC",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Run `cmd` on a blocking thread; kill it (and anything it started) after
/// `secs`, so a client stuck on a prompt or a stalled transfer fails the test.
async fn run(mut cmd: Command, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    tokio::task::spawn_blocking(move || {
        // Its own process group: git's helpers (git-remote-https) die with it.
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                panic!("{what} did not finish within {secs}s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    })
    .await
    .unwrap()
}

/// `key` with its last character changed: the shape of a key, not a valid one.
fn wrong(key: &str) -> String {
    let mut k = key.to_owned();
    let last = k.pop().unwrap();
    k.push(if last == 'a' { 'b' } else { 'a' });
    k
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_owned()
}

/// The upstream got the request as `user`, and the key went no further.
fn assert_reached_as(up: &Upstream, user: &str, key: &str) {
    let seen = up.last();
    assert_eq!(seen.headers["x-remote-user"], user);
    assert!(
        !seen.headers.contains_key("authorization"),
        "the credential was forwarded"
    );
    for (_, v) in &seen.headers {
        assert!(
            !v.as_bytes().windows(key.len()).any(|w| w == key.as_bytes()),
            "the key reached the upstream"
        );
    }
}

/// `curl --netrc-file F --cacert ca.pem URL`; returns the status code curl saw.
async fn curl_status(files: &UserFiles, url: &str) -> String {
    let mut cmd = isolated("curl");
    // -q first: ignore any ~/.curlrc.
    cmd.args(["-q", "-sS", "--max-time", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_code}", "--netrc-file"])
        .arg(files.netrc())
        .arg("--cacert")
        .arg(files.ca())
        .arg(url);
    let out = run(cmd, 20).await;
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test]
async fn curl_with_the_key_in_a_netrc_file() {
    let up = Upstream::start().await;
    let gw = reject_gateway(&up.url()).await;
    let (key, _) = gw.key("alice@example.org").await;
    let files = UserFiles::new(&gw, &key);

    assert_eq!(curl_status(&files, &gw.url("/x")).await, "200");
    assert_reached_as(&up, "alice@example.org", &key);
    assert_eq!(up.last().uri.path(), "/x");

    let forwarded = up.requests().len();
    files.set_key(&wrong(&key));
    assert_eq!(curl_status(&files, &gw.url("/x")).await, "401");
    assert_eq!(up.requests().len(), forwarded, "a wrong key was forwarded");
}

#[tokio::test]
async fn python_requests_reads_the_netrc_named_by_the_environment() {
    let up = Upstream::start().await;
    let gw = reject_gateway(&up.url()).await;
    let (key, _) = gw.key("alice@example.org").await;
    let files = UserFiles::new(&gw, &key);

    // No auth argument: requests falls back to the .netrc that NETRC names.
    let mut cmd = isolated("python3");
    cmd.args([
        "-c",
        "import sys, requests; print(requests.get(sys.argv[1], timeout=10).status_code)",
        &gw.url("/x"),
    ])
    .env("NETRC", files.netrc())
    .env("REQUESTS_CA_BUNDLE", files.ca());
    let out = run(cmd, 30).await;
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "200");
    assert_reached_as(&up, "alice@example.org", &key);
}

/// `git clone URL dest` as a user whose HOME holds only `files`.
async fn git_clone(files: &UserFiles, url: &str, dest: &Path) -> Output {
    let mut cmd = isolated("git");
    cmd.args(["clone", "-q", url])
        .arg(dest)
        .env("HOME", files.home())
        .env("GIT_SSL_CAINFO", files.ca())
        // A refused key must end the clone, not wait for a user name.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    run(cmd, 60).await
}

#[tokio::test]
async fn git_clone_over_https_with_the_key_in_netrc() {
    let host =
        tokio::task::spawn_blocking(|| GitHost::start("hello.txt", "hello through keygate\n"))
            .await
            .unwrap();
    let gw = reject_gateway(&host.url()).await;
    let (key, _) = gw.key("alice@example.org").await;
    let files = UserFiles::new(&gw, &key);
    let url = gw.url("/cgi-bin/git/repo.git");
    let out_dir = tempfile::tempdir().unwrap();

    let dest = out_dir.path().join("good");
    let out = git_clone(&files, &url, &dest).await;
    assert!(
        out.status.success(),
        "git clone: {}\ngit host:\n{}",
        text(&out.stderr),
        host.log()
    );
    // Exit 0 is not enough: the CGI host answers 200 even when the backend
    // fails, and git then "clones" an empty repository.
    let cloned = std::fs::read_to_string(dest.join("hello.txt")).unwrap_or_else(|e| {
        panic!(
            "no hello.txt in the clone ({e}): {}\ngit host:\n{}",
            text(&out.stderr),
            host.log()
        )
    });
    assert_eq!(cloned, "hello through keygate\n");
    let seen = host.requests();
    assert!(!seen.is_empty(), "the git host saw no request");
    for line in &seen {
        assert!(
            line.ends_with(" user=alice@example.org authorization=False"),
            "{line}"
        );
    }

    files.set_key(&wrong(&key));
    let dest = out_dir.path().join("refused");
    let out = git_clone(&files, &url, &dest).await;
    assert!(!out.status.success(), "a wrong key cloned the repository");
    assert!(!dest.join("hello.txt").exists());
    assert_eq!(host.requests().len(), seen.len(), "a wrong key reached git");
}
