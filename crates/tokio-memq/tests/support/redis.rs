//! What the Redis test files share (`#[path = "support/redis.rs"] mod
//! support;`): a server of the test's own, a queue connected to it, both
//! backends side by side, and commands sent as another program would.
// Each test file uses part of it.
#![allow(dead_code, unused_macros, unused_imports)]

use std::time::Duration;

use memq_testkit::redis_server::RedisServer;
use tokio::time::timeout;
use tokio_memq::MessageQueue;

/// The bound of every step (above the 30 s a command keeps reconnecting).
pub(crate) const LIMIT: Duration = Duration::from_secs(40);

/// Awaits `$e` within [`LIMIT`].
macro_rules! t {
    ($e:expr) => {
        tokio::time::timeout($crate::support::LIMIT, $e)
            .await
            .expect("timed out")
    };
}
pub(crate) use t;

/// A server of the test's own; `None` (the test skips) without
/// `redis-server` (with `CI` set, the start fails the test instead).
pub(crate) async fn server() -> Option<RedisServer> {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("the start does not panic")
}

/// The server's address, for a proxy in front of it or a raw command.
pub(crate) fn address(server: &RedisServer) -> std::net::SocketAddr {
    server
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

pub(crate) async fn connect(server: &RedisServer) -> MessageQueue {
    timeout(LIMIT, MessageQueue::connect(&server.url()))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// An in-memory queue and one over Redis (the server kept alive).
pub(crate) async fn both() -> Option<(Vec<(&'static str, MessageQueue)>, RedisServer)> {
    let server = server().await?;
    let redis = connect(&server).await;
    Some((vec![("memory", MessageQueue::new()), ("redis", redis)], server))
}

/// Sends one command to the server on a connection of its own, as another
/// program writing to it would (arguments are bytes: they need not be
/// UTF-8); returns the first line of the reply.
pub(crate) fn raw(server: &RedisServer, args: &[&[u8]]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address(server)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        command.extend(format!("${}\r\n", a.len()).as_bytes());
        command.extend(*a);
        command.extend(b"\r\n");
    }
    stream.write_all(&command).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).unwrap();
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply).trim_end().to_string()
}
