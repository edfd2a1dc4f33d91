//! Unit tests of the parent module.

use super::*;
use crate::outbound::{Control, Outbound};

fn publication(offset: u64) -> Publication {
    Publication {
        data: Bytes::from(format!("{{\"n\":{offset}}}")),
        offset,
        ..Default::default()
    }
}

fn drain(rx: &mut crate::outbound::OutboundReceiver) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(message) = rx.try_recv() {
        out.push(match message {
            Outbound::Unit(unit) => String::from_utf8_lossy(&unit).into_owned(),
            Outbound::Control(control) => match *control {
                Control::InsufficientState(c) => format!("insufficient {c}"),
                other => format!("{other:?}"),
            },
            other => format!("{other:?}"),
        });
    }
    out
}

#[test]
fn buffered_publications_merge_after_the_position() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    for offset in 1..=4 {
        hub.broadcast_publication("ch", &publication(offset), false, "e1");
    }
    assert!(
        drain(&mut rx).is_empty(),
        "nothing is delivered while buffering"
    );
    // History (the reply) covered up to offset 2: 3 and 4 follow, 1 and 2 are dropped.
    assert!(hub.go_live("ch", "c1", Some((2, "e1")), false));
    let units = drain(&mut rx);
    assert_eq!(units.len(), 2);
    assert!(units[0].contains("\"offset\":3") && units[1].contains("\"offset\":4"));
    // Live: an old offset is not delivered again, the next one is, a gap is reported.
    hub.broadcast_publication("ch", &publication(4), false, "e1");
    hub.broadcast_publication("ch", &publication(5), false, "e1");
    assert_eq!(drain(&mut rx).len(), 1);
    hub.broadcast_publication("ch", &publication(7), false, "e1");
    assert_eq!(drain(&mut rx), vec!["insufficient ch".to_owned()]);
}

#[test]
fn a_restarted_stream_is_insufficient_state_not_a_duplicate() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    assert!(hub.go_live("ch", "c1", Some((5, "e1")), false));
    hub.broadcast_publication("ch", &publication(6), false, "e1");
    assert_eq!(drain(&mut rx).len(), 1);
    // Offsets from 1 again in a new epoch.
    hub.broadcast_publication("ch", &publication(1), false, "e2");
    assert_eq!(drain(&mut rx), vec!["insufficient ch".to_owned()]);
}

#[test]
fn a_late_first_publication_of_a_new_stream_is_not_a_restart() {
    // A brand-new channel: offsets 1 and 2 published by another node, the history read
    // already saw both (position 2), and offset 1 comes late from the engine.
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    assert!(hub.go_live("ch", "c1", Some((2, "e1")), false));
    hub.broadcast_publication("ch", &publication(1), false, "e1");
    hub.broadcast_publication("ch", &publication(2), false, "e1");
    assert!(drain(&mut rx).is_empty(), "already in the subscribe reply");
    hub.broadcast_publication("ch", &publication(3), false, "e1");
    let units = drain(&mut rx);
    assert_eq!(units.len(), 1);
    assert!(units[0].contains("\"offset\":3"), "{units:?}");
}

#[test]
fn a_lost_stream_resubscribes_positioned_subscribers_only() {
    let hub = Hub::default();
    let (positioned, mut positioned_rx) =
        SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    let (plain, mut plain_rx) = SessionHandle::new(Arc::from("c2"), Protocol::Json, 1 << 20);
    let (joining, _joining_rx) = SessionHandle::new(Arc::from("c3"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(positioned, false, false));
    hub.subscribe("ch", Subscriber::buffering(plain, false, false));
    hub.subscribe("ch", Subscriber::buffering(joining, false, false));
    assert!(hub.go_live("ch", "c1", Some((4, "e1")), false));
    assert!(hub.go_live("ch", "c2", None, false));
    hub.stream_lost("ch");
    assert_eq!(
        drain(&mut positioned_rx),
        vec!["insufficient ch".to_owned()]
    );
    assert!(
        drain(&mut plain_rx).is_empty(),
        "no position: nothing to say"
    );
    // Still subscribing when it happened: cannot go live silently when positioned.
    assert!(!hub.go_live("ch", "c3", Some((4, "e1")), false));
    // Publications keep flowing to the unpositioned subscriber.
    hub.broadcast_publication("ch", &publication(0), false, "");
    assert_eq!(drain(&mut plain_rx).len(), 1);
}

#[test]
fn a_gap_in_the_buffer_is_insufficient_state() {
    let hub = Hub::default();
    let (handle, _rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    hub.broadcast_publication("ch", &publication(5), false, "e1");
    assert!(!hub.go_live("ch", "c1", Some((3, "e1")), false));
}

#[test]
fn unpositioned_subscribers_get_every_buffered_publication() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    hub.broadcast_publication("ch", &publication(0), false, "e1");
    hub.broadcast_publication("ch", &publication(0), false, "e1");
    assert!(hub.go_live("ch", "c1", None, false));
    assert_eq!(drain(&mut rx).len(), 2);
}

#[test]
fn a_filtered_delta_subscriber_skips_and_gets_the_next_in_full() {
    let hub = Hub::default();
    let filter = crate::tags_filter::TagsFilter::compile(&gyre_protocol::FilterNode {
        key: "kind".into(),
        cmp: "eq".into(),
        val: "a".into(),
        ..Default::default()
    })
    .expect("valid filter");
    let (plain, mut plain_rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    let (filtered, mut filtered_rx) = SessionHandle::new(Arc::from("c2"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(plain, true, false));
    let mut sub = Subscriber::buffering(filtered, true, false);
    sub.filter = Some(Arc::new(filter));
    hub.subscribe("ch", sub);
    assert!(hub.go_live("ch", "c1", Some((0, "e1")), false));
    assert!(hub.go_live("ch", "c2", Some((0, "e1")), false));
    let long = "x".repeat(200);
    for (offset, kind) in [(1, "a"), (2, "b"), (3, "a"), (4, "a")] {
        let mut p = publication(offset);
        p.data = Bytes::from(format!("{{\"n\":{offset},\"pad\":\"{long}\"}}"));
        p.tags.insert("kind".into(), kind.into());
        hub.broadcast_publication("ch", &p, true, "e1");
    }
    let is_delta = |unit: &String| unit.contains("\"delta\":true");
    let plain_units = drain(&mut plain_rx);
    assert_eq!(
        plain_units.iter().map(is_delta).collect::<Vec<_>>(),
        [false, true, true, true]
    );
    // Offset 2 is skipped (the position still advances: no insufficient state); offset 3 is
    // patched against 2 for everyone else, so the filtered subscriber gets it in full.
    let filtered_units = drain(&mut filtered_rx);
    assert_eq!(filtered_units.len(), 3, "{filtered_units:?}");
    assert!(filtered_units[1].contains("\"offset\":3"));
    assert_eq!(
        filtered_units.iter().map(is_delta).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!(hub.counts().tags_filter_dropped, 1);
}

/// Found by the chaos tests (two Redis restarts in a row): once a positioned subscriber was
/// told its state is insufficient, its position was cleared and later publications were
/// delivered unchecked until the session unsubscribed it: a publication of the new stream
/// (a lower offset, another epoch) reached a client still positioned in the old one.
#[test]
fn nothing_is_delivered_after_insufficient_state() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    assert!(hub.go_live("ch", "c1", Some((115, "e1")), false));
    hub.broadcast_publication("ch", &publication(1), false, "e2");
    hub.broadcast_publication("ch", &publication(2), false, "e2");
    hub.broadcast_publication("ch", &publication(3), false, "");
    assert_eq!(drain(&mut rx), vec!["insufficient ch".to_owned()]);
}

/// The same after the engine reported the stream lost.
#[test]
fn nothing_is_delivered_after_a_lost_stream() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    assert!(hub.go_live("ch", "c1", Some((115, "e1")), false));
    hub.stream_lost("ch");
    hub.broadcast_publication("ch", &publication(5), false, "e2");
    hub.broadcast_publication("ch", &publication(116), false, "e1");
    assert_eq!(drain(&mut rx), vec!["insufficient ch".to_owned()]);
}

/// And after going live found the buffered stream broken (the caller reports it).
#[test]
fn nothing_is_delivered_after_a_failed_go_live() {
    let hub = Hub::default();
    let (handle, mut rx) = SessionHandle::new(Arc::from("c1"), Protocol::Json, 1 << 20);
    hub.subscribe("ch", Subscriber::buffering(handle, false, false));
    hub.stream_lost("ch");
    assert!(!hub.go_live("ch", "c1", Some((10, "e1")), false));
    hub.broadcast_publication("ch", &publication(11), false, "e1");
    assert!(drain(&mut rx).is_empty());
}
