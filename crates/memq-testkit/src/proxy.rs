//! A TCP proxy in front of a server that can stop carrying data on the
//! connections it has while keeping them open: what a server that hangs,
//! or a network that drops packets without resetting anything, looks like
//! to a client.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy on a free port of 127.0.0.1 that carries connections to its
/// target until [`freeze`](Proxy::freeze); stopped (every connection
/// closed) when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    freezes: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on the current runtime.
    ///
    /// # Errors
    ///
    /// When no local port can be bound.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (freezes, _) = watch::channel(0u64);
        let watcher = freezes.clone();
        let accept = tokio::spawn(async move {
            // Dropped with the accept task: every connection task ends.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let freezes = watcher.subscribe();
                connections.spawn(carry(client, target, freezes));
            }
        });
        Ok(Proxy {
            addr,
            freezes,
            accept,
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL for a Redis client, `redis://127.0.0.1:PORT/`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Stops carrying data, both ways, on every connection open now: they
    /// stay open, and what is sent on them is never answered. Connections
    /// made afterwards are carried.
    pub fn freeze(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Carries one connection until it closes, or holds it open, silent, once
/// frozen.
async fn carry(mut client: TcpStream, target: SocketAddr, mut freezes: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let born = *freezes.borrow_and_update();
    let frozen = async move {
        while *freezes.borrow_and_update() == born {
            if freezes.changed().await.is_err() {
                // The proxy is gone: the task is being aborted.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = frozen => std::future::pending::<()>().await,
    }
}
