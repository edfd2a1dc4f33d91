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
    let poll = SharedPoll::new(&config, HttpClient::default(), CancellationToken::new());
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
