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
            "namespaces": [{ "name": "bin", "publication_data_format": "binary", "history_size": 10, "history_ttl": "300s" }],
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
