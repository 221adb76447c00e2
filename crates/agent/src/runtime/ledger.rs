//! The attempts one agent holds. The broker may deliver an assignment twice — after a lost
//! connection it hands back what was not acknowledged, possibly while the first delivery is still
//! being worked on — and a withdrawal may overtake the assignment it withdraws. The ledger keeps
//! each attempt to one run:
//! - a delivery of an attempt that is running waits for that run instead of starting another;
//! - a delivery of an attempt whose outcome was already published is acknowledged as is;
//! - a withdrawn task is never started, and its running attempt is cancelled;
//! - a newer attempt of a task replaces an older one still running here.
//!
//! Finished attempts and withdrawals are remembered in bounded maps: a duplicate arrives within
//! seconds of the original, not after ten thousand other tasks.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use sutazai_types::TaskId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Finished attempts and withdrawals remembered.
const REMEMBERED: usize = 10_000;

/// A map that forgets its oldest entries beyond a capacity.
#[derive(Debug)]
struct Recent<K, V> {
    values: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    fn new(capacity: usize) -> Self {
        Self { values: HashMap::new(), order: VecDeque::new(), capacity }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.values.get(key)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.values.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }
}

#[derive(Debug)]
struct Running {
    attempt: u32,
    ticket: u64,
    cancel: CancellationToken,
    done: watch::Receiver<()>,
}

#[derive(Debug)]
struct LedgerState {
    running: HashMap<TaskId, Running>,
    /// The highest attempt of each task whose outcome was published.
    finished: Recent<TaskId, u32>,
    withdrawn: Recent<TaskId, ()>,
    next_ticket: u64,
}

/// What to do with a delivered assignment.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Run it; the ticket marks it running until dropped.
    Run(AttemptTicket),
    /// The same attempt is running: wait until the receiver's sender is gone, then ask again.
    InProgress(watch::Receiver<()>),
    /// Its outcome was published already.
    Finished,
    /// The task was withdrawn.
    Withdrawn,
    /// A newer attempt of the task is running or finished here.
    Superseded,
}

/// The attempts of one agent.
#[derive(Debug)]
pub(crate) struct AttemptLedger {
    state: Mutex<LedgerState>,
}

impl AttemptLedger {
    /// An empty ledger.
    pub(crate) fn new() -> Arc<Self> {
        Self::with_memory(REMEMBERED)
    }

    fn with_memory(remembered: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LedgerState {
                running: HashMap::new(),
                finished: Recent::new(remembered),
                withdrawn: Recent::new(remembered),
                next_ticket: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // The state stays consistent at every await-free step, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides about a delivery of `attempt` of `task_id`.
    pub(crate) fn admit(self: &Arc<Self>, task_id: TaskId, attempt: u32) -> Admission {
        let mut state = self.lock();
        if state.withdrawn.get(&task_id).is_some() {
            return Admission::Withdrawn;
        }
        match state.finished.get(&task_id) {
            Some(finished) if *finished == attempt => return Admission::Finished,
            Some(finished) if *finished > attempt => return Admission::Superseded,
            _ => {}
        }
        if let Some(running) = state.running.get(&task_id) {
            if running.attempt == attempt {
                return Admission::InProgress(running.done.clone());
            }
            if running.attempt > attempt {
                return Admission::Superseded;
            }
            // The coordinator re-assigned the task to this agent with a new attempt: the old
            // attempt's result would be ignored, so it stops.
            running.cancel.cancel();
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let cancel = CancellationToken::new();
        let (done_sender, done) = watch::channel(());
        state.running.insert(task_id, Running { attempt, ticket, cancel: cancel.clone(), done });
        Admission::Run(AttemptTicket {
            ledger: Arc::clone(self),
            task_id,
            attempt,
            ticket,
            cancel,
            _done: done_sender,
            published: false,
        })
    }

    /// Withdraws `task_id`: it will not start, and its running attempt is cancelled. Returns
    /// whether an attempt was running.
    pub(crate) fn withdraw(&self, task_id: TaskId) -> bool {
        let mut state = self.lock();
        state.withdrawn.insert(task_id, ());
        match state.running.remove(&task_id) {
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn release(&self, task_id: TaskId, attempt: u32, ticket: u64, published: bool) {
        let mut state = self.lock();
        if state.running.get(&task_id).is_some_and(|running| running.ticket == ticket) {
            state.running.remove(&task_id);
        }
        if published {
            let highest = state.finished.get(&task_id).map_or(attempt, |finished| (*finished).max(attempt));
            state.finished.insert(task_id, highest);
        }
    }
}

/// An attempt marked running; dropping it marks it no longer running and wakes deliveries
/// waiting for it.
#[derive(Debug)]
pub(crate) struct AttemptTicket {
    ledger: Arc<AttemptLedger>,
    task_id: TaskId,
    attempt: u32,
    ticket: u64,
    cancel: CancellationToken,
    _done: watch::Sender<()>,
    published: bool,
}

impl AttemptTicket {
    /// Fires when the attempt is withdrawn or superseded.
    pub(crate) fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The attempt's outcome is published: a later delivery of it is acknowledged without a run.
    pub(crate) fn published(mut self) {
        self.published = true;
    }
}

impl Drop for AttemptTicket {
    fn drop(&mut self) {
        self.ledger.release(self.task_id, self.attempt, self.ticket, self.published);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(admission: Admission) -> AttemptTicket {
        match admission {
            Admission::Run(ticket) => ticket,
            other => panic!("expected to run, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_second_delivery_waits_for_the_first_and_is_then_finished() {
        let ledger = AttemptLedger::new();
        let task = TaskId::new();
        let first = run(ledger.admit(task, 1));
        let Admission::InProgress(mut done) = ledger.admit(task, 1) else { panic!("not waiting") };
        first.published();
        assert!(done.changed().await.is_err(), "the waiter wakes when the first run ends");
        assert!(matches!(ledger.admit(task, 1), Admission::Finished));
        assert!(matches!(ledger.admit(task, 0), Admission::Superseded));
    }

    #[test]
    fn an_abandoned_run_can_be_run_again() {
        let ledger = AttemptLedger::new();
        let task = TaskId::new();
        drop(run(ledger.admit(task, 1)));
        let again = run(ledger.admit(task, 1));
        assert!(!again.cancellation().is_cancelled());
    }

    #[test]
    fn a_withdrawal_cancels_the_run_and_blocks_later_deliveries() {
        let ledger = AttemptLedger::new();
        let task = TaskId::new();
        let ticket = run(ledger.admit(task, 2));
        assert!(ledger.withdraw(task));
        assert!(ticket.cancellation().is_cancelled());
        drop(ticket);
        assert!(matches!(ledger.admit(task, 2), Admission::Withdrawn));
        let early = TaskId::new();
        assert!(!ledger.withdraw(early), "a withdrawal may overtake its assignment");
        assert!(matches!(ledger.admit(early, 1), Admission::Withdrawn));
    }

    #[test]
    fn a_newer_attempt_replaces_the_running_one() {
        let ledger = AttemptLedger::new();
        let task = TaskId::new();
        let old = run(ledger.admit(task, 1));
        let new = run(ledger.admit(task, 2));
        assert!(old.cancellation().is_cancelled());
        drop(old);
        // The old run's end does not unmark the new one.
        assert!(matches!(ledger.admit(task, 2), Admission::InProgress(_)));
        assert!(matches!(ledger.admit(task, 1), Admission::Superseded));
        new.published();
        assert!(matches!(ledger.admit(task, 2), Admission::Finished));
    }

    #[test]
    fn memory_is_bounded() {
        let ledger = AttemptLedger::with_memory(2);
        let tasks = [TaskId::new(), TaskId::new(), TaskId::new()];
        for task in tasks {
            run(ledger.admit(task, 1)).published();
        }
        assert!(matches!(ledger.admit(tasks[0], 1), Admission::Run(_)), "the oldest is forgotten");
        assert!(matches!(ledger.admit(tasks[2], 1), Admission::Finished));
    }
}
