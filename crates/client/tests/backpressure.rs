//! Lossless delivery: with .backpressure(true)` a consumer that does not read while 2,000
//! publications arrive (more than the stream's capacity) still gets every one, in order.

mod common;

use common::{Server, insecure_config, wait_sub};
use gyre_client::{ClientOptions, SubscriptionEvent, SubscriptionOptions};

const COUNT: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_loses_no_publication() {
    let server = Server::start(insecure_config());
    let reader = ClientOptions::new(server.url())
        .backpressure(true)
        .event_capacity(256)
        .build()
        .expect("build reader");
    let sub = reader
        .new_subscription("flood", SubscriptionOptions::new())
        .expect("sub");
    let mut events = sub.events();
    sub.subscribe();
    reader.connect();
    wait_sub(&mut events, "subscribed", |e| {
        matches!(e, SubscriptionEvent::Subscribed(_))
    })
    .await;

    // The consumer reads nothing until every publication has been accepted by the server.
    let writer = ClientOptions::new(server.url())
        .build()
        .expect("build writer");
    writer.connect();
    writer.ready(None).await.expect("writer connected");
    for n in 0..COUNT {
        writer
            .publish("flood", format!(r#"{{"n":{n}}}"#))
            .await
            .expect("publish");
    }

    let mut got = Vec::with_capacity(COUNT);
    while got.len() < COUNT {
        match events.recv().await.expect("stream open") {
            SubscriptionEvent::Publication(p) => {
                let v: serde_json::Value = serde_json::from_slice(&p.data).expect("json");
                got.push(v["n"].as_u64().expect("n"));
            }
            SubscriptionEvent::Lagged { missed, .. } => panic!("lost {missed} events"),
            _ => {}
        }
    }
    let want: Vec<u64> = (0..COUNT as u64).collect();
    assert_eq!(got, want, "every publication, in order");
    writer.close().await;
    reader.close().await;
}
