use super::*;

fn handle(client: &str) -> Arc<SessionHandle> {
    SessionHandle::new(Arc::from(client), Protocol::Json, 1 << 20).0
}

fn items(keys: &[(&str, u64)]) -> Vec<TrackItem> {
    keys.iter()
        .map(|(k, v)| TrackItem {
            key: (*k).to_owned(),
            version: *v,
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
