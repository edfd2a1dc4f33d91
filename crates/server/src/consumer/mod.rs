//! Asynchronous consumers (`consumers: [...]`): background tasks that read server API
//! commands from a queue and apply each through the API executor the HTTP and GRPC API use.
//!
//! - A message is a command: `{"method": "publish", "payload": {...}}`, or, where the queue
//!   carries the method beside the payload (the outbox table's `method` column, the Redis
//!   entry's `method_value` field), the request object alone. The payload may also be a JSON
//!   string holding the request (as CDC connectors write `jsonb` columns). Any API method
//!   works, `batch` included.
//! - A temporary failure (an internal error: engine, broker or another node unreachable; too
//!   many requests; an internal error inside a `broadcast` or `batch` reply) is retried with
//!   a growing pause (10ms up to 5s, with jitter). A permanent one (bad request, unknown
//!   method or channel, malformed message, ...) is logged once at `warn`, counted in
//!   `centrifugo_consumers_messages_skipped_total` and the message is dropped.
//! - A message leaves its queue (row deleted, entry acknowledged) only after its command was
//!   applied or skipped, so a restart or a crash loses nothing; a crash between applying and
//!   removing means the command runs again (at least once, as upstream: use idempotency keys).
//!
//! [`postgres`] reads an outbox table, [`redis_stream`] Redis Streams with a consumer group,
//! [`nats_jetstream`] a JetStream durable consumer.

mod nats_jetstream;
mod postgres;
mod publication;
mod redis_stream;

use std::sync::Arc;
use std::time::Duration;

use gyre_config::ConsumerKind;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::metrics::ConsumerCounters;
use crate::node::Node;

/// Starts every enabled consumer of a type Gyre runs; each stops when `shutdown` fires.
/// Types Gyre does not run were warned about when the configuration was loaded.
pub(crate) fn start(node: &Arc<Node>, shutdown: &CancellationToken) {
    for config in &node.config.consumers {
        if !config.enabled {
            tracing::info!(consumer = %config.name, "consumer is not enabled, skip");
            continue;
        }
        let consumer = Consumer {
            node: node.clone(),
            name: config.name.clone(),
            counters: node.metrics.consumer(&config.name),
            shutdown: shutdown.clone(),
        };
        match &config.kind {
            ConsumerKind::Postgresql => postgres::spawn(consumer, config.postgresql.clone()),
            ConsumerKind::RedisStream => redis_stream::spawn(consumer, config.redis_stream.clone()),
            ConsumerKind::NatsJetStream => {
                nats_jetstream::spawn(consumer, config.nats_jetstream.clone())
            }
            _ => continue,
        }
        tracing::info!(consumer = %config.name, kind = %config.kind, "running consumer");
    }
}

/// What every consumer task holds: the node to apply commands on, its name and counters.
#[derive(Clone)]
pub(crate) struct Consumer {
    node: Arc<Node>,
    name: String,
    counters: ConsumerCounters,
    shutdown: CancellationToken,
}

/// A command that could not be applied now and should be tried again.
#[derive(Debug)]
pub(crate) struct Temporary(String);

impl std::fmt::Display for Temporary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{"method": ..., "payload": ...}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    method: String,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

impl Consumer {
    /// Applies one message: `method` from beside the payload (`None` or empty: the payload is
    /// an envelope naming it). `Ok` when the message is done with (applied, or skipped on a
    /// permanent error), `Err` when it should be retried.
    pub(crate) async fn apply(&self, method: Option<&str>, payload: &str) -> Result<(), Temporary> {
        let outcome = match method.filter(|m| !m.is_empty()) {
            Some(method) => self.apply_request(method, payload).await,
            None => match serde_json::from_str::<Envelope<'_>>(payload) {
                Ok(Envelope {
                    method,
                    payload: Some(body),
                }) if !method.is_empty() => self.apply_request(&method, body.get()).await,
                Ok(_) => Err(Outcome::Skip(
                    "message has no method or no payload".to_owned(),
                )),
                Err(err) => Err(Outcome::Skip(format!("malformed message: {err}"))),
            },
        };
        match outcome {
            Ok(()) => {
                self.counters.processed.inc();
                Ok(())
            }
            Err(Outcome::Skip(reason)) => self.skip(&reason),
            Err(Outcome::Retry(reason)) => {
                self.counters.errors.inc();
                Err(Temporary(reason))
            }
        }
    }

    /// Drops a message that can never be applied: logged at `warn` and counted.
    pub(crate) fn skip(&self, reason: &str) -> Result<(), Temporary> {
        tracing::warn!(consumer = %self.name, "skipping message: {reason}");
        self.counters.skipped.inc();
        self.counters.processed.inc();
        Ok(())
    }

    /// Runs `method` with `body` (a request object, or a JSON string holding one).
    async fn apply_request(&self, method: &str, body: &str) -> Result<(), Outcome> {
        let unquoted;
        let body = match serde_json::from_str::<String>(body) {
            Ok(inner) => {
                unquoted = inner;
                unquoted.as_str()
            }
            Err(_) => body,
        };
        let raw: Box<RawValue> = serde_json::from_str(body)
            .map_err(|err| Outcome::Skip(format!("{method}: payload is not JSON: {err}")))?;
        match crate::api::execute(&self.node, method, &raw).await {
            Ok(result) => match internal_error_inside(result.get()) {
                Some(message) => Err(Outcome::Retry(format!("{method}: {message}"))),
                None => Ok(()),
            },
            Err(err) if err.is_temporary() => Err(Outcome::Retry(format!(
                "{method}: {} {}",
                err.code, err.message
            ))),
            Err(err) => Err(Outcome::Skip(format!(
                "{method}: error {} {}",
                err.code, err.message
            ))),
        }
    }

    /// Sleeps `pause`; false when shutdown came first.
    pub(crate) async fn sleep(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }

    /// Whether shutdown began.
    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// How applying a command failed.
enum Outcome {
    /// Permanently: drop the message.
    Skip(String),
    /// Temporarily: try again.
    Retry(String),
}

/// The message of a temporary error inside a `broadcast` (`responses`) or `batch`
/// (`replies`) result: any one makes the whole command retried, as upstream does for
/// broadcast.
fn internal_error_inside(result: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Error {
        code: u32,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Item {
        error: Option<Error>,
    }
    #[derive(Deserialize)]
    struct Multi {
        #[serde(default)]
        responses: Vec<Item>,
        #[serde(default)]
        replies: Vec<Item>,
    }
    let multi: Multi = serde_json::from_str(result).ok()?;
    multi
        .responses
        .iter()
        .chain(&multi.replies)
        .filter_map(|item| item.error.as_ref())
        .find(|e| {
            crate::node::ServiceError {
                code: e.code,
                message: String::new(),
            }
            .is_temporary()
        })
        .map(|e| format!("{} {}", e.code, e.message))
}

/// Retry pauses: 10ms (plus up to 10ms of jitter) doubling per retry, at most 5s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    retries: u32,
}

impl Backoff {
    /// The pause before the next retry.
    pub(crate) fn next(&mut self) -> Duration {
        const MAX: Duration = Duration::from_secs(5);
        self.retries = self.retries.saturating_add(1);
        let jitter = Duration::from_millis(rand::random_range(0..10));
        let base = Duration::from_millis(10) + jitter;
        base.checked_mul(1u32 << self.retries.min(16))
            .map_or(MAX, |d| d.min(MAX))
    }

    /// Back to the shortest pause after a success.
    pub(crate) fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_inside_broadcast_and_batch_results_are_found() {
        assert_eq!(
            internal_error_inside(
                r#"{"responses":[{"result":{}},{"error":{"code":100,"message":"internal server error"}}]}"#
            ),
            Some("100 internal server error".to_owned())
        );
        assert_eq!(
            internal_error_inside(
                r#"{"replies":[{"error":{"code":107,"message":"bad request"}}]}"#
            ),
            None
        );
        assert_eq!(internal_error_inside(r#"{"offset":3}"#), None);
    }

    #[test]
    fn backoff_grows_to_five_seconds_and_resets() {
        let mut b = Backoff::default();
        let first = b.next();
        assert!(first >= Duration::from_millis(20) && first < Duration::from_millis(40));
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_secs(5));
        b.reset();
        assert!(b.next() < Duration::from_millis(40));
    }
}
