//! Every failure reaches the user: bad options fail at `build()`, and DNS, TCP, HTTP upgrade
//! and token callback failures arrive as `ClientEvent::Error` with their cause.

mod common;

use common::{Server, insecure_config, wait_client};
use gyre_client::{Client, ClientEvent, ClientOptions, Error, ErrorKind, State};

fn build_error(options: ClientOptions) -> Error {
    match options.build() {
        Ok(_) => panic!("build accepted bad options"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn bad_options_fail_at_build() {
    for url in [
        "ws://127.0.0.1:8000/connection/web socket",
        "http://127.0.0.1:8000/connection/websocket",
        "ws:///connection/websocket",
        "127.0.0.1:8000",
    ] {
        let e = build_error(ClientOptions::new(url));
        assert!(matches!(e, Error::Configuration(_)), "{url}: {e:?}");
    }
    let url = "ws://127.0.0.1:8000/connection/websocket";
    let e = build_error(ClientOptions::new(url).header("bad name", "v"));
    assert!(
        matches!(&e, Error::Configuration(m) if m.contains("header")),
        "{e:?}"
    );
    let e = build_error(ClientOptions::new(url).header("x-ok", "line\nbreak"));
    assert!(
        matches!(&e, Error::Configuration(m) if m.contains("header")),
        "{e:?}"
    );
}

/// Connects and returns the first error event, which must come before any `Connected`.
async fn first_error(client: &Client) -> (ErrorKind, Error) {
    let mut events = client.events();
    client.connect();
    let e = wait_client(&mut events, "error or connected", |e| {
        matches!(e, ClientEvent::Error { .. } | ClientEvent::Connected(_))
    })
    .await;
    assert_eq!(client.state(), State::Connecting);
    match e {
        ClientEvent::Error { kind, error } => (kind, error),
        other => panic!("reached {other:?} instead of failing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tcp_connection_is_a_transport_error() {
    // Bind then drop a listener: the port is free and refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let client = ClientOptions::new(format!("ws://127.0.0.1:{port}/connection/websocket"))
        .build()
        .expect("build");
    let (kind, e) = first_error(&client).await;
    assert_eq!(kind, ErrorKind::Transport);
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_a_transport_error() {
    let client = ClientOptions::new("ws://no-such-host.invalid:8000/connection/websocket")
        .build()
        .expect("build");
    let (kind, e) = first_error(&client).await;
    assert_eq!(kind, ErrorKind::Transport);
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrade_is_a_transport_error_with_the_status() {
    let server = Server::start(insecure_config());
    let client = ClientOptions::new(format!("ws://127.0.0.1:{}/no/such/path", server.port))
        .build()
        .expect("build");
    let (kind, e) = first_error(&client).await;
    assert_eq!(kind, ErrorKind::Transport);
    assert!(
        matches!(&e, Error::Transport(m) if m.contains("404")),
        "{e:?}"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_token_callback_is_a_token_error() {
    let server = Server::start(common::token_config());
    let client = ClientOptions::new(server.url())
        .get_token(|_| async { Err("token service down".into()) })
        .build()
        .expect("build");
    let (kind, e) = first_error(&client).await;
    assert_eq!(kind, ErrorKind::ConnectToken);
    assert!(
        matches!(&e, Error::Token(m) if m.contains("token service down")),
        "{e:?}"
    );
    client.close().await;
}
