use super::*;

fn handle(client: &str) -> Arc<SessionHandle> {
    SessionHandle::new(Arc::from(client), Protocol::Json, 1 << 20).0
}

fn items(keys: &[(&str, u64)]) -> Vec<TrackItem> {
    keys.iter()
        .map(|(k, v)| TrackItem {
            key: (*k).to_owned(),
            version: *v,
            expire_at: 0,
        })
        .collect()
}

#[test]
fn limit_counts_distinct_keys_after_inline_untrack() {
    let mut state = State::default();
    let a = handle("a");
    assert!(
        state
            .track(2, &a, &items(&[("k1", 0), ("k2", 0)]), &[])
            .is_ok()
    );
    // Re-tracking a key takes no new slot; a third key does.
    assert!(state.track(2, &a, &items(&[("k1", 0)]), &[]).is_ok());
    assert_eq!(
        state.track(2, &a, &items(&[("k3", 0)]), &[]),
        Err(ErrorCode::LimitExceeded)
    );
    // Untracking one in the same request frees its slot.
    assert!(
        state
            .track(2, &a, &items(&[("k3", 0)]), &["k1".to_owned()])
            .is_ok()
    );
    assert_eq!(state.clients["a"].keys.len(), 2);
    assert!(!state.keys.contains_key("k1"));
}

#[test]
fn cached_data_goes_to_late_trackers_once() {
    let mut state = State::default();
    let (a, b) = (handle("a"), handle("b"));
    assert_eq!(state.track(10, &a, &items(&[("k", 0)]), &[]), Ok(vec![]));
    let entry = state.keys.get_mut("k").expect("key");
    entry.version = 3;
    entry.data = Bytes::from_static(b"{}");
    assert_eq!(state.deliveries("k", 3).len(), 1);
    assert!(state.deliveries("k", 3).is_empty(), "delivered twice");
    // A second connection without the data gets it in the track reply, one with it does not.
    let cached = state
        .track(10, &b, &items(&[("k", 0)]), &[])
        .expect("track");
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].version, 3);
    assert!(state.deliveries("k", 3).is_empty());
    assert!(
        state
            .track(10, &b, &items(&[("k", 3)]), &[])
            .expect("track")
            .is_empty()
    );
}

#[test]
fn untracking_and_removal_leave_nothing_behind() {
    let mut state = State::default();
    let (a, b) = (handle("a"), handle("b"));
    state
        .track(10, &a, &items(&[("k1", 0), ("k2", 0)]), &[])
        .expect("a");
    state.track(10, &b, &items(&[("k1", 0)]), &[]).expect("b");
    assert_eq!(state.remove("k1").len(), 2);
    assert!(!state.clients.contains_key("b"));
    state.untrack("a", ["k2"].into_iter());
    assert!(state.keys.is_empty() && state.clients.is_empty());
}

/// A registry whose channels poll an endpoint nobody listens on, every 10ms.
fn registry() -> (SharedPoll, SharedPollOptions) {
    let mut config = Config::default();
    config.proxies.push(gyre_config::NamedProxy {
        name: "poll".into(),
        options: ProxyOptions {
            endpoint: "http://127.0.0.1:9/refresh".into(),
            ..Default::default()
        },
    });
    let options = SharedPollOptions {
        proxy_name: "poll".into(),
        refresh_interval: gyre_config::Duration::from_millis(10),
        channel_shutdown_delay: gyre_config::Duration::from_millis(10),
        ..Default::default()
    };
    let poll = SharedPoll::new(&config, CancellationToken::new());
    (poll, options)
}

async fn until_no_channels(poll: &SharedPoll) {
    for _ in 0..300 {
        if poll.registry.channels.lock().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the channel's poller did not stop");
}

#[tokio::test]
async fn poller_stops_when_the_last_tracker_leaves() {
    let (poll, options) = registry();
    let (a, b) = (handle("a"), handle("b"));
    for round in 0..2 {
        poll.track("poll:x", &options, &a, &items(&[("k", 0)]), &[])
            .expect("track a");
        poll.track("poll:x", &options, &b, &items(&[("k", 0)]), &[])
            .expect("track b");
        assert_eq!(poll.registry.channels.lock().len(), 1, "round {round}");
        poll.untrack("poll:x", "a", None);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            poll.registry.channels.lock().len(),
            1,
            "stopped while b tracks (round {round})"
        );
        poll.untrack("poll:x", "b", Some(&["k".to_owned()]));
        until_no_channels(&poll).await;
    }
    assert_eq!(
        poll.track(
            "poll:x",
            &SharedPollOptions::default(),
            &a,
            &items(&[("k", 0)]),
            &[]
        ),
        Err(ErrorCode::Internal),
        "a channel without its proxy"
    );
}

#[test]
fn expired_signatures_end_their_trackings() {
    let mut state = State::default();
    let (a, b) = (handle("a"), handle("b"));
    let mut signed = items(&[("k1", 0), ("k2", 0)]);
    signed[0].expire_at = 100;
    state.track(10, &a, &signed, &[]).expect("a");
    state.track(10, &b, &items(&[("k1", 0)]), &[]).expect("b");
    state.expire(100);
    assert_eq!(state.clients["a"].keys.len(), 2, "not yet expired");
    state.expire(101);
    assert_eq!(state.clients["a"].keys.len(), 1);
    assert!(!state.keys["k1"].trackers.contains_key("a"));
    assert!(state.keys["k1"].trackers.contains_key("b"));
    // A new track with a renewed signature keeps the key.
    signed[1].expire_at = 200;
    state.track(10, &a, &signed[1..], &[]).expect("renew");
    state.expire(150);
    assert!(state.keys["k2"].trackers.contains_key("a"));
}

/// A channel of `poll` in `mode`, tracked by `a` (key "k").
fn tracked(poll: &SharedPoll, mode: SharedPollMode, a: &Arc<SessionHandle>) -> Arc<Channel> {
    let (_, mut options) = registry();
    options.mode = mode;
    // An hour between polls: only the answers the test applies change anything.
    options.refresh_interval = gyre_config::Duration::from_secs(3600);
    poll.track("poll:x", &options, a, &items(&[("k", 0)]), &[])
        .expect("track");
    poll.registry.channels.lock()["poll:x"].clone()
}

fn answer(items: serde_json::Value, epoch: &str) -> wire::ResultBody {
    serde_json::from_value(serde_json::json!({"items": items, "epoch": epoch})).expect("answer")
}

/// Everything queued for a connection so far, as JSON.
fn received(rx: &mut crate::outbound::OutboundReceiver) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(message) = rx.try_recv() {
        match message {
            crate::outbound::Outbound::Unit(unit) => {
                out.push(serde_json::from_slice(&unit).expect("json"));
            }
            crate::outbound::Outbound::Control(c) => {
                out.push(serde_json::json!({ "control": format!("{c:?}") }));
            }
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn versionless_answers_are_compared_by_content() {
    let (poll, _) = registry();
    let (a, mut rx) = SessionHandle::new(Arc::from("a"), Protocol::Json, 1 << 20);
    let ch = tracked(&poll, SharedPollMode::Versionless, &a);
    let same = || answer(serde_json::json!([{"key": "k", "data": {"x": 1}}]), "");
    poller::apply(&poll.registry, &ch, same());
    poller::apply(&poll.registry, &ch, same());
    let got = received(&mut rx);
    assert_eq!(got.len(), 1, "{got:?}");
    let first = got[0]["push"]["pub"]["version"].as_u64().expect("version");
    assert!(first > 0);
    poller::apply(
        &poll.registry,
        &ch,
        answer(serde_json::json!([{"key": "k", "data": {"x": 2}}]), ""),
    );
    let got = received(&mut rx);
    assert_eq!(got[0]["push"]["pub"]["data"], serde_json::json!({"x": 2}));
    assert!(got[0]["push"]["pub"]["version"].as_u64() > Some(first));
}

#[tokio::test]
async fn versioned_answers_removals_and_epoch_changes() {
    let (poll, _) = registry();
    let (a, mut rx) = SessionHandle::new(Arc::from("a"), Protocol::Json, 1 << 20);
    let ch = tracked(&poll, SharedPollMode::Versioned, &a);
    let v = |version: u64| {
        answer(
            serde_json::json!([{"key": "k", "data": version, "version": version}]),
            "",
        )
    };
    poller::apply(&poll.registry, &ch, v(2));
    poller::apply(&poll.registry, &ch, v(1));
    poller::apply(&poll.registry, &ch, v(2));
    let got = received(&mut rx);
    assert_eq!(
        got.len(),
        1,
        "older and equal versions are not delivered: {got:?}"
    );
    assert_eq!(got[0]["push"]["pub"]["version"], 2);
    // Keys nobody tracks are ignored.
    poller::apply(
        &poll.registry,
        &ch,
        answer(
            serde_json::json!([{"key": "other", "data": 1, "version": 9}]),
            "",
        ),
    );
    assert!(received(&mut rx).is_empty());
    // A new backend epoch resubscribes the trackers.
    poller::apply(&poll.registry, &ch, answer(serde_json::json!([]), "e2"));
    let got = received(&mut rx);
    assert!(
        got[0]["control"]
            .as_str()
            .is_some_and(|c| c.contains("InsufficientState")),
        "{got:?}"
    );
    assert_eq!(poll.epoch("poll:x", &SharedPollMode::Versioned), "e2");
    // A removal reaches the tracker and ends the key.
    poller::apply(
        &poll.registry,
        &ch,
        answer(serde_json::json!([{"key": "k", "removed": true}]), "e2"),
    );
    let got = received(&mut rx);
    assert_eq!(got[0]["push"]["pub"]["removed"], true, "{got:?}");
    assert!(ch.state.lock().keys.is_empty() && ch.state.lock().clients.is_empty());
}
