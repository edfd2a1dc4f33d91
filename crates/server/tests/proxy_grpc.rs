//! GRPC proxies (`grpc://` endpoints) against a tonic `CentrifugoProxy` backend started in the
//! test on a free loopback port: the real npm `centrifuge` SDK through every proxy kind
//! (`conformance/js/proxy.mjs`, the same scenario as over HTTP, and `proxy_grpc.mjs`), and a
//! raw JSON client for the connect result's fields, skip_history and overrides, error and
//! disconnect replies, failures (error 100, the connection goes on), a backend that is down,
//! refresh and sub_refresh, binary encoding, TLS and mutual TLS backends; and a Python grpcio
//! backend (`conformance/python/grpc_proxy_backend.py`) with gzip and credentials.

mod proxy_grpc_backend;
mod support;

use std::sync::atomic::Ordering;

use proxy_grpc_backend::{ServerTls, backend};
use serde_json::{Value, json};
use support::json_conn::{Conn, subscribe, wait_for};
use support::{Gyre, config};

/// A node whose proxies call the backend at `endpoint`.
fn gyre(endpoint: &str, grpc: Value, rpc_extra: Value) -> Gyre {
    Gyre::start(&config(proxy_grpc_backend::config(
        endpoint, grpc, rpc_extra,
    )))
}

/// Runs a node script against a node whose proxies call a fresh backend; returns how often
/// the refresh proxy was called.
fn js(script: &str, protocol: &str, rpc_extra: Value) -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (endpoint, backend) = runtime.block_on(backend(None));
    let mut node = gyre(&endpoint, json!({}), rpc_extra);
    support::js::run_script(&mut node, script, protocol, &[], |action, _| {
        panic!("unexpected action request from {script}: {action}")
    });
    backend.refreshes.load(Ordering::SeqCst)
}

/// `proxy.mjs` over GRPC: connect without a token, RPC, a refused subscription, a rewritten
/// publication, server-side refresh and a `disconnect` reply.
fn sdk_scenario(protocol: &str) {
    let refreshes = js("proxy.mjs", protocol, json!({}));
    assert!(refreshes >= 1, "the refresh proxy was called ({refreshes})");
}

/// `proxy_grpc.mjs`: forwarded headers and metadata, granted subscriptions, info, the seeds'
/// RPC example.
fn sdk_forwarding(protocol: &str) {
    let grpc = json!({"grpc": {
        "static_metadata": {"X-Static": "s1"},
        "credentials_key": "authorization", "credentials_value": "Bearer k1",
        "compression": true,
    }});
    js("proxy_grpc.mjs", protocol, grpc);
}

both_protocols!(sdk_scenario, sdk_forwarding);

/// Connects without a token, authenticated by the connect proxy from the `x-user` header.
async fn connect_as(node: &Gyre, user: &str) -> (Conn, Value) {
    let mut conn = Conn::open_with(&node.ws_url(), &[("x-user", user)]).await;
    conn.send(&json!({"id": 1, "connect": {}})).await;
    let reply = conn.reply(1).await;
    (conn, reply)
}

async fn rpc(conn: &mut Conn, id: u64, method: &str, data: Value) -> Value {
    conn.send(&json!({"id": id, "rpc": {"method": method, "data": data}}))
        .await;
    conn.reply(id).await
}

/// Waits for the connection to be closed; its code and reason.
async fn closed(conn: &mut Conn) -> (u16, String) {
    loop {
        if let Err(closed) = conn.next().await {
            return closed;
        }
    }
}

#[tokio::test]
async fn connect_result_fields_reach_the_client() {
    let (endpoint, _) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({}));
    let (mut conn, reply) = connect_as(&node, "grace").await;
    let connect = &reply["connect"];
    assert_eq!(connect["data"], json!({"hello": "grace"}), "{reply}");
    assert!(connect["subs"]["news"].is_object(), "channels: {reply}");
    assert_eq!(
        connect["subs"]["vip"]["data"],
        json!({"vip": true}),
        "{reply}"
    );
    let echo = rpc(&mut conn, 2, "echo", json!({"x": 1})).await;
    let data = &echo["rpc"]["data"];
    assert_eq!(
        (&data["user"], &data["meta"], &data["data"], &data["header"]),
        (
            &json!("grace"),
            &json!({"team": "blue"}),
            &json!({"x": 1}),
            &json!("grace")
        ),
        "{echo}"
    );
    // Not configured here: no static metadata, credentials or compression.
    assert_eq!(
        (&data["static"], &data["credentials"], &data["compressed"]),
        (&Value::Null, &Value::Null, &Value::Null),
        "{echo}"
    );
    // Connection info: in the client's own publication info on a subscribe-proxy channel.
    subscribe(&mut conn, 3, json!({"channel": "sp:room"})).await;
    conn.send(&json!({"id": 4, "publish": {"channel": "sp:room", "data": {"t": 1}}}))
        .await;
    let publication = wait_for(&mut conn, |v| {
        v["push"]["pub"].is_object().then(|| v.clone())
    })
    .await;
    let info = &publication["push"]["pub"]["info"];
    assert_eq!(info["conn_info"], json!({"name": "grace"}), "{publication}");
    assert_eq!(info["chan_info"], json!({"seat": 7}), "{publication}");
    assert_eq!(
        publication["push"]["pub"]["data"],
        json!({"rewritten": {"t": 1}}),
        "{publication}"
    );
}

#[tokio::test]
async fn publish_skip_history_and_subscribe_override() {
    let (endpoint, _) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({}));
    let (mut conn, _) = connect_as(&node, "hal").await;
    for (id, channel) in [(2, "sp:room"), (4, "sp:nohist")] {
        subscribe(&mut conn, id, json!({"channel": channel})).await;
        conn.send(&json!({"id": id + 1, "publish": {"channel": channel, "data": {"n": id}}}))
            .await;
        let reply = conn.reply(id + 1).await;
        assert!(reply["publish"].is_object(), "{reply}");
    }
    let kept = node.api("history", json!({"channel": "sp:room", "limit": 10}));
    let pubs = kept["publications"].as_array().cloned().unwrap_or_default();
    assert_eq!(pubs.len(), 1, "{kept}");
    assert_eq!(pubs[0]["data"], json!({"rewritten": {"n": 2}}), "{kept}");
    let skipped = node.api("history", json!({"channel": "sp:nohist", "limit": 10}));
    let none = skipped["publications"].as_array().map_or(0, Vec::len);
    assert_eq!(none, 0, "skip_history: {skipped}");
    // The subscribe result's override turns positioning on for this subscription only.
    let positioned = subscribe(&mut conn, 6, json!({"channel": "sp:pos"})).await;
    assert_eq!(positioned["positioned"], true, "{positioned}");
    let plain = subscribe(&mut conn, 7, json!({"channel": "sp:plain"})).await;
    assert!(plain.get("positioned").is_none(), "{plain}");
}

#[tokio::test]
async fn error_and_disconnect_replies_reach_the_client() {
    let (endpoint, _) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({}));
    let (_, reply) = connect_as(&node, "").await;
    assert_eq!(reply["error"]["code"], 1001, "{reply}");
    assert_eq!(reply["error"]["message"], "who are you", "{reply}");
    let mut banned = Conn::open_with(&node.ws_url(), &[("x-user", "banned")]).await;
    banned.send(&json!({"id": 1, "connect": {}})).await;
    assert_eq!(closed(&mut banned).await, (4501, "banned".to_owned()));

    let (mut conn, _) = connect_as(&node, "bob").await;
    conn.send(&json!({"id": 2, "subscribe": {"channel": "sp:deny"}}))
        .await;
    let denied = conn.reply(2).await;
    assert_eq!(denied["error"]["code"], 1403, "{denied}");
    assert_eq!(denied["error"]["message"], "not in this room", "{denied}");
    let failed = rpc(&mut conn, 3, "fail", json!({})).await;
    assert_eq!(failed["error"]["code"], 1000, "{failed}");
    assert_eq!(failed["error"]["message"], "custom", "{failed}");
    let unknown = rpc(&mut conn, 4, "nope", json!({})).await;
    assert_eq!(unknown["error"]["code"], 104, "{unknown}");
    conn.send(&json!({"id": 5, "rpc": {"method": "bye"}})).await;
    assert_eq!(closed(&mut conn).await, (4001, "bye".to_owned()));
}

#[tokio::test]
async fn failed_calls_give_internal_error_and_the_connection_goes_on() {
    let (endpoint, _) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({}));
    let (mut conn, _) = connect_as(&node, "carol").await;
    for (id, method) in [(2, "b64bad"), (3, "status"), (4, "slow"), (5, "bigcode")] {
        let reply = rpc(&mut conn, id, method, json!({})).await;
        assert_eq!(reply["error"]["code"], 100, "{method}: {reply}");
        assert_eq!(reply["error"]["temporary"], true, "{method}: {reply}");
    }
    // A reply without a result is an empty RPC result, as in Centrifugo.
    let nothing = rpc(&mut conn, 6, "nothing", json!({})).await;
    assert!(nothing["rpc"].is_object(), "{nothing}");
    let echo = rpc(&mut conn, 7, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "carol", "{echo}");
    // Connection meta that is not JSON: the connect proxy failed.
    let (_, reply) = connect_as(&node, "badmeta").await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
}

#[tokio::test]
async fn a_backend_that_is_down_gives_internal_error_and_the_server_goes_on() {
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let node = Gyre::start(&config(json!({
        "client": {"allow_anonymous_connect_without_token": true},
        "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true}},
        "rpc": {
            "ping": {"enabled": true},
            "proxy": {"endpoint": format!("grpc://{down}")},
            "without_namespace": {"proxy_enabled": true},
        },
    })));
    let mut conn = Conn::open(&node.ws_url()).await;
    conn.send(&json!({"id": 1, "connect": {}})).await;
    conn.reply(1).await;
    for id in 2..4 {
        let reply = rpc(&mut conn, id, "echo", json!({})).await;
        assert_eq!(reply["error"]["code"], 100, "{reply}");
    }
    // The connection and the server go on.
    let ping = rpc(&mut conn, 4, "ping", json!({})).await;
    assert!(ping["rpc"].is_object(), "{ping}");
    subscribe(&mut conn, 5, json!({"channel": "news"})).await;
    node.api("publish", json!({"channel": "news", "data": {"n": 1}}));
    let publication = support::json_conn::next_pub(&mut conn, "news").await;
    assert_eq!(publication["data"], json!({"n": 1}));
    let mut other = Conn::open(&node.ws_url()).await;
    other.send(&json!({"id": 1, "connect": {}})).await;
    assert!(other.reply(1).await["connect"].is_object());
}

#[tokio::test]
async fn refresh_and_sub_refresh_keep_or_end() {
    let (endpoint, backend) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({}));
    let (mut conn, reply) = connect_as(&node, "refresher").await;
    assert!(reply["connect"].is_object(), "{reply}");
    let sub = subscribe(&mut conn, 2, json!({"channel": "sr:room"})).await;
    assert!(sub.get("expires").is_none(), "server-side refresh: {sub}");
    // Both expire every second; the proxies prolong them each time.
    for (count, notify) in [
        (&backend.refreshes, &backend.refreshed),
        (&backend.sub_refreshes, &backend.sub_refreshed),
    ] {
        while count.load(Ordering::SeqCst) < 2 {
            let notified = notify.notified();
            if count.load(Ordering::SeqCst) >= 2 {
                break;
            }
            notified.await;
        }
    }
    node.api(
        "publish",
        json!({"channel": "sr:room", "data": {"still": "here"}}),
    );
    let publication = support::json_conn::next_pub(&mut conn, "sr:room").await;
    assert_eq!(publication["data"], json!({"still": "here"}));
    // An `expired` answer ends the subscription with an unsubscribe push.
    subscribe(&mut conn, 3, json!({"channel": "sr:end"})).await;
    let code = wait_for(&mut conn, |v| {
        (v["push"]["channel"] == "sr:end" && v["push"]["unsubscribe"].is_object())
            .then(|| v["push"]["unsubscribe"]["code"].clone())
    })
    .await;
    assert_eq!(code, 2501, "unsubscribe code");
    let echo = rpc(&mut conn, 4, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "refresher", "{echo}");
}

#[tokio::test]
async fn binary_encoding_sends_and_reads_b64data() {
    let (endpoint, _) = backend(None).await;
    let node = gyre(&endpoint, json!({}), json!({"binary_encoding": true}));
    let (mut conn, _) = connect_as(&node, "dan").await;
    let echo = rpc(&mut conn, 2, "echo", json!({"x": 1})).await;
    let data = &echo["rpc"]["data"];
    assert_eq!(
        (&data["encoding"], &data["b64data"], &data["data"]),
        (&json!("binary"), &json!("eyJ4IjoxfQ=="), &Value::Null),
        "{echo}"
    );
    assert_eq!(data["user"], "dan", "{echo}");
}

/// Certificates for the TLS tests (PEM), all signed by one CA.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

/// A CA, a server certificate for `backend.test` and a client certificate.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let signed = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = signed("backend.test");
    let (client_cert, client_key) = signed("gyre.test");
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

#[tokio::test]
async fn tls_backend() {
    let pki = pki();
    let tls = ServerTls {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: None,
    };
    let (endpoint, _) = backend(Some(tls)).await;
    let ca = &pki.ca;
    let verified =
        json!({"tls": {"enabled": true, "server_ca_pem": ca, "server_name": "backend.test"}});
    let node = gyre(&endpoint, verified, json!({}));
    let (mut conn, reply) = connect_as(&node, "tess").await;
    assert_eq!(
        reply["connect"]["data"],
        json!({"hello": "tess"}),
        "{reply}"
    );
    let echo = rpc(&mut conn, 2, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "tess", "{echo}");

    let skip = json!({"tls": {"enabled": true, "insecure_skip_verify": true}});
    let node = gyre(&endpoint, skip, json!({}));
    let (_, reply) = connect_as(&node, "tess").await;
    assert_eq!(
        reply["connect"]["data"],
        json!({"hello": "tess"}),
        "{reply}"
    );

    // The wrong name, or no TLS at all: the calls fail, nothing else does.
    let wrong = json!({"tls": {"enabled": true, "server_ca_pem": ca, "server_name": "other.test"}});
    let node = gyre(&endpoint, wrong, json!({}));
    let (_, reply) = connect_as(&node, "tess").await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
    let node = gyre(&endpoint, json!({}), json!({}));
    let (_, reply) = connect_as(&node, "tess").await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
}

#[tokio::test]
async fn mutual_tls_backend() {
    let pki = pki();
    let tls = ServerTls {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    };
    let (endpoint, _) = backend(Some(tls)).await;
    let tls = |client: bool| {
        let mut t =
            json!({"enabled": true, "server_ca_pem": pki.ca, "server_name": "backend.test"});
        if client {
            t["cert_pem"] = json!(pki.client_cert);
            t["key_pem"] = json!(pki.client_key);
        }
        json!({ "tls": t })
    };
    let node = gyre(&endpoint, tls(true), json!({}));
    let (_, reply) = connect_as(&node, "mia").await;
    assert_eq!(reply["connect"]["data"], json!({"hello": "mia"}), "{reply}");
    // Without a client certificate the backend refuses the handshake.
    let node = gyre(&endpoint, tls(false), json!({}));
    let (_, reply) = connect_as(&node, "mia").await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
}

/// The Python grpcio backend of `conformance/python/grpc_proxy_backend.py`, stopped on drop
/// (its stdin closes).
struct PythonBackend {
    child: std::process::Child,
    port: u16,
}

impl PythonBackend {
    fn start() -> Self {
        use std::io::BufRead as _;
        let deps = support::grpc_python_deps();
        let root = support::repo_root();
        let mut child = std::process::Command::new("python3")
            .arg("-u")
            .arg(root.join("conformance/python/grpc_proxy_backend.py"))
            .env("PYTHONPATH", &deps)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("GYRE_PROTO", root.join("crates/server/proto/proxy.proto"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("grpc_proxy_backend.py did not start: {line:?}"));
        PythonBackend { child, port }
    }
}

impl Drop for PythonBackend {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

#[tokio::test]
async fn python_grpcio_backend() {
    let backend = PythonBackend::start();
    let endpoint = format!("grpc://127.0.0.1:{}", backend.port);
    let node = Gyre::start(&config(json!({
        "client": {"proxy": {"connect": {"enabled": true, "endpoint": endpoint, "http_headers": ["X-User"]}}},
        "rpc": {
            "proxy": {
                "endpoint": endpoint, "include_connection_meta": true,
                "grpc": {"credentials_key": "authorization", "credentials_value": "Bearer s3cret", "compression": true},
            },
            "without_namespace": {"proxy_enabled": true},
        },
    })));
    let (_, reply) = connect_as(&node, "").await;
    assert_eq!(reply["error"]["code"], 1001, "{reply}");
    let (mut conn, reply) = connect_as(&node, "pat").await;
    assert_eq!(reply["connect"]["data"], json!({"hello": "pat"}), "{reply}");
    let year = rpc(&mut conn, 2, "getCurrentYear", json!({})).await;
    assert_eq!(year["rpc"]["data"], json!({"year": 2026}), "{year}");
    let who = rpc(&mut conn, 3, "whoami", json!({})).await;
    assert_eq!(
        who["rpc"]["data"],
        json!({"user": "pat", "auth": "Bearer s3cret", "meta": {"plan": "free"}}),
        "{who}"
    );
    let unknown = rpc(&mut conn, 4, "nope", json!({})).await;
    assert_eq!(unknown["error"]["code"], 104, "{unknown}");
}
