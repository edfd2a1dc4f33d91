//! An HTTP `CONNECT` proxy for tests, recording what it was asked.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What a proxy was asked: the request line or target, and the credentials.
#[derive(Debug, PartialEq, Eq)]
pub struct Asked {
    pub target: String,
    pub auth: Option<String>,
}

/// An HTTP CONNECT proxy; answers 407 to everyone when `refuse`.
pub async fn http_proxy(refuse: bool) -> (u16, mpsc::UnboundedReceiver<Asked>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if conn.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.lines();
                let target = lines.next().unwrap_or("").to_owned();
                let auth = lines
                    .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                    .map(str::to_owned);
                let _ = tx.send(Asked {
                    target: target.clone(),
                    auth,
                });
                if refuse {
                    let _ = conn
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        .await;
                    return;
                }
                let Some(addr) = target.split_whitespace().nth(1) else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(addr).await else {
                    let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if conn
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
            });
        }
    });
    (port, rx)
}

pub async fn asked(rx: &mut mpsc::UnboundedReceiver<Asked>) -> Asked {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the proxy was asked in time")
        .expect("proxy running")
}
