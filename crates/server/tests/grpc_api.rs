//! The GRPC server API: a tonic client generated from the same `proto/api.proto` calls
//! `centrifugal.centrifugo.api.CentrifugoApi` while a raw protocol client is connected.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::raw::{Incoming, RawWs};
use support::{Gyre, config, free_port, token};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

#[allow(dead_code, unreachable_pub, clippy::all, rust_2018_idioms)]
mod pb {
    include!(concat!(
        env!("OUT_DIR"),
        "/client/centrifugal.centrifugo.api.rs"
    ));
}

use pb::centrifugo_api_client::CentrifugoApiClient;

const KEY: &str = "grpc-test-key";

/// A server with presence and history on channels without namespace and the GRPC API on.
fn server(grpc: Value) -> (Gyre, u16) {
    let port = free_port();
    let mut section = json!({ "enabled": true, "port": port, "address": "127.0.0.1", "key": KEY });
    if let (Some(s), Value::Object(extra)) = (section.as_object_mut(), grpc) {
        s.extend(extra);
    }
    let gyre = Gyre::start(&config(json!({
        "grpc_api": section,
        "channel": {
            "without_namespace": {
                "presence": true,
                "history_size": 10,
                "history_ttl": "300s",
                "allow_subscribe_for_client": true,
            },
            "namespaces": [
                { "name": "bin", "publication_data_format": "binary", "history_size": 10, "history_ttl": "300s" },
                { "name": "mp", "subscription_type": "map", "map": { "mode": "persistent", "min_page_size": 1 } },
            ],
        },
    })));
    (gyre, port)
}

async fn client(port: u16) -> CentrifugoApiClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the GRPC API");
    CentrifugoApiClient::new(channel)
}

/// A request carrying `authorization: apikey <key>` (and any extra metadata).
fn authed<T>(message: T, extra: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("apikey {KEY}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    for (name, v) in extra {
        request
            .metadata_mut()
            .insert(*name, v.parse().expect("metadata"));
    }
    request
}

/// Reads JSON messages until `done` says stop (at most 50 messages, 5 s each).
async fn read_until(ws: &mut RawWs, mut done: impl FnMut(&Value) -> bool) {
    for _ in 0..50 {
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Text(text) => {
                for line in text.split('\n') {
                    let v: Value = serde_json::from_str(line).expect("json");
                    if done(&v) {
                        return;
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the awaited message never came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_reaches_the_executor() {
    let (gyre, port) = server(json!({}));
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    let connected = ws.connect_json(&token(json!({"sub": "alice"}))).await;
    let client_id = connected["connect"]["client"]
        .as_str()
        .expect("client id")
        .to_owned();
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    assert!(ws.reply(2).await["subscribe"].is_object());
    let mut api = client(port).await;

    let published = api
        .publish(authed(
            pb::PublishRequest {
                channel: "room".into(),
                data: br#"{"text":"over grpc"}"#.to_vec(),
                tags: [("k".to_owned(), "v".to_owned())].into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("publish")
        .into_inner();
    assert!(published.error.is_none(), "{published:?}");
    let result = published.result.expect("result");
    assert_eq!(result.offset, 1);
    assert!(!result.epoch.is_empty());
    read_until(&mut ws, |v| {
        v["push"]["pub"]["data"]["text"] == "over grpc" && v["push"]["pub"]["tags"]["k"] == "v"
    })
    .await;

    let presence = api
        .presence(authed(
            pb::PresenceRequest {
                channel: "room".into(),
            },
            &[],
        ))
        .await
        .expect("presence")
        .into_inner()
        .result
        .expect("presence result");
    let me = presence
        .presence
        .get(&client_id)
        .expect("the client is present");
    assert_eq!(me.user, "alice");

    let stats = api
        .presence_stats(authed(
            pb::PresenceStatsRequest {
                channel: "room".into(),
            },
            &[],
        ))
        .await
        .expect("presence_stats")
        .into_inner()
        .result
        .expect("stats");
    assert_eq!((stats.num_clients, stats.num_users), (1, 1));

    let history = api
        .history(authed(
            pb::HistoryRequest {
                channel: "room".into(),
                limit: -1,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("history")
        .into_inner()
        .result
        .expect("history result");
    assert_eq!(history.offset, 1);
    assert_eq!(history.epoch, result.epoch);
    assert_eq!(history.publications.len(), 1);
    let value: Value =
        serde_json::from_slice(&history.publications[0].data).expect("history data is JSON");
    assert_eq!(value, json!({"text": "over grpc"}));
    assert_eq!(history.publications[0].offset, 1);

    let info = api
        .info(authed(pb::InfoRequest {}, &[]))
        .await
        .expect("info")
        .into_inner()
        .result
        .expect("info result");
    assert_eq!(info.nodes.len(), 1);
    assert_eq!(info.nodes[0].num_clients, 1);
    assert!(!info.nodes[0].uid.is_empty());

    let channels = api
        .channels(authed(pb::ChannelsRequest::default(), &[]))
        .await
        .expect("channels")
        .into_inner()
        .result
        .expect("channels result");
    assert_eq!(
        channels.channels.get("room").map(|c| c.num_clients),
        Some(1)
    );

    // A binary payload in a binary namespace arrives byte for byte (through b64data).
    let bin = api
        .publish(authed(
            pb::PublishRequest {
                channel: "bin:x".into(),
                data: vec![0, 159, 255],
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("binary publish")
        .into_inner();
    assert!(bin.error.is_none(), "{bin:?}");

    let batch = api
        .batch(authed(
            pb::BatchRequest {
                commands: vec![
                    pb::Command {
                        publish: Some(pb::PublishRequest {
                            channel: "room".into(),
                            data: br#"{"text":"batched"}"#.to_vec(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    pb::Command {
                        presence_stats: Some(pb::PresenceStatsRequest {
                            channel: "room".into(),
                        }),
                        ..Default::default()
                    },
                    pb::Command {
                        publish: Some(pb::PublishRequest {
                            channel: "nowhere:x".into(),
                            data: b"{}".to_vec(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ],
                parallel: false,
            },
            &[],
        ))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.replies.len(), 3, "{batch:?}");
    assert_eq!(batch.replies[0].publish.as_ref().map(|r| r.offset), Some(2));
    assert_eq!(
        batch.replies[1]
            .presence_stats
            .as_ref()
            .map(|s| s.num_clients),
        Some(1)
    );
    assert_eq!(batch.replies[2].error.as_ref().map(|e| e.code), Some(102));
    read_until(&mut ws, |v| v["push"]["pub"]["data"]["text"] == "batched").await;

    let disconnected = api
        .disconnect(authed(
            pb::DisconnectRequest {
                user: "alice".into(),
                disconnect: Some(pb::Disconnect {
                    code: 4321,
                    reason: "bye".into(),
                }),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("disconnect")
        .into_inner();
    assert!(disconnected.error.is_none(), "{disconnected:?}");
    assert_eq!(ws.close_code().await, 4321);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_key_is_unauthenticated() {
    let (_gyre, port) = server(json!({}));
    let mut api = client(port).await;
    let missing = api
        .info(pb::InfoRequest {})
        .await
        .expect_err("no key is refused");
    assert_eq!(missing.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(pb::InfoRequest {});
    wrong
        .metadata_mut()
        .insert("authorization", "apikey nope".parse().expect("metadata"));
    let wrong = api.info(wrong).await.expect_err("a wrong key is refused");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let batch = api
        .batch(pb::BatchRequest::default())
        .await
        .expect_err("batch checks the key too");
    assert_eq!(batch.code(), Code::Unauthenticated);
    assert!(api.info(authed(pb::InfoRequest {}, &[])).await.is_ok());
}

fn unknown_channel_publish() -> pb::PublishRequest {
    pb::PublishRequest {
        channel: "nowhere:x".into(),
        data: b"{}".to_vec(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_the_body_or_as_status() {
    let (_gyre, port) = server(json!({}));
    let mut api = client(port).await;
    let body = api
        .publish(authed(unknown_channel_publish(), &[]))
        .await
        .expect("an API error is a normal response by default")
        .into_inner();
    assert_eq!(body.error.map(|e| e.code), Some(102));
    let status = api
        .publish(authed(
            unknown_channel_publish(),
            &[("x-centrifugo-error-mode", "transport")],
        ))
        .await
        .expect_err("the header asks for transport errors");
    assert_eq!(status.code(), Code::NotFound);

    let (_gyre, port) = server(json!({ "error_mode": "transport" }));
    let mut api = client(port).await;
    let status = api
        .publish(authed(unknown_channel_publish(), &[]))
        .await
        .expect_err("transport mode");
    assert_eq!(status.code(), Code::NotFound);
    assert!(!status.details().is_empty(), "the API error rides along");
    let bad = api
        .history(authed(
            pb::HistoryRequest {
                channel: String::new(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect_err("no channel");
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_receive_message_size_is_enforced() {
    let (_gyre, port) = server(json!({ "max_receive_message_size": 1024 }));
    let mut api = client(port).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let err = api
        .publish(authed(
            pb::PublishRequest {
                channel: "room".into(),
                data: big.into_bytes(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect_err("too large");
    // tonic reports a message over the decoding limit as OUT_OF_RANGE.
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );
    let small = api
        .publish(authed(
            pb::PublishRequest {
                channel: "room".into(),
                data: b"{}".to_vec(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("a small message passes");
    assert!(small.into_inner().error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (_gyre, port) = server(json!({ "reflection": true }));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter(vec![request]))
        .await
        .expect("reflection call")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("reflection answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"centrifugal.centrifugo.api.CentrifugoApi"),
        "{names:?}"
    );
}

/// A CA, and a server and a client certificate it signed (PEM).
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["grpc.test".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["client.test".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

async fn tls_client(
    port: u16,
    pki: &Pki,
    with_cert: bool,
) -> Result<CentrifugoApiClient<Channel>, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("grpc.test");
    if with_cert {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("uri")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(CentrifugoApiClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let pki = pki();
    let (_gyre, port) = server(json!({
        "tls": {
            "enabled": true,
            "cert_pem": pki.server_cert,
            "key_pem": pki.server_key,
            "client_ca_pem": pki.ca,
        },
    }));
    let mut api = tls_client(port, &pki, true)
        .await
        .expect("TLS connect with a client certificate");
    let info = api
        .info(authed(pb::InfoRequest {}, &[]))
        .await
        .expect("info over TLS")
        .into_inner();
    assert_eq!(info.result.map(|r| r.nodes.len()), Some(1));

    // Without a client certificate the handshake (or the first call) fails.
    let refused = match tls_client(port, &pki, false).await {
        Err(_) => true,
        Ok(mut api) => api.info(authed(pb::InfoRequest {}, &[])).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // Plain text is not served on a TLS port.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut api = CentrifugoApiClient::new(channel);
        assert!(api.info(authed(pb::InfoRequest {}, &[])).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_publishes_and_queries() {
    let deps = support::grpc_python_deps();
    let (gyre, port) = server(json!({}));
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json(&token(json!({"sub": "alice"}))).await;
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    assert!(ws.reply(2).await["subscribe"].is_object());
    let proto = support::repo_root().join("crates/server/proto/api.proto");
    let mut child = std::process::Command::new("python3")
        .arg("-u")
        .arg(support::repo_root().join("conformance/python/grpc_api.py"))
        .env("PYTHONPATH", &deps)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GYRE_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("GYRE_GRPC_KEY", KEY)
        .env("GYRE_PROTO", &proto)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let (status, stdout, stderr) = support::wait_bounded(&mut child, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "grpc_api.py failed: {status:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    );
    assert_eq!(stdout.trim(), "ok", "{stderr}");
    read_until(&mut ws, |v| v["push"]["pub"]["data"]["from"] == "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_actions_broadcast_and_maps() {
    let (gyre, port) = server(json!({}));
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json(&token(json!({"sub": "alice"}))).await;
    let mut api = client(port).await;

    let subscribed = api
        .subscribe(authed(
            pb::SubscribeRequest {
                user: "alice".into(),
                channel: "extra".into(),
                data: br#"{"hi":1}"#.to_vec(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("subscribe")
        .into_inner();
    assert!(subscribed.error.is_none(), "{subscribed:?}");
    read_until(&mut ws, |v| {
        v["push"]["channel"] == "extra" && v["push"]["subscribe"]["data"]["hi"] == 1
    })
    .await;

    let broadcast = api
        .broadcast(authed(
            pb::BroadcastRequest {
                channels: vec!["extra".into(), "nowhere:x".into()],
                data: br#"{"b":1}"#.to_vec(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("broadcast")
        .into_inner()
        .result
        .expect("broadcast result");
    assert_eq!(broadcast.responses.len(), 2);
    assert_eq!(
        broadcast.responses[0].result.as_ref().map(|r| r.offset),
        Some(1)
    );
    assert_eq!(
        broadcast.responses[1].error.as_ref().map(|e| e.code),
        Some(102)
    );
    read_until(&mut ws, |v| {
        v["push"]["channel"] == "extra" && v["push"]["pub"]["data"]["b"] == 1
    })
    .await;

    let removed = api
        .history_remove(authed(
            pb::HistoryRemoveRequest {
                channel: "extra".into(),
            },
            &[],
        ))
        .await
        .expect("history_remove")
        .into_inner();
    assert!(removed.error.is_none(), "{removed:?}");
    let history = api
        .history(authed(
            pb::HistoryRequest {
                channel: "extra".into(),
                limit: -1,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("history")
        .into_inner()
        .result
        .expect("history result");
    assert!(history.publications.is_empty(), "{history:?}");

    let refreshed = api
        .refresh(authed(
            pb::RefreshRequest {
                user: "alice".into(),
                expire_at: support::now() + 3600,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("refresh")
        .into_inner();
    assert!(refreshed.error.is_none(), "{refreshed:?}");

    let unsubscribed = api
        .unsubscribe(authed(
            pb::UnsubscribeRequest {
                user: "alice".into(),
                channel: "extra".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("unsubscribe")
        .into_inner();
    assert!(unsubscribed.error.is_none(), "{unsubscribed:?}");
    read_until(&mut ws, |v| v["push"]["unsubscribe"]["code"] == 2000).await;

    let published = api
        .map_publish(authed(
            pb::MapPublishRequest {
                channel: "mp:board".into(),
                key: "k1".into(),
                data: br#"{"v":1}"#.to_vec(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("map_publish")
        .into_inner();
    assert!(published.error.is_none(), "{published:?}");
    let state = api
        .map_read_state(authed(
            pb::MapReadStateRequest {
                channel: "mp:board".into(),
                limit: 10,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("map_read_state")
        .into_inner()
        .result
        .expect("state");
    assert_eq!(state.entries.len(), 1, "{state:?}");
    assert_eq!(state.entries[0].key, "k1");
    assert_eq!(state.entries[0].data, br#"{"v":1}"#.to_vec());
    let stats = api
        .map_stats(authed(
            pb::MapStatsRequest {
                channel: "mp:board".into(),
            },
            &[],
        ))
        .await
        .expect("map_stats")
        .into_inner()
        .result
        .expect("stats");
    assert_eq!(stats.num_keys, 1);
    let stream = api
        .map_read_stream(authed(
            pb::MapReadStreamRequest {
                channel: "mp:board".into(),
                limit: 10,
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("map_read_stream")
        .into_inner();
    assert!(stream.error.is_none(), "{stream:?}");
    let map_removed = api
        .map_remove(authed(
            pb::MapRemoveRequest {
                channel: "mp:board".into(),
                key: "k1".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("map_remove")
        .into_inner();
    assert!(map_removed.error.is_none(), "{map_removed:?}");
    let cleared = api
        .map_clear(authed(
            pb::MapClearRequest {
                channel: "mp:board".into(),
            },
            &[],
        ))
        .await
        .expect("map_clear")
        .into_inner();
    assert!(cleared.error.is_none(), "{cleared:?}");

    // shared_poll_publish outside a shared poll namespace: the executor's 107.
    let shared = api
        .shared_poll_publish(authed(
            pb::SharedPollPublishRequest {
                channel: "room".into(),
                key: "k".into(),
                version: 1,
                data: b"{}".to_vec(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .expect("shared_poll_publish")
        .into_inner();
    assert_eq!(shared.error.map(|e| e.code), Some(107));
}
