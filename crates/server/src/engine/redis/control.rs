//! Control over Redis: the control channel (commands, heartbeats, `gone`), the node
//! registry and surveys with their answers.

use std::collections::HashSet;
use std::time::Instant;

use tokio::sync::oneshot;

use super::*;
use crate::engine::{BoxFuture, ControlBus, ControlCommand, EngineError};

/// A survey waiting for answers.
#[derive(Debug)]
pub(super) struct PendingSurvey {
    /// Nodes whose answer is still awaited.
    waiting: HashSet<String>,
    /// Answers so far.
    answers: Vec<serde_json::Value>,
    /// Fired when the last awaited answer arrived.
    done: Option<oneshot::Sender<()>>,
}

impl RedisEngine {
    pub(super) fn on_control(&self, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let from = message["node"].as_str().unwrap_or_default();
        if from == self.events.node_id() {
            return;
        }
        if let Some(info) = message.get("info") {
            self.nodes
                .lock()
                .insert(from.to_owned(), (info.clone(), Instant::now()));
        } else if message.get("gone").is_some() {
            self.nodes.lock().remove(from);
        } else if let Some(command) = message.get("command")
            && let Ok(command) = serde_json::from_value::<ControlCommand>(command.clone())
        {
            self.events.control(&command);
        } else if let Some(survey) = message.get("survey") {
            let (Some(id), Some(op)) = (survey["id"].as_str(), survey["op"].as_str()) else {
                return;
            };
            let (id, op, body) = (id.to_owned(), op.to_owned(), survey["body"].clone());
            let node = self.events.node_id().to_owned();
            let channel = self.node_name(from);
            let mut conn = self.shards[0].conn.clone();
            let events = self.events.clone();
            // Off the Pub/Sub task: the answer may walk every local channel.
            tokio::spawn(async move {
                let data = events
                    .answer_survey(&op, &body)
                    .unwrap_or(serde_json::Value::Null);
                let answer = serde_json::json!({ "node": node, "id": id, "data": data });
                let sent = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(answer.to_string())
                    .query_async::<()>(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::debug!("survey answer not sent: {e}");
                }
            });
        }
    }

    /// Records another node's answer to one of this node's surveys.
    pub(super) fn on_answer(&self, payload: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let (Some(id), Some(from)) = (answer["id"].as_str(), answer["node"].as_str()) else {
            return;
        };
        let mut surveys = self.surveys.lock();
        let Some(pending) = surveys.get_mut(id) else {
            return;
        };
        if pending.waiting.remove(from) {
            pending.answers.push(answer["data"].clone());
        }
        if pending.waiting.is_empty()
            && let Some(done) = pending.done.take()
        {
            let _ = done.send(());
        }
    }

    pub(super) async fn publish_control(&self, message: String) -> Result<(), EngineError> {
        let mut conn = self.shards[0].conn.clone();
        redis::cmd("PUBLISH")
            .arg(self.control_name())
            .arg(message)
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }
}

impl ControlBus for RedisEngine {
    fn send<'a>(&'a self, command: &'a ControlCommand) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let node = self.events.node_id().to_owned();
            let message = serde_json::json!({ "node": node, "command": command });
            self.publish_control(message.to_string()).await
        })
    }

    fn other_nodes(&self) -> Vec<serde_json::Value> {
        self.nodes
            .lock()
            .values()
            .filter(|(_, at)| at.elapsed() < NODE_TTL)
            .map(|(info, _)| info.clone())
            .collect()
    }

    fn survey<'a>(
        &'a self,
        op: &'a str,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, EngineError>> {
        Box::pin(async move {
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
            let node = self.events.node_id().to_owned();
            let message = serde_json::json!({
                "node": node,
                "survey": { "id": id, "op": op, "body": body },
            });
            let sent = self.publish_control(message.to_string()).await;
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
        })
    }
}
