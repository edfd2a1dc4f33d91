//! `type: nats_jetstream`: messages of a JetStream stream, read through a durable pull
//! consumer (`durable_consumer_name`), created on `stream_name` with `subjects`,
//! `deliver_policy` and `max_ack_pending` unless `use_existing_consumer` (then it must exist).
//! The server keeps the consumer's position, so messages published while Gyre is down are
//! delivered after it starts again.
//!
//! A message is acknowledged only after its command was applied (or skipped); a temporary
//! failure is retried in place with a growing pause, telling the server the message is in
//! progress so it is not handed out again meanwhile. A message left unacknowledged (Gyre
//! stopped or killed mid-way) is delivered again after the consumer's ack wait. Header
//! `method_header` holds the API method (the payload is then the request), otherwise the
//! payload is `{"method": ..., "payload": ...}`; with `publication_data_mode` the payload is
//! publication data for the channels of header `channels_header`.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use gyre_config::{DeliverPolicy, NatsJetStreamConsumerConfig};

use super::publication::Fields;
use super::{Backoff, Consumer, Temporary};

/// Starts the consumer's task.
pub(super) fn spawn(consumer: Consumer, config: NatsJetStreamConsumerConfig) {
    tokio::spawn(run(consumer, Arc::new(config)));
}

/// Why the message loop stopped.
type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn run(c: Consumer, config: Arc<NatsJetStreamConsumerConfig>) {
    let mut backoff = Backoff::default();
    while !c.stopping() {
        let result = tokio::select! {
            _ = c.shutdown.cancelled() => break,
            result = consume(&c, &config, &mut backoff) => result,
        };
        if let Err(err) = result {
            c.counters.errors.inc();
            tracing::warn!(consumer = %c.name, "JetStream consumer failed: {err}");
        }
        if !c.sleep(backoff.next()).await {
            break;
        }
    }
}

async fn connect(config: &NatsJetStreamConsumerConfig) -> Result<async_nats::Client, Failure> {
    let mut options = async_nats::ConnectOptions::new();
    if !config.credentials_file.is_empty() {
        options = options.credentials_file(&config.credentials_file).await?;
    } else if !config.username.is_empty() {
        options = options.user_and_password(config.username.clone(), config.password.clone());
    } else if !config.token.is_empty() {
        options = options.token(config.token.clone());
    }
    Ok(options.connect(config.url.as_str()).await?)
}

/// One connection's life: connect, find or create the consumer, apply messages until the
/// stream of messages fails.
async fn consume(
    c: &Consumer,
    config: &NatsJetStreamConsumerConfig,
    backoff: &mut Backoff,
) -> Result<(), Failure> {
    let client = connect(config).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&config.stream_name).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = if config.use_existing_consumer {
        stream.get_consumer(&config.durable_consumer_name).await?
    } else {
        let deliver_policy = match config.deliver_policy {
            DeliverPolicy::All => jetstream::consumer::DeliverPolicy::All,
            _ => jetstream::consumer::DeliverPolicy::New,
        };
        stream
            .get_or_create_consumer(
                &config.durable_consumer_name,
                pull::Config {
                    durable_name: Some(config.durable_consumer_name.clone()),
                    // One subject goes in `filter_subject`, which servers before 2.10
                    // (without `filter_subjects`) understand too.
                    filter_subject: match config.subjects.as_slice() {
                        [one] => one.clone(),
                        _ => String::new(),
                    },
                    filter_subjects: match config.subjects.as_slice() {
                        [_] => Vec::new(),
                        many => many.to_vec(),
                    },
                    deliver_policy,
                    max_ack_pending: config.max_ack_pending,
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await?
    };
    if config.subjects.len() > 1 && consumer.cached_info().config.filter_subjects.is_empty() {
        return Err(
            "this NATS server ignores several subjects (filter_subjects needs 2.10+)".into(),
        );
    }
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        backoff.reset();
        let mut retry = Backoff::default();
        loop {
            match apply(c, config, &message).await {
                Ok(()) => break,
                Err(reason) => {
                    tracing::warn!(consumer = %c.name, "retrying JetStream message: {reason}");
                    if !c.sleep(retry.next()).await {
                        // Left unacknowledged: delivered again after the ack wait.
                        return Ok(());
                    }
                    message.ack_with(AckKind::Progress).await?;
                }
            }
        }
        message.ack().await?;
    }
    Err("message stream ended".into())
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> &'a str {
    match headers {
        Some(h) if !name.is_empty() => h.get(name).map_or("", |v| v.as_str()),
        _ => "",
    }
}

/// Applies one message's command (or publication).
async fn apply(
    c: &Consumer,
    config: &NatsJetStreamConsumerConfig,
    message: &jetstream::Message,
) -> Result<(), Temporary> {
    let Ok(payload) = std::str::from_utf8(&message.payload) else {
        return c.skip("message payload is not UTF-8");
    };
    let headers = message.headers.as_ref();
    let mode = &config.publication_data_mode;
    if !mode.enabled {
        return c
            .apply(Some(header(headers, &config.method_header)), payload)
            .await;
    }
    let tags: HashMap<&str, &str> = headers
        .into_iter()
        .flat_map(|h| h.iter())
        .filter(|_| !mode.tags_header_prefix.is_empty())
        .filter_map(|(name, values)| {
            let tag = AsRef::<str>::as_ref(name).strip_prefix(mode.tags_header_prefix.as_str())?;
            Some((tag, values.first()?.as_str()))
        })
        .collect();
    c.apply_publication(Fields {
        data: payload,
        channels: header(headers, &mode.channels_header),
        idempotency_key: header(headers, &mode.idempotency_key_header),
        delta: header(headers, &mode.delta_header),
        version: header(headers, &mode.version_header),
        version_epoch: header(headers, &mode.version_epoch_header),
        tags,
    })
    .await
}
