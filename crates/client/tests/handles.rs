//! Handle semantics: `state()` changes when the call is made, and a handle of a removed
//! subscription never touches a later subscription to the same channel.

mod common;

use common::{Server, insecure_config};
use gyre_client::{ClientOptions, Error, State, SubscriptionOptions, SubscriptionState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_when_the_call_is_made() {
    // Nothing listens on port 1: the client stays connecting, so every state below is the
    // one the call itself set.
    let client = ClientOptions::new("ws://127.0.0.1:1/connection/websocket")
        .build()
        .expect("build");
    let sub = client
        .new_subscription("immediate", SubscriptionOptions::new())
        .expect("sub");
    assert_eq!(client.state(), State::Disconnected);
    client.connect();
    assert_eq!(client.state(), State::Connecting);
    sub.subscribe();
    assert_eq!(sub.state(), SubscriptionState::Subscribing);
    sub.unsubscribe();
    assert_eq!(sub.state(), SubscriptionState::Unsubscribed);
    sub.subscribe();
    assert_eq!(sub.state(), SubscriptionState::Subscribing);
    client.disconnect();
    assert_eq!(client.state(), State::Disconnected);
    client.close().await;
    assert_eq!(client.state(), State::Closed);
    assert_eq!(sub.state(), SubscriptionState::Unsubscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscriptions_handle_is_inert() {
    let server = Server::start(insecure_config());
    let client = ClientOptions::new(server.url()).build().expect("build");
    client.connect();
    client.ready(None).await.expect("connected");
    let old = client
        .new_subscription("stale", SubscriptionOptions::new())
        .expect("old");
    old.subscribe();
    old.ready(None).await.expect("old subscribed");
    client.remove_subscription(&old).expect("removed");
    let new = client
        .new_subscription("stale", SubscriptionOptions::new())
        .expect("new");
    new.subscribe();
    new.ready(None).await.expect("new subscribed");

    old.unsubscribe();
    old.subscribe();
    assert_eq!(
        client.remove_subscription(&old),
        Err(Error::SubscriptionNotFound("stale".into()))
    );
    assert_eq!(
        old.publish(&br#"{"x":1}"#[..]).await,
        Err(Error::SubscriptionNotFound("stale".into()))
    );
    assert!(
        old.events().recv().await.is_none(),
        "a stale handle's stream ends"
    );
    // Commands are applied in order: once this call is answered, any effect the old
    // handle's unsubscribe could have had on the new subscription has happened.
    new.ready(None).await.expect("still subscribed");
    assert_eq!(new.state(), SubscriptionState::Subscribed);
    assert_eq!(old.state(), SubscriptionState::Unsubscribed);
    client.close().await;
}
