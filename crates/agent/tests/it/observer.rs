//! The test's view of what the worker publishes: a queue of its own bound to `task.#` and
//! `agent.#`, consumed one message at a time (so arrival order is kept) into a history that
//! tests search and wait on.

use std::time::Duration;

use serde_json::Value;
use sutazai_messaging::consumer::{DeliveryContext, HandlerError, MessageHandler};
use sutazai_types::TaskId;
use sutazai_types::messages::{AgentMessage, TaskMessage};
use tokio::sync::{Mutex, mpsc};

use crate::PATIENCE;

/// A message the worker published.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    Task(TaskMessage),
    Agent(AgentMessage),
}

impl Seen {
    pub(crate) fn task(&self) -> Option<&TaskMessage> {
        match self {
            Self::Task(message) => Some(message),
            Self::Agent(_) => None,
        }
    }
}

/// Forwards every message of the observer queue to the test.
pub(crate) struct Forward(pub(crate) mpsc::UnboundedSender<(Value, Option<String>)>);

impl MessageHandler for Forward {
    type Message = Value;

    async fn handle(&self, message: Value, context: DeliveryContext) -> Result<(), HandlerError> {
        let _ = self.0.send((message, context.message_id));
        Ok(())
    }
}

/// What the worker published, in arrival order.
pub(crate) struct Observer {
    receiver: Mutex<mpsc::UnboundedReceiver<(Value, Option<String>)>>,
    /// Each message with its message id.
    seen: std::sync::Mutex<Vec<(Seen, Option<String>)>>,
}

impl Observer {
    /// An observer of what `Forward` sends to `receiver`.
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<(Value, Option<String>)>) -> Self {
        Self { receiver: Mutex::new(receiver), seen: std::sync::Mutex::new(Vec::new()) }
    }

    fn decode((value, message_id): (Value, Option<String>)) -> Option<(Seen, Option<String>)> {
        let kind = value.get("kind")?.as_str()?.to_owned();
        let seen = if kind.starts_with("task.") {
            serde_json::from_value(value).ok().map(Seen::Task)
        } else {
            serde_json::from_value(value).ok().map(Seen::Agent)
        };
        seen.map(|seen| (seen, message_id))
    }

    fn find(&self, since: usize, matches: &dyn Fn(&Seen) -> bool) -> Option<Seen> {
        self.seen.lock().unwrap().iter().skip(since).map(|(seen, _)| seen).find(|seen| matches(seen)).cloned()
    }

    /// How many messages arrived so far: [`Observer::wait_for_since`] looks only after them.
    pub(crate) fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Moves what arrived so far into the history, waiting at most `wait` for something.
    async fn pull(&self, wait: Duration) {
        let mut receiver = self.receiver.lock().await;
        if let Ok(Some(value)) = tokio::time::timeout(wait, receiver.recv()).await {
            let mut seen = self.seen.lock().unwrap();
            seen.extend(Self::decode(value));
            while let Ok(value) = receiver.try_recv() {
                seen.extend(Self::decode(value));
            }
        }
    }

    /// The first message (so far or to come) that `matches`, panicking after [`PATIENCE`].
    pub(crate) async fn wait_for(&self, what: &str, matches: impl Fn(&Seen) -> bool) -> Seen {
        self.wait_for_since(0, what, matches).await
    }

    /// The first message arrived after `mark` (or to come) that `matches`.
    pub(crate) async fn wait_for_since(
        &self,
        mark: usize,
        what: &str,
        matches: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(seen) = self.find(mark, &matches) {
                return seen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; seen: {:#?}", self.seen.lock().unwrap());
            }
            self.pull(Duration::from_millis(100)).await;
        }
    }

    /// Every message so far (after `settle` more time for stragglers) that `matches`.
    pub(crate) async fn all(&self, settle: Duration, matches: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let until = tokio::time::Instant::now() + settle;
        while tokio::time::Instant::now() < until {
            self.pull(Duration::from_millis(50)).await;
        }
        self.seen.lock().unwrap().iter().map(|(seen, _)| seen).filter(|seen| matches(seen)).cloned().collect()
    }

    /// The message ids of every message so far that `matches` (publishers keep a message's id
    /// when they publish it again, so consumers deduplicate on it).
    pub(crate) fn message_ids(&self, matches: impl Fn(&Seen) -> bool) -> Vec<Option<String>> {
        self.seen.lock().unwrap().iter().filter(|(seen, _)| matches(seen)).map(|(_, id)| id.clone()).collect()
    }

    /// The position of the first message that `matches`.
    pub(crate) fn position(&self, matches: impl Fn(&Seen) -> bool) -> Option<usize> {
        self.seen.lock().unwrap().iter().position(|(seen, _)| matches(seen))
    }

    /// The outcome (`Succeeded` or `Failed`) of `task_id`.
    pub(crate) async fn outcome(&self, task_id: TaskId) -> TaskMessage {
        let seen = self
            .wait_for("the task's outcome", |seen| {
                matches!(seen.task(), Some(TaskMessage::Succeeded(message)) if message.task_id == task_id)
                    || matches!(seen.task(), Some(TaskMessage::Failed(message)) if message.task_id == task_id)
            })
            .await;
        match seen {
            Seen::Task(message) => message,
            Seen::Agent(message) => panic!("not a task message: {message:?}"),
        }
    }

    /// The result of `task_id`, which must have succeeded.
    pub(crate) async fn result(&self, task_id: TaskId) -> Value {
        match self.outcome(task_id).await {
            TaskMessage::Succeeded(succeeded) => succeeded.result,
            other => panic!("the task did not succeed: {other:?}"),
        }
    }

    /// Waits for the `Started` of `task_id`.
    pub(crate) async fn started(&self, task_id: TaskId) {
        self.wait_for(
            "the task to start",
            |seen| matches!(seen.task(), Some(TaskMessage::Started(started)) if started.task_id == task_id),
        )
        .await;
    }
}
