use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gyre_protocol::{ClientInfo, Publication, StreamPosition};
use parking_lot::Mutex;

use super::MemoryMapBroker;
use crate::engine::EngineEvents;
use crate::engine::map::{MapBroker, MapChannelOptions, MapReadError, MapUpdate};

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Publication>>);

impl EngineEvents for Recorder {
    fn node_id(&self) -> &str {
        "test"
    }
    fn publication(&self, _: &str, publication: &Publication, _: bool, _: &str) {
        self.0.lock().push(publication.clone());
    }
    fn join_leave(&self, _: &str, _: &ClientInfo, _: bool) {}
    fn stream_lost(&self, _: &str) {}
    fn has_subscribers(&self, _: &str) -> bool {
        true
    }
    fn control(&self, _: &[u8]) {}
}

fn set(key: &str, data: &'static str) -> MapUpdate {
    MapUpdate {
        key: key.into(),
        data: Bytes::from_static(data.as_bytes()),
        ..Default::default()
    }
}

fn broker() -> (Arc<MemoryMapBroker>, Arc<Recorder>) {
    let events = Arc::new(Recorder::default());
    let broker = MemoryMapBroker::start(events.clone(), Default::default());
    (broker, events)
}

const STREAM: MapChannelOptions = MapChannelOptions {
    stream_size: 2,
    stream_ttl: Duration::from_secs(60),
    meta_ttl: None,
    key_ttl: None,
};

#[tokio::test]
async fn state_pages_follow_key_order_and_removals() {
    let (b, events) = broker();
    for k in ["c", "a", "b"] {
        b.publish("m", STREAM, set(k, "1")).await.expect("publish");
    }
    b.publish("m", STREAM, set("a", "2"))
        .await
        .expect("publish");
    let page = b.read_state("m", STREAM, "", 2).await.expect("page");
    let keys: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(page.next_after, "b");
    assert_eq!(page.entries[0].offset, 4);
    assert_eq!(page.position.offset, 4);
    let last = b.read_state("m", STREAM, "b", 2).await.expect("page");
    assert_eq!(last.entries.len(), 1);
    assert!(last.next_after.is_empty());
    // The second "a" carries the first as its delta base.
    assert_eq!(events.0.lock()[3].prev_data, Bytes::from_static(b"1"));
    let gone = b
        .publish(
            "m",
            STREAM,
            MapUpdate {
                key: "zz".into(),
                removed: true,
                ..Default::default()
            },
        )
        .await
        .expect("remove");
    assert!(gone.suppressed, "removing a missing key changes nothing");
}

#[tokio::test]
async fn stream_reads_detect_lost_positions() {
    let (b, _) = broker();
    for n in 0..4 {
        b.publish("m", STREAM, set(&format!("k{n}"), "v"))
            .await
            .expect("publish");
    }
    let top = b
        .read_stream("m", STREAM, None, 10)
        .await
        .expect("top")
        .position;
    assert_eq!(top.offset, 4);
    let since = |offset| StreamPosition {
        offset,
        epoch: top.epoch.clone(),
    };
    let recent = b
        .read_stream("m", STREAM, Some(&since(2)), 10)
        .await
        .expect("recent");
    assert_eq!(recent.publications.len(), 2);
    assert!(matches!(
        b.read_stream("m", STREAM, Some(&since(1)), 10).await,
        Err(MapReadError::Unrecoverable)
    ));
    let other = StreamPosition {
        offset: 4,
        epoch: "other".into(),
    };
    assert!(matches!(
        b.read_stream("m", STREAM, Some(&other), 10).await,
        Err(MapReadError::Unrecoverable)
    ));
}

#[tokio::test]
async fn expired_keys_are_removed_with_a_publication() {
    let (b, events) = broker();
    let ephemeral = MapChannelOptions {
        key_ttl: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    b.publish("e", ephemeral, set("k", "v"))
        .await
        .expect("publish");
    b.sweep(Instant::now() + Duration::from_secs(6));
    {
        let delivered = events.0.lock();
        assert_eq!(delivered.len(), 2);
        assert!(delivered[1].removed && delivered[1].key == "k");
    }
    assert_eq!(b.stats("e").await.expect("stats").keys, 0);
}

#[tokio::test]
async fn touched_keys_live_on_without_a_publication() {
    let (b, events) = broker();
    let short = MapChannelOptions {
        key_ttl: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let long = MapChannelOptions {
        key_ttl: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    b.publish("p", short, set("held", "v"))
        .await
        .expect("publish");
    b.publish("p", short, set("dropped", "v"))
        .await
        .expect("publish");
    b.touch("p", long, "held").await.expect("touch");
    assert_eq!(events.0.lock().len(), 2, "a touch delivers nothing");
    b.sweep(Instant::now() + Duration::from_secs(6));
    let page = b.read_state("p", long, "", 10).await.expect("state");
    let keys: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["held"]);
}
