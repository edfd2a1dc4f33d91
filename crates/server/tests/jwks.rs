//! JWKS (`client.token.jwks_public_endpoint`): connection and subscription tokens signed with
//! ES256 and EdDSA keys served by a local JWKS endpoint, verified by a real client's connects,
//! including a key rotation (a token naming a key the node has not fetched yet) and a token
//! naming a key the endpoint does not have.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Gyre, config};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its JWK.
struct Key {
    kid: &'static str,
    alg: gyre_auth::Algorithm,
    pem: String,
    jwk: Value,
}

fn es256(kid: &'static str) -> Key {
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let point = pair.public_key_raw();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    Key {
        kid,
        alg: gyre_auth::Algorithm::Es256,
        pem: pair.serialize_pem(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..])}),
    }
}

fn ed25519(kid: &'static str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    Key {
        kid,
        alg: gyre_auth::Algorithm::EdDsa,
        pem: pair.serialize_pem(),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
            "x": b64(pair.public_key_raw())}),
    }
}

impl Key {
    fn token(&self, claims: Value) -> String {
        gyre_auth::sign_with_kid(self.alg, &self.pem, Some(self.kid), &claims).expect("sign")
    }
}

/// A JWKS endpoint on loopback serving whatever document is current, counting its fetches;
/// over TLS with a certificate for `localhost` when `tls` is given.
struct Endpoint {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

/// A test CA (its PEM file, for `SSL_CERT_FILE`) and a server certificate it signed.
struct TestCa {
    ca_file: std::path::PathBuf,
    server: Arc<rustls::ServerConfig>,
}

fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server cert");
    static N: AtomicUsize = AtomicUsize::new(0);
    let ca_file = std::env::temp_dir().join(format!(
        "gyre-jwks-ca-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    TestCa {
        ca_file,
        server: Arc::new(server),
    }
}

impl Endpoint {
    fn start(keys: &[&Key], tls: Option<Arc<rustls::ServerConfig>>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}/jwks"),
            None => format!("http://127.0.0.1:{port}/jwks"),
        };
        let document = Arc::new(Mutex::new(String::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let endpoint = Endpoint {
            url,
            document: document.clone(),
            fetches: fetches.clone(),
        };
        endpoint.serve(keys);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let body = || document.lock().expect("lock").clone();
                match &tls {
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                            continue;
                        };
                        answer(rustls::StreamOwned::new(conn, stream), &fetches, body());
                    }
                    None => answer(stream, &fetches, body()),
                }
            }
        });
        endpoint
    }

    fn serve(&self, keys: &[&Key]) {
        // (Replaces the document the next fetches get.)
        let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        *self.document.lock().expect("lock") = doc.to_string();
    }
}

/// Reads one request head and answers it with `body`.
fn answer(mut stream: impl Read + Write, fetches: &AtomicUsize, body: String) {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    fetches.fetch_add(1, Ordering::SeqCst);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// Connects centrifuge-js with `token`, optionally subscribes to `news` with `sub_token`, and
/// returns what happened: `connected`, `subscribed`, or `disconnected <code>` / `error <code>`.
fn js_client(gyre: &Gyre, token: &str, sub_token: Option<&str>) -> String {
    let script = r#"
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
const c = new Centrifuge(process.env.URL, { websocket: WebSocket, token: process.env.TOKEN });
let finished = false;
const done = (what) => { if (finished) return; finished = true; console.log(what); c.disconnect(); process.exit(0); };
setTimeout(() => done('timeout'), 10000);
c.on('disconnected', (ctx) => done('disconnected ' + ctx.code));
c.on('connected', () => {
  if (!process.env.SUB_TOKEN) return done('connected');
  const sub = c.newSubscription('news', { token: process.env.SUB_TOKEN });
  sub.on('subscribed', () => done('subscribed'));
  sub.on('error', (ctx) => done('error ' + ctx.error.code));
  sub.on('unsubscribed', (ctx) => done('unsubscribed ' + ctx.code));
  sub.subscribe();
});
c.connect();
"#;
    let out = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(support::node_deps())
        .env("URL", gyre.ws_url())
        .env("TOKEN", token)
        .env("SUB_TOKEN", sub_token.unwrap_or(""))
        .output()
        .expect("run node");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn tokens_verify_with_keys_from_the_jwks_endpoint_across_a_rotation() {
    let first = es256("first");
    let rotated = ed25519("rotated");
    let endpoint = Endpoint::start(&[&first], None);
    let gyre = Gyre::start(&config(json!({
        "client": {"token": {"jwks_public_endpoint": endpoint.url}},
    })));
    let exp = support::now() + 600;

    assert_eq!(
        js_client(
            &gyre,
            &first.token(json!({"sub": "alice", "exp": exp})),
            None
        ),
        "connected"
    );
    let before = endpoint.fetches.load(Ordering::SeqCst);
    assert!(before >= 1, "fetched at start-up or on the first token");

    // The identity provider rotates to a new key: a token naming it makes the node fetch again.
    endpoint.serve(&[&first, &rotated]);
    assert_eq!(
        js_client(
            &gyre,
            &rotated.token(json!({"sub": "bob", "exp": exp})),
            None
        ),
        "connected"
    );
    assert!(endpoint.fetches.load(Ordering::SeqCst) > before);

    // Subscription tokens verify with the same keys (no separate subscription_token section).
    let sub = rotated.token(json!({"sub": "alice", "channel": "news", "exp": exp}));
    assert_eq!(
        js_client(
            &gyre,
            &first.token(json!({"sub": "alice", "exp": exp})),
            Some(&sub)
        ),
        "subscribed"
    );

    // A key the endpoint does not have: invalid token (3500), and the node keeps serving.
    let unknown = es256("unknown");
    assert_eq!(
        js_client(
            &gyre,
            &unknown.token(json!({"sub": "eve", "exp": exp})),
            None
        ),
        "disconnected 3500"
    );
    // A token signed by another key under a known kid: invalid too.
    let forged = Key {
        kid: "first",
        ..es256("first")
    };
    assert_eq!(
        js_client(
            &gyre,
            &forged.token(json!({"sub": "eve", "exp": exp})),
            None
        ),
        "disconnected 3500"
    );
    assert_eq!(
        js_client(
            &gyre,
            &first.token(json!({"sub": "alice", "exp": exp})),
            None
        ),
        "connected"
    );
}

#[test]
fn an_https_jwks_endpoint_is_verified_against_the_system_roots() {
    let ca = test_ca();
    let key = es256("tls");
    let endpoint = Endpoint::start(&[&key], Some(ca.server.clone()));
    let exp = support::now() + 600;
    let token = key.token(json!({"sub": "alice", "exp": exp}));
    // The test CA is the only root the server trusts: the endpoint verifies.
    let ca_file = ca.ca_file.to_string_lossy().into_owned();
    let trusted = Gyre::start_with_env(
        &config(json!({"client": {"token": {"jwks_public_endpoint": endpoint.url}}})),
        &[("SSL_CERT_FILE", &ca_file)],
    );
    assert_eq!(js_client(&trusted, &token, None), "connected");
    // Without it the certificate does not verify, no key is fetched, the token is refused.
    let other = test_ca();
    let other_file = other.ca_file.to_string_lossy().into_owned();
    let distrusting = Gyre::start_with_env(
        &config(json!({"client": {"token": {"jwks_public_endpoint": endpoint.url}}})),
        &[("SSL_CERT_FILE", &other_file)],
    );
    assert_eq!(js_client(&distrusting, &token, None), "disconnected 3500");
    let _ = std::fs::remove_file(&ca.ca_file);
    let _ = std::fs::remove_file(&other.ca_file);
}
