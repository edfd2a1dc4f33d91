//! Control over Redis: one Pub/Sub channel every node listens to and one per node (for
//! answers addressed to it). The engine only carries the node's control messages; their
//! meaning (commands, heartbeats, surveys) lives in [`crate::node::cluster`].

use super::*;
use crate::engine::{BoxFuture, ControlBus, EngineError};

impl ControlBus for RedisEngine {
    fn publish<'a>(
        &'a self,
        message: String,
        to: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let channel = match to {
                Some(node) => self.node_name(node),
                None => self.control_name(),
            };
            let mut conn = self.shards[0].conn.clone();
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn wait_connected(&self, bound: Duration) -> BoxFuture<'_, bool> {
        Box::pin(RedisEngine::wait_connected(self, bound))
    }
}
