//! `wss://` over rustls: a TLS-terminating proxy with a certificate made at test time sits in
//! front of a `gyre serve`; the client connects only when it trusts the test CA, and a `wss://`
//! URL never reaches `Connected` against a plaintext server; through an HTTP proxy the TLS
//! session runs inside the `CONNECT` tunnel.

mod common;

use std::sync::Arc;

use common::{Server, insecure_config, wait_client};
use gyre_client::{ClientEvent, ClientOptions, Error};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto::ring};

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gyre client test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["gyre-client".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// Starts a TLS-terminating proxy on loopback forwarding to `backend`; with
/// `require_client_cert` it accepts only clients with a certificate from the test CA.
async fn tls_proxy(pki: &Pki, backend: u16, require_client_cert: bool) -> u16 {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server chain");
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).expect("server key");
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(c.expect("ca")).expect("add ca");
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(chain, key).expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

fn wss(port: u16) -> String {
    format!("wss://127.0.0.1:{port}/connection/websocket")
}

/// Events up to the first error, which must come before any `Connected`.
async fn first_error(client: &gyre_client::Client) -> Error {
    let mut events = client.events();
    client.connect();
    match wait_client(&mut events, "error or connected", |e| {
        matches!(e, ClientEvent::Error { .. } | ClientEvent::Connected(_))
    })
    .await
    {
        ClientEvent::Error { kind, error } => {
            assert_eq!(kind, gyre_client::ErrorKind::Transport);
            error
        }
        other => panic!("reached {other:?} instead of failing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_connects_with_the_configured_ca_and_client_certificate() {
    let server = Server::start(insecure_config());
    let pki = pki();
    let port = tls_proxy(&pki, server.port, false).await;
    let client = ClientOptions::new(wss(port))
        .tls_ca_pem(pki.ca_pem.as_bytes())
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    wait_client(&mut events, "connected over TLS", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    client.close().await;

    let mtls = tls_proxy(&pki, server.port, true).await;
    let client = ClientOptions::new(wss(mtls))
        .tls_ca_pem(pki.ca_pem.as_bytes())
        .tls_client_cert_pem(pki.client_cert.as_bytes(), pki.client_key.as_bytes())
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    wait_client(&mut events, "connected with a client certificate", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_without_the_ca_fails_with_a_transport_error() {
    let server = Server::start(insecure_config());
    let pki = pki();
    let port = tls_proxy(&pki, server.port, false).await;
    let client = ClientOptions::new(wss(port)).build().expect("build");
    let e = first_error(&client).await;
    assert!(
        matches!(&e, Error::Transport(m) if m.contains("certificate") || m.contains("issuer")),
        "{e:?}"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_against_a_plaintext_server_never_connects() {
    let server = Server::start(insecure_config());
    let client = ClientOptions::new(wss(server.port)).build().expect("build");
    let e = first_error(&client).await;
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    client.close().await;
}

#[test]
fn bad_tls_material_fails_at_build() {
    let err = ClientOptions::new("wss://127.0.0.1:1/connection/websocket")
        .tls_ca_pem("not a certificate")
        .build()
        .expect_err("a CA PEM without a certificate is refused");
    assert!(matches!(err, Error::Configuration(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_runs_tls_inside_an_http_proxy_tunnel() {
    let server = Server::start(insecure_config());
    let pki = pki();
    let port = tls_proxy(&pki, server.port, false).await;
    let (proxy, mut asked) = common::proxies::http_proxy(false).await;
    let client = ClientOptions::new(wss(port))
        .tls_ca_pem(pki.ca_pem.as_bytes())
        .http_proxy(format!("http://127.0.0.1:{proxy}"))
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    wait_client(&mut events, "connected over TLS through the proxy", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    // The proxy only saw the tunnel request; the TLS endpoint did the handshake.
    assert_eq!(
        common::proxies::asked(&mut asked).await.target,
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1")
    );
    client.close().await;
}
