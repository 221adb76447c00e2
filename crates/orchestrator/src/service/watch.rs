//! Following a task's events live. Each replica runs one Postgres listener on the channel the
//! `task_events_notify` trigger signals at commit, and fans the task ids out to its watchers, so a
//! watcher on any replica sees events written by every replica. The notification only says "look
//! again": events are always read from the table, in sequence, so a missed or merged notification
//! costs latency, never an event (watchers also look again every sweep interval).

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use sutazai_types::TaskId;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use super::queries::task_not_found;
use crate::domain::access::Caller;
use crate::domain::task::TaskEvent;
use crate::error::OrchestratorError;
use crate::store;

/// The notification channel of the `task_events_notify` trigger.
const CHANNEL: &str = "orchestrator_task_events";
/// Notices buffered per watcher before it lags (and then simply reads the table again).
const FEED_CAPACITY: usize = 1024;
/// Events read per query.
const READ_BATCH: i64 = 256;

/// What the listener tells watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// The task has new events.
    Appended(TaskId),
    /// Notifications may have been missed (the listener reconnected): every watcher looks again.
    Resync,
}

/// Fans notifications out to the watchers of this replica.
#[derive(Debug, Clone)]
pub(crate) struct EventFeed {
    sender: broadcast::Sender<Notice>,
}

impl EventFeed {
    pub(crate) fn new() -> Self {
        Self { sender: broadcast::channel(FEED_CAPACITY).0 }
    }
}

/// A task's events, ending after the terminal one.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<TaskEvent, OrchestratorError>> + Send>>;

struct Watch {
    /// Keeps the task in `watched_tasks` while the stream lives, so its events notify.
    _registration: Registration,
    pool: PgPool,
    task_id: TaskId,
    last_sent: u64,
    pending: VecDeque<TaskEvent>,
    notices: broadcast::Receiver<Notice>,
    poll_interval: Duration,
    shutdown: CancellationToken,
    done: bool,
}

impl Orchestrator {
    /// Replays the task's events after `after_sequence`, then follows new ones; the stream ends
    /// after the event that makes the task terminal, or with `Unavailable` at shutdown.
    pub async fn watch_task_events(
        &self,
        caller: &Caller,
        task_id: TaskId,
        owner: &str,
        after_sequence: u64,
        shutdown: CancellationToken,
    ) -> Result<EventStream, OrchestratorError> {
        // Subscribed before the first read, so an event committed in between is announced.
        let notices = self.inner.feed.sender.subscribe();
        let scope = caller.scope(owner)?;
        let task = store::tasks::get(self.pool(), task_id).await?;
        if !task.is_some_and(|task| scope.sees(&task.owner)) {
            return Err(task_not_found(task_id));
        }
        let registration = Registration::open(self.pool().clone(), task_id).await?;
        let watch = Watch {
            _registration: registration,
            pool: self.pool().clone(),
            task_id,
            last_sent: after_sequence,
            pending: VecDeque::new(),
            notices,
            poll_interval: self.inner.sweep_interval,
            shutdown,
            done: false,
        };
        Ok(futures_util::stream::unfold(watch, next_event).boxed())
    }
}

/// One open stream's row in `watched_tasks`: inserted before the first read (so events committed
/// from then on notify), deleted when the stream is dropped.
struct Registration {
    pool: PgPool,
    task_id: TaskId,
    watcher: uuid::Uuid,
}

impl Registration {
    async fn open(pool: PgPool, task_id: TaskId) -> Result<Self, OrchestratorError> {
        let watcher = uuid::Uuid::now_v7();
        sqlx::query("INSERT INTO watched_tasks (task_id, watcher) VALUES ($1, $2)")
            .bind(task_id.0)
            .bind(watcher)
            .execute(&pool)
            .await?;
        Ok(Self { pool, task_id, watcher })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (pool, task_id, watcher) = (self.pool.clone(), self.task_id, self.watcher);
        // Outside a runtime (process exit) the row stays; the janitor removes old rows.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let deleted = sqlx::query("DELETE FROM watched_tasks WHERE task_id = $1 AND watcher = $2")
                    .bind(task_id.0)
                    .bind(watcher)
                    .execute(&pool)
                    .await;
                if let Err(error) = deleted {
                    tracing::debug!(%error, %task_id, "could not unregister a finished event stream");
                }
            });
        }
    }
}

async fn next_event(mut watch: Watch) -> Option<(Result<TaskEvent, OrchestratorError>, Watch)> {
    loop {
        if let Some(event) = watch.pending.pop_front() {
            watch.last_sent = event.sequence;
            // Nothing follows a terminal event: cancel and late results leave a terminal task alone.
            watch.done = event.status.is_terminal();
            return Some((Ok(event), watch));
        }
        if watch.done {
            return None;
        }
        match read_new(&mut watch).await {
            Ok(Some(events)) => {
                watch.pending.extend(events);
                continue;
            }
            // Caught up with a task that is already terminal (a resume after its last event).
            Ok(None) => return None,
            Err(error) => {
                watch.done = true;
                return Some((Err(error), watch));
            }
        }
    }
}

/// New events, waiting for them if there are none yet; `None` when the task is terminal and
/// every event was sent.
async fn read_new(watch: &mut Watch) -> Result<Option<Vec<TaskEvent>>, OrchestratorError> {
    loop {
        let events = store::events::after(&watch.pool, watch.task_id, watch.last_sent, READ_BATCH).await?;
        if !events.is_empty() {
            return Ok(Some(events));
        }
        match store::tasks::status_of(&watch.pool, watch.task_id).await? {
            Some(status) if !status.is_terminal() => {}
            _ => {
                // The terminal event may have committed between the two reads.
                let events =
                    store::events::after(&watch.pool, watch.task_id, watch.last_sent, READ_BATCH).await?;
                return Ok((!events.is_empty()).then_some(events));
            }
        }
        wait_for_notice(&mut watch.notices, watch.task_id, watch.poll_interval, &watch.shutdown).await?;
    }
}

/// Waits until the task may have new events: its notification, a resync, the poll interval.
async fn wait_for_notice(
    notices: &mut broadcast::Receiver<Notice>,
    watched: TaskId,
    poll_interval: Duration,
    shutdown: &CancellationToken,
) -> Result<(), OrchestratorError> {
    let poll = tokio::time::sleep(poll_interval);
    tokio::pin!(poll);
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(Notice::Appended(task_id)) if task_id != watched => continue,
                // This task's notice, a resync, or lagging behind the feed: read the table again.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            () = &mut poll => return Ok(()),
            () = shutdown.cancelled() => {
                return Err(OrchestratorError::Unavailable {
                    dependency: "orchestrator",
                    cause: "shutting down".to_owned(),
                });
            }
        }
    }
}

/// Listens for event notifications until `shutdown`, reconnecting after failures.
pub async fn listen_for_events(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let sender = orchestrator.inner.feed.sender.clone();
    let mut failure_delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let mut listener = match connect(orchestrator.pool()).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "task event listener could not connect, retrying");
                tokio::select! {
                    () = tokio::time::sleep(failure_delay) => {},
                    () = shutdown.cancelled() => break,
                }
                failure_delay = (failure_delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        failure_delay = Duration::from_millis(200);
        // Watchers may have missed notifications while no listener was connected.
        let _ = sender.send(Notice::Resync);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = shutdown.cancelled() => break,
            };
            match received {
                Ok(Some(notification)) => {
                    if let Ok(task_id) = notification.payload().parse::<TaskId>() {
                        // No receivers is fine: nobody is watching.
                        let _ = sender.send(Notice::Appended(task_id));
                    }
                }
                // The connection dropped; `try_recv` reconnects on the next call.
                Ok(None) => {
                    let _ = sender.send(Notice::Resync);
                }
                Err(error) => {
                    tracing::warn!(%error, "task event listener failed, reconnecting");
                    break;
                }
            }
        }
    }
    tracing::info!("task event listener stopped");
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
