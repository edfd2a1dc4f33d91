//! Control over NATS: `<prefix>.control` every node listens to and `<prefix>.node.<id>` per
//! node. The engine only carries the node's control messages; their meaning lives in
//! [`crate::node::cluster`].

use std::time::Instant;

use super::*;
use crate::engine::{BoxFuture, ControlBus};

impl ControlBus for NatsEngine {
    fn publish<'a>(
        &'a self,
        message: String,
        to: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let subject = match to {
                Some(node) => self.node_subject(node),
                None => self.control_subject(),
            };
            self.send(subject, message.into()).await
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn wait_connected(&self, bound: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let deadline = Instant::now() + bound;
            loop {
                if self.control_ready.load(Ordering::Acquire) {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }
}
