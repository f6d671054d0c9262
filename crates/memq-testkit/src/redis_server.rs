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
        // A port found free may be taken before the server binds it (by
        // another test's server, say): the server then exits, and a PING
        // could be answered by that other server. So the server that
        // answers must be this child (its PID), else another port is tried.
        let mut tries = 0;
        loop {
            tries += 1;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            match Self::launch(&binary, port, persistence) {
                Ok(server) => return Some(server),
                Err(why) if tries < 5 => eprintln!("redis-server on port {port}: {why}; trying another port"),
                Err(why) => panic!("redis-server on port {port}: {why} (after {tries} ports)"),
            }
        }
    }

    /// A server of this process on `port`, once it answers there.
    fn launch(binary: &std::path::Path, port: u16, persistence: Persistence) -> Result<RedisServer, String> {
        // Its own directory, even beside a server of this process that
        // holds the same port (the one dropped removes its directory).
        static LAUNCHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = LAUNCHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("memq-redis-{}-{port}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let child = spawn(binary, port, &dir, persistence, &[]);
        let mut server = RedisServer {
            child,
            port,
            dir,
            persistence,
        };
        server.wait_ready()?;
        Ok(server)
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
        if let Err(why) = self.wait_ready() {
            panic!("redis-server restarted on port {}: {why}", self.port);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until this server (the child, by its PID) answers `PING` on
    /// its port; says why not when it exits first, another server holds
    /// the port, or it does not answer in time.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let pid = self.child.id();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}) before it answered"));
            }
            match server_pid(self.port) {
                // Ours, and done loading its data.
                Answer::Pid(p) if p == pid && ping(self.port) => return Ok(()),
                Answer::Pid(other) if other != pid => {
                    // Another server holds the port; ours cannot bind it.
                    self.kill();
                    return Err(format!("the port is another server's (PID {other})"));
                }
                Answer::Refused => {
                    self.kill();
                    return Err("the port is another server's (one with a password)".to_owned());
                }
                _ if started.elapsed() < STARTUP => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    self.kill();
                    return Err(format!("no answer within {STARTUP:?}"));
                }
            }
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

/// Who answers on `port` (from `INFO server`).
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Nothing yet (no listener, no full reply, a server still loading).
    Nothing,
    /// A server with this PID.
    Pid(u32),
    /// A server that refuses to say (one with a password): not ours,
    /// which has none.
    Refused,
}

/// Who answers on `port`.
fn server_pid(port: u16) -> Answer {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Answer::Nothing;
    };
    if stream.set_read_timeout(Some(Duration::from_secs(1))).is_err()
        || stream.write_all(b"INFO server\r\n").is_err()
    {
        return Answer::Nothing;
    }
    // A bulk string, `$LEN\r\n`, LEN bytes, `\r\n`; or an error line
    // (`-LOADING ...` from a server loading its data: not ready yet).
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Answer::Nothing,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
        let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let head = &reply[..eol];
        if head.starts_with(b"-NOAUTH") {
            return Answer::Refused;
        }
        let Some(len) = head
            .strip_prefix(b"$")
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| l.parse::<usize>().ok())
        else {
            return Answer::Nothing;
        };
        let body = &reply[eol + 2..];
        if body.len() < len {
            continue;
        }
        return body[..len]
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"process_id:"))
            .and_then(|pid| std::str::from_utf8(pid).ok())
            .and_then(|pid| pid.trim().parse().ok())
            .map_or(Answer::Nothing, Answer::Pid);
    }
}

/// Whether a server on `port` answers `PING` with `+PONG` (not while it
/// loads its data).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server started on a port another server holds is refused (it
    /// exits, or the one answering is not it), not mistaken for that one.
    #[test]
    fn a_port_taken_by_another_server_is_not_taken_for_ours() {
        let Some(first) = RedisServer::start() else {
            return;
        };
        let binary = binary().expect("it started one");
        let refused = RedisServer::launch(&binary, first.port, Persistence::None);
        let why = refused.expect_err("the port was the first server's");
        assert!(
            why.contains("exited") || why.contains("another server's"),
            "{why}"
        );
        assert_eq!(
            server_pid(first.port),
            Answer::Pid(first.child.id()),
            "the first one still answers"
        );
        assert!(ping(first.port));
    }
}
