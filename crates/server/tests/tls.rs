//! `http_server.tls`: the real `gyre serve` binary over TLS with a certificate made here
//! (rcgen), used by real clients: centrifuge-js (Node's `ws` and `fetch`, trusting the test CA
//! through `NODE_EXTRA_CA_CERTS`) over `wss://` and HTTP streaming over `https://`,
//! centrifuge-python (`SSL_CERT_FILE`) over `wss://`, and a Rust HTTP/2 client (ALPN `h2`)
//! running an HTTP-streaming session, `/emulation` commands and API calls on one connection.
//! The protobuf js run and the Python run have permessage-deflate on as well.
//! Plain HTTP to the TLS port is dropped while other clients go on; `tls_external` keeps a
//! separate internal port plain; a key that cannot be used stops start-up, naming the key.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::Gyre;

/// Hard limit for one client script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(45);

/// A CA and a server certificate for `localhost` / `127.0.0.1`, in PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
    /// A client certificate signed by `ca`, and its key.
    client: (String, String),
    /// Where `ca` is written, for the clients' trust settings.
    ca_file: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    // Distinct names: OpenSSL (Python) takes a leaf named like its issuer for self-signed.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Gyre test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["client.test".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    let dir = std::env::temp_dir().join(format!("gyre-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca");
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
        client: (client.pem(), client_key.serialize_pem()),
        ca_file,
        _dir: TempDir(dir),
    }
}

/// The config of a TLS server: the certificate as a file, the key as base64 (the other forms
/// are covered by the start-up test).
fn tls_config(pki: &Pki, extra: Value) -> Value {
    let dir = pki.ca_file.parent().expect("dir");
    let cert_file = dir.join("server.pem");
    std::fs::write(&cert_file, &pki.cert).expect("write cert");
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&pki.key);
    let mut config = support::config(json!({
        "http_server": { "tls": {
            "enabled": true,
            "cert_pem_file": cert_file.to_str().expect("path"),
            "key_pem_b64": key_b64,
        }},
        "channel": { "without_namespace": {
            "history_size": 10,
            "history_ttl": "300s",
            "force_recovery": true,
            "allow_subscribe_for_client": true,
        }, "namespaces": [{ "name": "plain", "allow_subscribe_for_client": true }] },
    }));
    merge(&mut config, extra);
    config
}

/// Merges `extra` over `base`, objects deeply.
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn wss_url(gyre: &Gyre) -> String {
    format!("wss://localhost:{}/connection/websocket", port(gyre))
}

fn port(gyre: &Gyre) -> u16 {
    gyre.addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn token(user: &str) -> String {
    support::token(json!({ "sub": user, "exp": support::now() + 3600 }))
}

/// Runs `cmd`, bounded, and panics with its output unless it exits 0.
fn run_checked(what: &str, mut cmd: Command) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    let (status, stdout, stderr) = support::wait_bounded(&mut child, SCRIPT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "{what}: {status:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

/// centrifuge-js `api_publish.mjs` over `transport` against a TLS server with `extra` config.
fn js_api_publish(transport_protocol: &str, extra: Value) {
    let pki = pki(&format!("js-{}", transport_protocol.replace('/', "-")));
    let gyre = Gyre::start(&tls_config(&pki, extra));
    let (transport, protocol) = transport_protocol
        .split_once('/')
        .unwrap_or(("websocket", transport_protocol));
    let mut cmd = Command::new("node");
    cmd.arg("api_publish.mjs")
        .current_dir(support::node_deps())
        .env("NODE_EXTRA_CA_CERTS", &pki.ca_file)
        .env("GYRE_WS_URL", wss_url(&gyre))
        .env(
            "GYRE_API_URL",
            format!("https://localhost:{}/api", port(&gyre)),
        )
        .env("GYRE_API_KEY", support::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .env("GYRE_TRANSPORT", transport)
        .env("GYRE_TOKEN", token("u1"));
    run_checked(&format!("api_publish.mjs ({transport_protocol})"), cmd);
}

#[test]
fn centrifuge_js_over_wss_json() {
    js_api_publish("json", json!({}));
}

/// With permessage-deflate on too (Node's `ws` offers it).
#[test]
fn centrifuge_js_over_wss_protobuf_compressed() {
    js_api_publish("protobuf", json!({ "websocket": { "compression": true } }));
}

#[test]
fn centrifuge_js_http_stream_over_https() {
    js_api_publish("http_stream/json", json!({}));
}

#[test]
fn centrifuge_js_sse_over_https() {
    js_api_publish("sse/json", json!({}));
}

#[test]
fn centrifuge_python_over_wss_compressed() {
    let pki = pki("python");
    // `websockets` (under centrifuge-python) offers permessage-deflate: it is negotiated too.
    let gyre = Gyre::start(&tls_config(
        &pki,
        json!({ "websocket": { "compression": true } }),
    ));
    let dir = support::repo_root().join("conformance/python");
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(dir.join("api_publish.py"))
        .current_dir(&dir)
        .env("PYTHONPATH", support::python_deps())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SSL_CERT_FILE", &pki.ca_file)
        .env("GYRE_WS_URL", wss_url(&gyre))
        .env(
            "GYRE_API_URL",
            format!("https://localhost:{}/api", port(&gyre)),
        )
        .env("GYRE_API_KEY", support::API_KEY)
        .env("GYRE_PROTOCOL", "json")
        .env("GYRE_TOKEN_U1", token("u1"))
        .env("GYRE_TOKEN_U2", token("u2"));
    run_checked("api_publish.py over wss", cmd);
}

/// A TLS connection to `addr` trusting `ca`, offering `alpn`.
async fn tls_connect(
    addr: &str,
    ca: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect_as(addr, ca, alpn, None)
        .await
        .expect("TLS handshake")
}

/// [`tls_connect`] with an optional client certificate and key.
async fn tls_connect_as(
    addr: &str,
    ca: &str,
    alpn: &[&[u8]],
    identity: Option<&(String, String)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
                .expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h2_client(addr: &str, ca: &str) -> H2 {
    let tls = tls_connect(addr, ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

fn post(path: &str, body: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .header("x-api-key", support::API_KEY)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

async fn h2_post(h2: &mut H2, path: &str, body: &str) -> (u16, String) {
    let response = h2.send_request(post(path, body)).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The next newline-delimited JSON message of an HTTP-streaming response.
async fn next_line(body: &mut hyper::body::Incoming, pending: &mut Vec<u8>) -> Value {
    loop {
        if let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            return serde_json::from_slice(&line).expect("JSON line");
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("stream stalled")
            .expect("stream ended")
            .expect("stream error");
        if let Ok(data) = frame.into_data() {
            pending.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn http2_streaming_session_emulation_and_api_on_one_connection() {
    let pki = pki("h2");
    let gyre = Gyre::start(&tls_config(&pki, json!({ "client": { "insecure": true } })));
    let mut h2 = h2_client(&gyre.addr, &pki.ca).await;
    let response = h2
        .send_request(post("/connection/http_stream", r#"{"id":1,"connect":{}}"#))
        .await
        .expect("stream response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let reply = next_line(&mut body, &mut pending).await;
    let node = reply["connect"]["node"].as_str().expect("node").to_owned();
    let session = reply["connect"]["session"]
        .as_str()
        .expect("session")
        .to_owned();
    let subscribe = json!({
        "node": node, "session": session,
        "data": r#"{"id":2,"subscribe":{"channel":"news"}}"#,
    });
    let (status, _) = h2_post(&mut h2, "/emulation", &subscribe.to_string()).await;
    assert_eq!(status, 204, "emulation");
    let reply = next_line(&mut body, &mut pending).await;
    assert_eq!(reply["id"], 2, "{reply}");
    assert!(reply.get("subscribe").is_some(), "{reply}");
    let publish = json!({ "channel": "news", "data": { "over": "h2" } });
    let (status, text) = h2_post(&mut h2, "/api/publish", &publish.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let push = next_line(&mut body, &mut pending).await;
    assert_eq!(push["push"]["channel"], "news", "{push}");
    assert_eq!(
        push["push"]["pub"]["data"],
        json!({ "over": "h2" }),
        "{push}"
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_dropped_and_others_go_on() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let pki = pki("plain");
    let gyre = Gyre::start(&tls_config(&pki, json!({})));
    let mut https = h2_client(&gyre.addr, &pki.ca).await;
    let mut plain = tokio::net::TcpStream::connect(&gyre.addr)
        .await
        .expect("connect");
    plain
        .write_all(b"POST /api/info HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("the server closes a plain HTTP connection")
        .ok();
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP got an answer");
    let (status, text) = h2_post(&mut https, "/api/info", "{}").await;
    assert_eq!(status, 200, "{text}");
    let mut again = h2_client(&gyre.addr, &pki.ca).await;
    let (status, text) = h2_post(&mut again, "/api/info", "{}").await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn internal_port_is_tls_too_unless_tls_external() {
    let pki = pki("internal");
    for external_only in [false, true] {
        let internal = support::free_port();
        let gyre = Gyre::start(&tls_config(
            &pki,
            json!({ "http_server": {
                "internal_port": internal,
                "tls_external": external_only,
            }}),
        ));
        let addr = format!("127.0.0.1:{internal}");
        if external_only {
            let (status, reply) =
                support::http_post(&addr, "/api/info", "{}", &[("X-API-Key", support::API_KEY)]);
            assert_eq!(status, 200, "plain API on the internal port: {reply}");
        } else {
            let mut h2 = h2_client(&addr, &pki.ca).await;
            let (status, text) = h2_post(&mut h2, "/api/info", "{}").await;
            assert_eq!(status, 200, "{text}");
        }
        // The external port is TLS either way.
        let mut h2 = h2_client(&gyre.addr, &pki.ca).await;
        let response = h2
            .send_request(post("/connection/http_stream", r#"{"id":1,"connect":{}}"#))
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
    }
}

/// Starts `gyre serve` with `config`; it must exit non-zero with `needle` in its stderr.
fn start_fails(config: &Value, needle: &str) {
    let dir = std::env::temp_dir().join(format!("gyre-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{}.json", needle.replace(['.', ' '], "_")));
    std::fs::write(&path, config.to_string()).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gyre"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gyre");
    let (status, stdout, stderr) = support::wait_bounded(&mut child, Duration::from_secs(20));
    let _ = std::fs::remove_file(&path);
    assert!(
        status.is_some_and(|s| !s.success()),
        "gyre started: {stdout}"
    );
    assert!(stderr.contains(needle), "{needle} not named: {stderr}");
}

#[test]
fn unusable_certificate_or_key_stops_start_up_naming_the_key() {
    let pki = pki("bad");
    let with_tls = |tls: Value| support::config(json!({ "http_server": { "tls": tls } }));
    start_fails(
        &with_tls(
            json!({ "enabled": true, "cert_pem": pki.cert, "key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }),
        ),
        "http_server.tls.key_pem",
    );
    start_fails(
        &with_tls(json!({ "enabled": true, "cert_pem": pki.key, "key_pem": pki.key })),
        "http_server.tls.cert_pem",
    );
    start_fails(
        &with_tls(
            json!({ "enabled": true, "cert_pem_file": "/nonexistent/cert.pem", "key_pem": pki.key }),
        ),
        "http_server.tls.cert_pem_file",
    );
    start_fails(
        &with_tls(json!({ "enabled": true })),
        "http_server.tls.cert_pem",
    );
    // Raw PEM in the config works.
    let raw = with_tls(json!({ "enabled": true, "cert_pem": pki.cert, "key_pem": pki.key }));
    let gyre = Gyre::start(&raw);
    drop(gyre);
}

/// An HTTP/1.1 `POST /api/info` over a TLS connection made with `identity`: the status, or
/// `None` when the connection failed.
async fn api_info_as(gyre: &Gyre, pki: &Pki, identity: Option<&(String, String)>) -> Option<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = tls_connect_as(&gyre.addr, &pki.ca, &[b"http/1.1"], identity)
        .await
        .ok()?;
    let request = format!(
        "POST /api/info HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        support::API_KEY
    );
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("the server answers or closes");
    if read.is_err() && answer.is_empty() {
        return None;
    }
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn client_ca_pem_requires_a_client_certificate() {
    let pki = pki("mtls");
    let gyre = Gyre::start(&tls_config(
        &pki,
        json!({ "http_server": { "tls": { "client_ca_pem": pki.ca } } }),
    ));
    assert_eq!(api_info_as(&gyre, &pki, None).await, None, "no certificate");
    assert_eq!(
        api_info_as(&gyre, &pki, Some(&pki.client)).await,
        Some(200),
        "with a client certificate"
    );
}
