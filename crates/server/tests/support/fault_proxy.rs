//! A TCP forwarder the test controls, put between a server and its backend (Gyre and Redis)
//! to partition them: `pause` holds every byte in flight without closing anything (a silent
//! network), `cut` resets every connection and refuses new ones, `heal` restores traffic.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The state every forwarded connection follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mode {
    /// Bytes are held (not forwarded) while set.
    paused: bool,
    /// New connections are refused while set.
    refusing: bool,
    /// Bumped by every cut: connections of an older generation close.
    generation: u64,
}

/// A running forwarder from a loopback port to `upstream`; stopped on drop.
pub struct FaultProxy {
    /// The port to point the client side at.
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding a free loopback port to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(watch::channel(Mode::default()).0);
        let task = tokio::spawn(accept(listener, upstream, mode.clone()));
        Self { port, mode, task }
    }

    /// Holds all traffic (connections stay open, nothing passes).
    pub fn pause(&self) {
        self.mode.send_modify(|m| m.paused = true);
    }

    /// Resets every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_modify(|m| {
            m.refusing = true;
            m.generation += 1;
        });
    }

    /// Lets traffic through again (held bytes are delivered).
    pub fn heal(&self) {
        self.mode.send_modify(|m| {
            m.paused = false;
            m.refusing = false;
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, upstream: u16, mode: Arc<watch::Sender<Mode>>) {
    while let Ok((client, _)) = listener.accept().await {
        let now = *mode.borrow();
        if now.refusing {
            drop(client);
            continue;
        }
        let rx = mode.subscribe();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let generation = now.generation;
            tokio::select! {
                _ = pipe(cr, sw, rx.clone(), generation) => {}
                _ = pipe(sr, cw, rx, generation) => {}
            }
        });
    }
}

/// Copies `from` to `to` while the generation stays `generation`, holding bytes while paused.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    generation: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| m.generation != generation) => return,
        };
        // Held while paused; dropped (with the connection) on a cut.
        loop {
            let now = *mode.borrow_and_update();
            if now.generation != generation {
                return;
            }
            if !now.paused {
                break;
            }
            if tokio::time::timeout(Duration::from_secs(1), mode.changed())
                .await
                .is_ok_and(|r| r.is_err())
            {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
