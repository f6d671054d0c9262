//! A `redis-server` of a test's own: Debian's binary on a free port of
//! 127.0.0.1, in a temporary directory, killed (by its PID) when dropped.
//!
//! Where the binary is missing, [`RedisServer::start`] returns `None` so a
//! test can say it skipped, unless `CI` is set: then a missing server is a
//! failure (`.ci/run` installs it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const STARTUP: Duration = Duration::from_secs(20);

/// Durability settings of a started server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing written to disk (the default for tests).
    None,
    /// An append-only file synced on every write (`appendfsync always`):
    /// a restarted server has everything it acknowledged.
    AofAlways,
}

/// A running `redis-server`, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
}

impl RedisServer {
    /// Starts a server with nothing persisted, or `None` (having printed
    /// that the caller skipped) when `redis-server` is not installed and
    /// `CI` is unset.
    ///
    /// # Panics
    ///
    /// When `CI` is set and there is no `redis-server`, or when the server
    /// does not answer within 20 seconds.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(Persistence::None)
    }

    /// As [`start`](Self::start), with the given durability.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(persistence: Persistence) -> Option<RedisServer> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but redis-server is missing: .ci/run installs it"
            );
            eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("memq-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = spawn(&binary, port, &dir, persistence, &[]);
        let server = RedisServer {
            child,
            port,
            dir,
            persistence,
        };
        server.wait_ready();
        Some(server)
    }

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server and starts it again on the same port and
    /// directory (with [`Persistence::AofAlways`], with its data).
    ///
    /// # Panics
    ///
    /// When it does not come back within 20 seconds.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// As [`restart`](Self::restart), with the server pausing `per_key`
    /// after loading each key of its data (Redis's `key-load-delay`):
    /// while it loads, it answers most commands with a `LOADING` error.
    /// Returns once loading is done (the server answers `PING` then).
    ///
    /// # Panics
    ///
    /// When it does not come back within 20 seconds.
    pub fn restart_loading_slowly(&mut self, per_key: Duration) {
        let micros = per_key.as_micros().max(1).to_string();
        self.restart_with(&["--key-load-delay", &micros]);
    }

    fn restart_with(&mut self, extra: &[&str]) {
        self.kill();
        let binary = binary().expect("it was there a moment ago");
        self.child = spawn(&binary, self.port, &self.dir, self.persistence, extra);
        self.wait_ready();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the server answers `PING`.
    fn wait_ready(&self) {
        let started = Instant::now();
        while !ping(self.port) {
            assert!(started.elapsed() < STARTUP, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join("redis-server"))
        .find(|p| p.is_file())
}

fn spawn(
    binary: &std::path::Path,
    port: u16,
    dir: &std::path::Path,
    persistence: Persistence,
    extra: &[&str],
) -> Child {
    let port = port.to_string();
    let mut args = vec!["--port", &port, "--bind", "127.0.0.1", "--save", ""];
    match persistence {
        Persistence::None => args.extend(["--appendonly", "no"]),
        Persistence::AofAlways => args.extend(["--appendonly", "yes", "--appendfsync", "always"]),
    }
    Command::new(binary)
        .args(&args)
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
