//! The WebSocket connection through proxies started by the test in front of `gyre serve`:
//! an HTTP `CONNECT` proxy (with and without credentials, and one that refuses with 407)
//! and a SOCKS5 proxy (user name and password). The proxies record what they were asked.

mod common;

use common::proxies::{Asked, asked, http_proxy};
use common::{Server, insecure_config, wait_client};
use gyre_client::{ClientEvent, ClientOptions, Error, ErrorKind, SubscriptionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A SOCKS5 proxy that requires user name and password authentication.
async fn socks5_proxy() -> (u16, mpsc::UnboundedReceiver<Asked>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let r: std::io::Result<()> = async {
                    let mut hello = [0u8; 2];
                    conn.read_exact(&mut hello).await?;
                    let mut methods = vec![0u8; usize::from(hello[1])];
                    conn.read_exact(&mut methods).await?;
                    if !methods.contains(&2) {
                        conn.write_all(&[5, 0xff]).await?;
                        return Ok(());
                    }
                    conn.write_all(&[5, 2]).await?;
                    let mut v = [0u8; 2];
                    conn.read_exact(&mut v).await?;
                    let mut user = vec![0u8; usize::from(v[1])];
                    conn.read_exact(&mut user).await?;
                    let mut pl = [0u8; 1];
                    conn.read_exact(&mut pl).await?;
                    let mut pass = vec![0u8; usize::from(pl[0])];
                    conn.read_exact(&mut pass).await?;
                    conn.write_all(&[1, 0]).await?;
                    let mut req = [0u8; 4];
                    conn.read_exact(&mut req).await?;
                    let host = match req[3] {
                        1 => {
                            let mut ip = [0u8; 4];
                            conn.read_exact(&mut ip).await?;
                            std::net::Ipv4Addr::from(ip).to_string()
                        }
                        3 => {
                            let mut len = [0u8; 1];
                            conn.read_exact(&mut len).await?;
                            let mut name = vec![0u8; usize::from(len[0])];
                            conn.read_exact(&mut name).await?;
                            String::from_utf8_lossy(&name).into_owned()
                        }
                        _ => return Ok(()),
                    };
                    let mut port = [0u8; 2];
                    conn.read_exact(&mut port).await?;
                    let port = u16::from_be_bytes(port);
                    let _ = tx.send(Asked {
                        target: format!("{host}:{port}"),
                        auth: Some(format!(
                            "{}:{}",
                            String::from_utf8_lossy(&user),
                            String::from_utf8_lossy(&pass)
                        )),
                    });
                    let mut upstream = TcpStream::connect((host.as_str(), port)).await?;
                    conn.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
                    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
                    Ok(())
                }
                .await;
                drop(r);
            });
        }
    });
    (port, rx)
}

/// Connects, subscribes and publishes through the client: the tunnel carries real traffic.
async fn works_through(client: &gyre_client::Client) {
    let mut events = client.events();
    client.connect();
    wait_client(&mut events, "connected", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    let sub = client
        .new_subscription("tunnelled", SubscriptionOptions::new())
        .expect("sub");
    sub.subscribe();
    sub.ready(None).await.expect("subscribed through the proxy");
    sub.publish(&br#"{"via":"proxy"}"#[..])
        .await
        .expect("published through the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connect_proxy_with_credentials() {
    let server = Server::start(insecure_config());
    let (port, mut rx) = http_proxy(false).await;
    let client = ClientOptions::new(server.url())
        .http_proxy(format!("http://alice:secret@127.0.0.1:{port}"))
        .build()
        .expect("build");
    works_through(&client).await;
    let a = asked(&mut rx).await;
    assert_eq!(
        a,
        Asked {
            target: format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.port),
            // base64("alice:secret")
            auth: Some("Basic YWxpY2U6c2VjcmV0".into()),
        }
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connect_proxy_refusal_is_a_transport_error() {
    let server = Server::start(insecure_config());
    let (port, mut rx) = http_proxy(true).await;
    let client = ClientOptions::new(server.url())
        .http_proxy(format!("http://127.0.0.1:{port}"))
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    let err = wait_client(&mut events, "transport error", |e| {
        matches!(e, ClientEvent::Error { .. } | ClientEvent::Connected(_))
    })
    .await;
    match err {
        ClientEvent::Error {
            kind: ErrorKind::Transport,
            error: Error::Transport(msg),
        } => assert!(msg.contains("407"), "{msg}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(asked(&mut rx).await.auth, None);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_proxy_with_credentials() {
    let server = Server::start(insecure_config());
    let (port, mut rx) = socks5_proxy().await;
    let url = server.url().replace("127.0.0.1", "localhost");
    let client = ClientOptions::new(url)
        .socks5_proxy(format!("socks5://bob:pw@127.0.0.1:{port}"))
        .build()
        .expect("build");
    works_through(&client).await;
    // The host name goes to the proxy unresolved.
    assert_eq!(
        asked(&mut rx).await,
        Asked {
            target: format!("localhost:{}", server.port),
            auth: Some("bob:pw".into()),
        }
    );
    client.close().await;
}

#[tokio::test]
async fn bad_proxy_urls_fail_at_build() {
    for (http, url) in [
        (true, "socks5://127.0.0.1:1"),
        (false, "http://127.0.0.1:1"),
        (true, "http://"),
        (true, "ftp://127.0.0.1:21"),
    ] {
        let options = ClientOptions::new("ws://127.0.0.1:1/connection/websocket");
        let options = if http {
            options.http_proxy(url)
        } else {
            options.socks5_proxy(url)
        };
        assert!(
            matches!(options.build(), Err(Error::Configuration(_))),
            "{url} accepted"
        );
    }
}
