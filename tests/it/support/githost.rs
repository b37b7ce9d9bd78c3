//! A real git smart-HTTP server: `git http-backend` behind Python's CGI
//! server on 127.0.0.1:0, serving one bare repository with one commit.
//! Killed on drop.
//!
//! Python's CGI handler passes only a few request headers to the script, so
//! the host itself records, per request, the `X-Remote-User` it received and
//! whether an `Authorization` header reached it (see `requests`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The CGI host. `CGIHTTPRequestHandler` exists up to Python 3.14.
const SERVER: &str = r#"
import functools, http.server, sys
root, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)

class Handler(http.server.CGIHTTPRequestHandler):
    # The fork path setuid()s to `nobody` when run as root, who cannot
    # read the test's 0700 temp dir; the subprocess path keeps our user.
    have_fork = False

    def run_cgi(self):
        log.write("%s %s user=%s authorization=%s\n" % (
            self.command, self.path, self.headers.get("X-Remote-User"),
            "Authorization" in self.headers))
        super().run_cgi()

srv = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=root))
print(srv.server_address[1], flush=True)  # listening from here on
srv.serve_forever()
"#;

pub struct GitHost {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl GitHost {
    /// Serve `/cgi-bin/git/repo.git` whose one commit adds `file` with `content`.
    /// Blocking: call it from `spawn_blocking` in async tests.
    pub fn start(file: &str, content: &str) -> GitHost {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        std::fs::write(work.join(file), content).unwrap();
        git(&work, &["add", file]);
        git(
            &work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "first",
            ],
        );
        let root = dir.path().join("www");
        let projects = root.join("projects");
        std::fs::create_dir_all(root.join("cgi-bin")).unwrap();
        git(
            dir.path(),
            &["clone", "-q", "--bare", "work", "www/projects/repo.git"],
        );

        let script = root.join("cgi-bin/git");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexport GIT_PROJECT_ROOT='{}' GIT_HTTP_EXPORT_ALL=1\nexec git http-backend\n",
                projects.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(&root)
            .arg(dir.path().join("requests.log"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("python3 is installed");
        // The port line comes once the socket listens; EOF means python died.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            panic!("the git host did not start:\n{log}");
        };
        GitHost { port, child, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One line per request: `METHOD PATH user=X-Remote-User authorization=True|False`.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The server's stderr: its access log and any CGI errors, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for GitHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run git in `dir`, ignoring the machine's and the user's git config.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
