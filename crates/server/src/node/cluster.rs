//! The cluster control protocol, whatever engine carries it: the JSON envelope sent over the
//! engine's [`ControlBus`], the registry of live nodes (heartbeats and `gone`), API commands
//! for the other nodes and surveys with their answers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::events::NodeEvents;
use crate::engine::{ControlBus, EngineError};

/// How often a node announces itself on the control channel.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(3);
/// A node not heard of for this long is gone.
const NODE_TTL: Duration = Duration::from_secs(10);
/// How long a survey waits for the other nodes' answers.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(3);

/// A server API action on connections (`subscribe`, `unsubscribe`, `disconnect`, `refresh`),
/// applied on every node: the API method and its JSON body.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ControlCommand {
    /// API method.
    pub method: String,
    /// Its request body.
    pub body: serde_json::Value,
}

/// A survey waiting for answers.
#[derive(Debug)]
struct PendingSurvey {
    /// Nodes whose answer is still awaited.
    waiting: HashSet<String>,
    /// Answers so far.
    answers: Vec<Value>,
    /// Fired when the last awaited answer arrived.
    done: Option<oneshot::Sender<()>>,
}

/// This node's view of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    /// Other live nodes: uid to (info, last heard).
    nodes: Mutex<HashMap<String, (Value, Instant)>>,
    /// Surveys this node waits answers for, by request id.
    surveys: Mutex<HashMap<String, PendingSurvey>>,
    /// The engine's control bus (set once the engine is built).
    bus: OnceLock<Arc<dyn ControlBus>>,
}

impl Cluster {
    /// Connects the protocol to the engine's bus.
    pub(crate) fn attach(&self, bus: Arc<dyn ControlBus>) {
        let _ = self.bus.set(bus);
    }

    async fn publish(&self, message: &Value, to: Option<&str>) -> Result<(), EngineError> {
        match self.bus.get() {
            Some(bus) => bus.publish(message.to_string(), to).await,
            None => Ok(()),
        }
    }

    /// Sends an API command to the other nodes (the caller applies it locally).
    pub(crate) async fn send_command(
        &self,
        local: &NodeEvents,
        command: &ControlCommand,
    ) -> Result<(), EngineError> {
        let message = json!({ "node": local.id, "command": command });
        self.publish(&message, None).await
    }

    /// Whether `uid` is another live node.
    pub(crate) fn knows(&self, uid: &str) -> bool {
        self.nodes
            .lock()
            .get(uid)
            .is_some_and(|(_, at)| at.elapsed() < NODE_TTL)
    }

    /// Stats of the other live nodes, as `info` reports them.
    pub(crate) fn other_nodes(&self) -> Vec<Value> {
        self.nodes
            .lock()
            .values()
            .filter(|(_, at)| at.elapsed() < NODE_TTL)
            .map(|(info, _)| info.clone())
            .collect()
    }

    /// Announces this node every [`HEARTBEAT`] until `shutdown`, then tells the others it is
    /// gone (so they stop counting on it at once).
    pub(crate) async fn heartbeats(
        &self,
        local: &NodeEvents,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let gone = json!({ "node": local.id, "gone": true });
                    let _ = tokio::time::timeout(
                        Duration::from_millis(500),
                        self.publish(&gone, None),
                    )
                    .await;
                    return;
                }
                _ = heartbeat.tick() => {
                    let message =
                        json!({ "node": local.id, "info": super::control::node_info(local) });
                    let _ = self.publish(&message, None).await;
                    self.nodes.lock().retain(|_, (_, at)| at.elapsed() < NODE_TTL);
                }
            }
        }
    }

    /// Sends this node's heartbeat to `to` alone, marked as a reply (not answered again).
    fn introduce(&self, local: &NodeEvents, to: &str) {
        let Some(bus) = self.bus.get().cloned() else {
            return;
        };
        let message = json!({
            "node": local.id,
            "info": super::control::node_info(local),
            "reply": true,
        });
        let to = to.to_owned();
        tokio::spawn(async move {
            if let Err(e) = bus.publish(message.to_string(), Some(&to)).await {
                tracing::debug!("introduction to {to} not sent: {e}");
            }
        });
    }

    /// Asks every other live node a question (`op` with its JSON `body`) and returns their
    /// answers. Waits for every node known alive, at most a bounded time (then returns the
    /// answers it has).
    pub(crate) async fn survey(
        &self,
        local: &NodeEvents,
        op: &str,
        body: &Value,
    ) -> Result<Vec<Value>, EngineError> {
        let waiting: HashSet<String> = self
            .nodes
            .lock()
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < NODE_TTL)
            .map(|(id, _)| id.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (done, all_answered) = oneshot::channel();
        self.surveys.lock().insert(
            id.clone(),
            PendingSurvey {
                waiting,
                answers: Vec::new(),
                done: Some(done),
            },
        );
        let message = json!({
            "node": local.id,
            "survey": { "id": id, "op": op, "body": body },
        });
        let sent = self.publish(&message, None).await;
        let answered = match sent {
            Ok(()) => tokio::time::timeout(SURVEY_TIMEOUT, all_answered)
                .await
                .is_ok(),
            Err(_) => false,
        };
        let pending = self.surveys.lock().remove(&id);
        sent?;
        let pending = pending.ok_or_else(|| EngineError::new("survey vanished"))?;
        if !answered {
            tracing::warn!(
                "survey {op}: no answer from {} node(s) within {SURVEY_TIMEOUT:?}",
                pending.waiting.len()
            );
        }
        Ok(pending.answers)
    }

    /// Handles a control message from another node (heartbeat, `gone`, command, survey or
    /// an answer to one of this node's surveys).
    pub(crate) fn on_message(&self, local: &NodeEvents, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let from = message["node"].as_str().unwrap_or_default();
        if from == local.id {
            return;
        }
        if let Some(info) = message.get("info") {
            let known = self
                .nodes
                .lock()
                .insert(from.to_owned(), (info.clone(), Instant::now()))
                .is_some();
            if !known && message.get("reply").is_none() {
                // A node just joined: introduce this one at once instead of at the next
                // heartbeat, so `info` on the new node lists every node from the start.
                self.introduce(local, from);
            }
        } else if message.get("gone").is_some() {
            self.nodes.lock().remove(from);
        } else if let Some(command) = message.get("command") {
            if let Ok(command) = serde_json::from_value::<ControlCommand>(command.clone()) {
                let applied = if command.method == crate::shared_poll::PUBLISH_COMMAND {
                    crate::shared_poll::apply_remote(local.shared_poll.get(), &command.body)
                        .map_err(|why| super::ServiceError::bad_request(&why))
                } else {
                    super::control::apply_control(&local.hub, &command.method, &command.body)
                };
                if let Err(err) = applied {
                    tracing::debug!("control {} from {from}: {}", command.method, err.message);
                }
            }
        } else if let Some(survey) = message.get("survey") {
            let (Some(id), Some(op)) = (survey["id"].as_str(), survey["op"].as_str()) else {
                return;
            };
            let (id, op, body) = (id.to_owned(), op.to_owned(), survey["body"].clone());
            let Some(bus) = self.bus.get().cloned() else {
                return;
            };
            let (from, me, hub) = (from.to_owned(), local.id.clone(), local.hub.clone());
            // Off the engine's delivery task: the answer may walk every local channel.
            tokio::spawn(async move {
                let data = super::control::answer_survey(&hub, &op, &body).unwrap_or(Value::Null);
                let answer = json!({ "node": me, "id": id, "data": data });
                if let Err(e) = bus.publish(answer.to_string(), Some(&from)).await {
                    tracing::debug!("survey answer not sent: {e}");
                }
            });
        } else if let Some(id) = message["id"].as_str() {
            let mut surveys = self.surveys.lock();
            let Some(pending) = surveys.get_mut(id) else {
                return;
            };
            if pending.waiting.remove(from) {
                pending.answers.push(message["data"].clone());
            }
            if pending.waiting.is_empty()
                && let Some(done) = pending.done.take()
            {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use futures_util::future::BoxFuture;

    /// A bus that records what is sent and to whom.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(Value, Option<String>)>>);

    impl ControlBus for Recorder {
        fn publish<'a>(
            &'a self,
            message: String,
            to: Option<&'a str>,
        ) -> BoxFuture<'a, Result<(), EngineError>> {
            let message = serde_json::from_str(&message).unwrap_or(Value::Null);
            self.0.lock().push((message, to.map(str::to_owned)));
            Box::pin(async { Ok(()) })
        }

        fn shared(&self) -> bool {
            true
        }
    }

    fn heartbeat(from: &str, reply: bool) -> Vec<u8> {
        let mut m = json!({"node": from, "info": {"uid": from}});
        if reply {
            m["reply"] = json!(true);
        }
        m.to_string().into_bytes()
    }

    #[tokio::test]
    async fn a_new_node_is_answered_at_once_and_only_once() {
        let local = NodeEvents::new("here");
        let bus = Arc::new(Recorder::default());
        local.cluster.attach(bus.clone());
        local.cluster.on_message(&local, &heartbeat("new", false));
        local.cluster.on_message(&local, &heartbeat("new", false));
        // An introduction is not answered (no ping-pong between two nodes).
        local.cluster.on_message(&local, &heartbeat("other", true));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let sent = bus.0.lock().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].1.as_deref(), Some("new"));
        assert_eq!(sent[0].0["node"], json!(local.id));
        assert_eq!(sent[0].0["reply"], json!(true));
        assert_eq!(local.cluster.other_nodes().len(), 2);
    }
}
