//! Publishing on NATS: the Broker side of the engine (no streams, as upstream).

use bytes::Bytes;
use gyre_protocol::{ClientInfo, ErrorCode};

use super::*;
use crate::engine::{
    BoxFuture, Broker, BrokerPublication, HistoryFilter, HistoryResult, StreamOptions,
    StreamPosition,
};

/// What a history read (or removal) answers on this broker.
fn no_history() -> EngineError {
    EngineError::refused(ErrorCode::NotAvailable, "the NATS broker keeps no history")
}

impl NatsEngine {
    /// Sends `payload` on `subject` while connected, bounded by the write timeout (at most
    /// once: nothing is queued while the connection is away).
    pub(super) async fn send(&self, subject: String, payload: Bytes) -> Result<(), EngineError> {
        if !self.connected() {
            return Err(EngineError::new("nats is not connected"));
        }
        tokio::time::timeout(self.write_timeout, self.client.publish(subject, payload))
            .await
            .map_err(|_| EngineError::new("nats write timed out"))?
            .map_err(err)
    }
}

impl Broker for NatsEngine {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        p: BrokerPublication,
    ) -> BoxFuture<'a, Result<StreamPosition, EngineError>> {
        Box::pin(async move {
            if has_wildcards(channel) {
                return Err(EngineError::refused(
                    ErrorCode::BadRequest,
                    "cannot publish to a wildcard channel",
                ));
            }
            let payload = if self.raw.is_some() {
                p.publication.data.clone()
            } else {
                wire::publication(&p.publication, p.delta)
            };
            self.send(self.channel_subject(channel), payload).await?;
            Ok(StreamPosition::default())
        })
    }

    fn publish_join_leave<'a>(
        &'a self,
        channel: &'a str,
        info: &'a ClientInfo,
        joined: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            // Raw subjects carry payloads only; a wildcard channel has no members of its own.
            if self.raw.is_some() || has_wildcards(channel) {
                return Ok(());
            }
            self.send(
                self.channel_subject(channel),
                wire::join_leave(info, joined),
            )
            .await
        })
    }

    fn history<'a>(
        &'a self,
        _channel: &'a str,
        _stream: &'a StreamOptions,
        _filter: &'a HistoryFilter,
    ) -> BoxFuture<'a, Result<HistoryResult, EngineError>> {
        Box::pin(std::future::ready(Err(no_history())))
    }

    fn remove_history<'a>(&'a self, _channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(std::future::ready(Err(no_history())))
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(self.subscribe_channel(channel))
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        self.unsubscribe_channel(channel);
        Box::pin(std::future::ready(Ok(())))
    }
}
