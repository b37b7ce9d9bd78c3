//! A real `redis-server` per test on a free loopback port; killed on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Child,
    /// Its working directory (`dump.rdb`), removed on drop.
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(|_, _| Vec::new())
    }

    /// A server with extra arguments, given its port and its own directory
    /// (replica, cluster node, TLS).
    pub fn start_with(extra: impl Fn(u16, &std::path::Path) -> Vec<String>) -> RedisServer {
        // A port another test grabs between our probe and redis's bind makes
        // redis exit; try a few ports before giving up.
        (0..5)
            .find_map(|_| RedisServer::spawn(free_port(), &extra))
            .expect("redis-server did not start")
    }

    /// A server on `port` (a Redis that comes up where keygate already looks).
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::spawn(port, &|_, _| Vec::new()).expect("redis-server did not start")
    }

    /// Kill the server and start an empty one on the same port: what a
    /// Redis without persistence looks like after a restart.
    pub fn restart_empty(&mut self) {
        self.kill();
        *self = RedisServer::start_on(self.port);
    }

    /// Save the data, kill the server and start it again on the same port
    /// from that data: a restart of a Redis with persistence. Every client
    /// connection dies with the old process.
    pub fn restart(&mut self) {
        self.stop_saved();
        self.start_saved();
    }

    /// The first half of `restart`: save the data and kill the server.
    pub fn stop_saved(&mut self) {
        let saved: redis::RedisResult<String> = redis::Client::open(self.url())
            .and_then(|c| redis::cmd("SAVE").query(&mut c.get_connection()?));
        assert_eq!(saved.as_deref(), Ok("OK"), "SAVE before the restart");
        self.kill();
    }

    /// The second half: start it again on its port from the saved data.
    pub fn start_saved(&mut self) {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        *self = RedisServer::spawn_in(self.port, dir, &|_, _| Vec::new())
            .expect("redis-server restarts on its port");
    }

    fn spawn(
        port: u16,
        extra: &impl Fn(u16, &std::path::Path) -> Vec<String>,
    ) -> Option<RedisServer> {
        RedisServer::spawn_in(port, tempfile::tempdir().unwrap(), extra)
    }

    /// A server on `port` in `dir` (where it loads `dump.rdb` from, if any).
    fn spawn_in(
        port: u16,
        dir: tempfile::TempDir,
        extra: &impl Fn(u16, &std::path::Path) -> Vec<String>,
    ) -> Option<RedisServer> {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                // A replica's first sync starts at once, not after 5 s.
                "--repl-diskless-sync-delay",
                "0",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(extra(port, dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let child = await_ping(child, port)?;
        Some(RedisServer { port, child, dir })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A new ACL user `name` with every right (until the test takes some
    /// away with [`RedisServer::acl`]): the URL keygate signs in with as it.
    pub fn own_user(&self, name: &str) -> String {
        let password = format!("{name}-pw");
        self.acl(&[
            "SETUSER",
            name,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ]);
        format!("redis://{name}:{password}@127.0.0.1:{}/0", self.port)
    }

    /// `ACL args…` as the default user, e.g. `["SETUSER", "kg", "-publish"]`:
    /// Redis then refuses that user's PUBLISH, whatever keygate retries.
    pub fn acl(&self, args: &[&str]) {
        let done: redis::RedisResult<String> = redis::Client::open(self.url())
            .and_then(|c| redis::cmd("ACL").arg(args).query(&mut c.get_connection()?));
        assert_eq!(done.as_deref(), Ok("OK"), "ACL {args:?}");
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers.
    /// Returns once the kernel says it is stopped: `kill` returns when the
    /// signal is sent, and a server running on another core can answer one
    /// more command before it takes effect.
    pub fn freeze(&self) {
        assert!(self.signal("STOP"), "kill -STOP redis-server");
        let stat = format!("/proc/{}/stat", self.child.id());
        for _ in 0..500 {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // pid (comm) STATE ...: T is stopped.
            if text
                .rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('T'))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("redis-server did not stop within 1 s of SIGSTOP: {stat}");
    }

    pub fn thaw(&self) {
        assert!(self.signal("CONT"), "kill -CONT redis-server");
    }

    fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stop the server now (store-outage tests).
    pub fn kill(&mut self) {
        // A frozen server must be able to die; a dead one ignores this.
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The child once it answers PING on `port` (10 s at most); `None` (and
/// the child reaped) if it exited, e.g. because the port was taken.
pub fn await_ping(mut child: Child, port: u16) -> Option<Child> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ping(port) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config snippet for `[store]` pointing at `redis` with a fresh secret file in `dir`.
pub fn store_section(redis: &RedisServer, dir: &std::path::Path, namespace: &str) -> Vec<String> {
    store_section_for(&redis.url(), dir, namespace)
}

/// The same for any `store.url` (cluster, sentinel forms).
pub fn store_section_for(url: &str, dir: &std::path::Path, namespace: &str) -> Vec<String> {
    let secret = dir.join(format!("secret-{namespace}"));
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef-test-secret\n").unwrap();
    vec![
        "kind = \"redis\"".into(),
        format!("url = \"{url}\""),
        format!("namespace = \"{namespace}\""),
        format!("secret_file = \"{}\"", secret.display()),
        "timeout = \"500ms\"".into(),
    ]
}
