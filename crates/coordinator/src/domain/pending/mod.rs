//! The pending queue: tasks waiting for an agent, in dispatch order.
//!
//! The order is priority (highest first), then — with owner fairness — the owner's turn, then
//! arrival (`enqueued_at`, then task id). Turns are start-time fair queueing tags: a task arriving
//! at priority `p` gets `max(virtual turn of p, the owner's next turn at p)`, where the virtual turn
//! is the tag of the last task dispatched at `p`. An owner that floods the queue gets consecutive
//! turns, so another owner's task arriving later slots in between them. A tag never changes, so
//! the order is a static key per task: it is stored with the task and a restart restores the same
//! order, and a task that goes back to the queue (its agent went offline) regains its old place.
//!
//! Tasks are grouped in dispatch queues by (capabilities, owner): all tasks of one group can run
//! on the same agents and share the owner's cap, so when the group's first task cannot be placed
//! none of its tasks can. A dispatch pass walks the groups' heads in order and never scans a task
//! that cannot be placed, however many of them wait.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use sutazai_types::{Priority, TaskId};

use crate::domain::reasons::ALL_CAPABLE_AGENTS_BUSY;
use crate::domain::task::{Capabilities, PendingTask};

/// Priorities 0..=9.
const PRIORITY_LEVELS: usize = 10;

/// The dispatch order of a pending task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct OrderKey {
    rank: Reverse<Priority>,
    turn: u64,
    enqueued_at: DateTime<Utc>,
    task_id: TaskId,
}

type QueueId = u64;

/// The pending tasks of one (capabilities, owner) group, in dispatch order.
#[derive(Debug)]
struct DispatchQueue {
    capabilities: Capabilities,
    owner: String,
    keys: BTreeSet<OrderKey>,
    /// The waiting reason last evaluated for the group.
    reason: Option<String>,
    /// Tasks that joined since then and may not carry that reason yet.
    unreasoned: Vec<TaskId>,
}

/// Fairness bookkeeping of one owner at one priority.
#[derive(Debug, Clone, Default)]
struct OwnerTurns {
    /// The earliest turn the owner's next task gets.
    next_turn: u64,
    /// The owner's pending tasks at the priority, in arrival order, with their turns (which
    /// increase in the same order).
    tasks: BTreeMap<(DateTime<Utc>, TaskId), u64>,
}

/// What a dispatch pass does with the first task of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<R> {
    /// Take the task out of the queue (it was placed); `R` says where.
    Take(R),
    /// The task cannot be placed now, so none of its group can: skip the group.
    Skip,
    /// Nothing more can be placed in this pass.
    Stop,
}

/// A `Waiting` to publish: the task's reason changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonChange {
    /// The task.
    pub task_id: TaskId,
    /// Its pending attempt.
    pub attempt: u32,
    /// The new reason.
    pub reason: String,
}

/// Tasks waiting for an agent.
#[derive(Debug)]
pub struct PendingQueue {
    tasks: HashMap<TaskId, PendingTask>,
    queues: HashMap<QueueId, DispatchQueue>,
    queue_ids: HashMap<(Capabilities, String), QueueId>,
    next_queue_id: QueueId,
    /// The first key of every group.
    heads: BTreeSet<(OrderKey, QueueId)>,
    fair_ordering: bool,
    virtual_turns: [u64; PRIORITY_LEVELS],
    owner_turns: HashMap<(String, Priority), OwnerTurns>,
    counts_by_priority: [u64; PRIORITY_LEVELS],
}

impl PendingQueue {
    /// An empty queue; `fair_ordering` orders tasks of one priority by owner turns.
    pub fn new(fair_ordering: bool) -> Self {
        Self {
            tasks: HashMap::new(),
            queues: HashMap::new(),
            queue_ids: HashMap::new(),
            next_queue_id: 0,
            heads: BTreeSet::new(),
            fair_ordering,
            virtual_turns: [0; PRIORITY_LEVELS],
            owner_turns: HashMap::new(),
            counts_by_priority: [0; PRIORITY_LEVELS],
        }
    }

    /// Pending tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The pending task `task_id`.
    pub fn get(&self, task_id: TaskId) -> Option<&PendingTask> {
        self.tasks.get(&task_id)
    }

    /// Every pending task, in no particular order.
    pub fn tasks(&self) -> impl Iterator<Item = &PendingTask> {
        self.tasks.values()
    }

    /// Pending tasks per priority, indexed by the priority's value.
    pub fn counts_by_priority(&self) -> [u64; PRIORITY_LEVELS] {
        self.counts_by_priority
    }

    /// Each group's capabilities and size.
    pub fn groups(&self) -> impl Iterator<Item = (&Capabilities, usize)> {
        self.queues.values().map(|queue| (&queue.capabilities, queue.keys.len()))
    }

    /// Queues a task that arrived now: its owner gets one more turn at the task's priority, and
    /// the owner's tasks take their turns in arrival order. Returns the other tasks whose turn
    /// changed for that (their stored key must be rewritten).
    pub fn enqueue_new(&mut self, mut task: PendingTask) -> Vec<TaskId> {
        let priority = task.spec.priority;
        let owner_key = (task.spec.owner.clone(), priority);
        let (new_turn, later) = match self.owner_turns.get(&owner_key) {
            Some(turns) => {
                let position = (task.spec.enqueued_at, task.spec.task_id);
                let later: Vec<(TaskId, u64)> = turns
                    .tasks
                    .range((Bound::Excluded(position), Bound::Unbounded))
                    .map(|((_, task_id), turn)| (*task_id, *turn))
                    .collect();
                (self.virtual_turns[level(priority)].max(turns.next_turn), later)
            }
            None => (self.virtual_turns[level(priority)], Vec::new()),
        };
        let Some(((_, first_turn), _)) = later.split_first() else {
            task.spec.fair_tag = new_turn;
            self.insert(task);
            return Vec::new();
        };
        // The newcomer takes the first later task's turn; each later task takes the next one's,
        // and the last takes the new turn.
        task.spec.fair_tag = *first_turn;
        let mut shifted = Vec::with_capacity(later.len());
        for (index, (task_id, _)) in later.iter().enumerate() {
            if let Some(mut moved) = self.remove(*task_id) {
                moved.spec.fair_tag = later.get(index + 1).map_or(new_turn, |(_, turn)| *turn);
                shifted.push(moved);
            }
        }
        self.insert(task);
        let retagged = shifted.iter().map(|moved| moved.spec.task_id).collect();
        for moved in shifted {
            self.insert(moved);
        }
        retagged
    }

    /// Puts back a task that was queued before (restored after a restart, or taken back from an
    /// agent): it keeps its turn and so its place.
    pub fn requeue(&mut self, task: PendingTask) {
        self.insert(task);
    }

    /// After restoring: new arrivals start at the earliest turn still pending, so a new owner
    /// goes next rather than ahead of every turn handed out before the restart.
    pub fn finish_restore(&mut self) {
        let mut earliest = [u64::MAX; PRIORITY_LEVELS];
        for task in self.tasks.values() {
            let index = level(task.spec.priority);
            earliest[index] = earliest[index].min(task.spec.fair_tag);
        }
        for (index, turn) in earliest.into_iter().enumerate() {
            if turn != u64::MAX {
                self.virtual_turns[index] = self.virtual_turns[index].max(turn);
            }
        }
    }

    fn insert(&mut self, task: PendingTask) {
        let key = self.key_of(&task);
        let group = (task.spec.capabilities.clone(), task.spec.owner.clone());
        let queue_id = match self.queue_ids.get(&group) {
            Some(queue_id) => *queue_id,
            None => {
                let queue_id = self.next_queue_id;
                self.next_queue_id += 1;
                self.queue_ids.insert(group.clone(), queue_id);
                let (capabilities, owner) = group;
                let queue = DispatchQueue {
                    capabilities,
                    owner,
                    keys: BTreeSet::new(),
                    reason: None,
                    unreasoned: Vec::new(),
                };
                self.queues.insert(queue_id, queue);
                queue_id
            }
        };
        let Some(queue) = self.queues.get_mut(&queue_id) else {
            return;
        };
        if let Some(old_head) = queue.keys.first().copied() {
            if key < old_head {
                self.heads.remove(&(old_head, queue_id));
                self.heads.insert((key, queue_id));
            }
        } else {
            self.heads.insert((key, queue_id));
        }
        queue.keys.insert(key);
        if queue.reason.as_deref() != Some(task.waiting_reason.as_str()) {
            queue.unreasoned.push(task.spec.task_id);
        }
        let priority = task.spec.priority;
        let turns = self.owner_turns.entry((task.spec.owner.clone(), priority)).or_default();
        turns.next_turn = turns.next_turn.max(task.spec.fair_tag + 1);
        turns.tasks.insert((task.spec.enqueued_at, task.spec.task_id), task.spec.fair_tag);
        self.counts_by_priority[level(priority)] += 1;
        let previous = self.tasks.insert(task.spec.task_id, task);
        debug_assert!(previous.is_none(), "a task is queued twice");
    }

    /// Takes a task out of the queue (withdrawn, or replaced by a newer attempt).
    pub fn remove(&mut self, task_id: TaskId) -> Option<PendingTask> {
        let task = self.tasks.remove(&task_id)?;
        let key = self.key_of(&task);
        let group = (task.spec.capabilities.clone(), task.spec.owner.clone());
        if let Some(queue_id) = self.queue_ids.get(&group).copied()
            && let Some(queue) = self.queues.get_mut(&queue_id)
        {
            let was_head = queue.keys.first() == Some(&key);
            queue.keys.remove(&key);
            if was_head {
                self.heads.remove(&(key, queue_id));
                match queue.keys.first() {
                    Some(next) => {
                        self.heads.insert((*next, queue_id));
                    }
                    None => {
                        self.queues.remove(&queue_id);
                        self.queue_ids.remove(&group);
                    }
                }
            }
        }
        let priority = task.spec.priority;
        let owner_key = (task.spec.owner.clone(), priority);
        if let Some(turns) = self.owner_turns.get_mut(&owner_key) {
            turns.tasks.remove(&(task.spec.enqueued_at, task_id));
            if turns.tasks.is_empty() {
                // An owner with nothing pending keeps no debt: its next task starts at the
                // virtual turn like any newcomer's.
                self.owner_turns.remove(&owner_key);
            }
        }
        let count = &mut self.counts_by_priority[level(priority)];
        *count = count.saturating_sub(1);
        Some(task)
    }

    /// Switches between owner-turn and arrival order within a priority (the strategy changed).
    pub fn set_fair_ordering(&mut self, fair_ordering: bool) {
        if self.fair_ordering == fair_ordering {
            return;
        }
        self.fair_ordering = fair_ordering;
        self.heads.clear();
        for (queue_id, queue) in &mut self.queues {
            let mut keys = BTreeSet::new();
            for key in &queue.keys {
                if let Some(task) = self.tasks.get(&key.task_id) {
                    keys.insert(order_key(task, fair_ordering));
                }
            }
            queue.keys = keys;
            if let Some(head) = queue.keys.first() {
                self.heads.insert((*head, *queue_id));
            }
        }
    }

    /// One dispatch pass: offers the first task of each group, in dispatch order, to `decide`,
    /// and returns the tasks it took with its answers, in the order taken.
    ///
    /// A skipped group is not offered again in this pass: whatever made its first task
    /// unplaceable (no capable agent with a free slot, the owner's cap) only gets worse as the
    /// pass fills slots.
    pub fn dispatch<R>(
        &mut self,
        mut decide: impl FnMut(&PendingTask) -> Decision<R>,
    ) -> Vec<(PendingTask, R)> {
        let mut taken = Vec::new();
        let mut cursor: Option<(OrderKey, QueueId)> = None;
        loop {
            let next = match cursor {
                None => self.heads.first().copied(),
                Some(position) => {
                    self.heads.range((Bound::Excluded(position), Bound::Unbounded)).next().copied()
                }
            };
            let Some((key, queue_id)) = next else { break };
            cursor = Some((key, queue_id));
            let Some(task) = self.tasks.get(&key.task_id) else {
                debug_assert!(false, "a queue head has no task");
                continue;
            };
            match decide(task) {
                Decision::Stop => break,
                Decision::Skip => continue,
                Decision::Take(answer) => {
                    // The group's next head sorts after `key`, so the walk meets it later.
                    if let Some(task) = self.remove(key.task_id) {
                        let index = level(task.spec.priority);
                        self.virtual_turns[index] = self.virtual_turns[index].max(task.spec.fair_tag);
                        taken.push((task, answer));
                    }
                }
            }
        }
        taken
    }

    /// Evaluates each group's waiting reason and records it on the tasks that do not carry it
    /// yet; returns those changes, to be published.
    pub fn refresh_reasons(
        &mut self,
        mut reason_of: impl FnMut(&Capabilities, &str) -> String,
    ) -> Vec<ReasonChange> {
        let mut changes = Vec::new();
        for queue in self.queues.values_mut() {
            let reason = reason_of(&queue.capabilities, &queue.owner);
            let changed = queue.reason.as_deref() != Some(reason.as_str());
            let candidates: Vec<TaskId> = if changed {
                queue.unreasoned.clear();
                queue.keys.iter().map(|key| key.task_id).collect()
            } else {
                std::mem::take(&mut queue.unreasoned)
            };
            for task_id in candidates {
                if let Some(task) = self.tasks.get_mut(&task_id)
                    && task.waiting_reason != reason
                {
                    // A first attempt queued behind busy agents is an ordinary backlog: saying so
                    // for every task would double the messages per task under load. Any other
                    // reason, a change of reason, and a later attempt (which the orchestrator
                    // requeues on this message) are published.
                    let ordinary_backlog = task.waiting_reason.is_empty()
                        && task.attempt == 1
                        && reason == ALL_CAPABLE_AGENTS_BUSY;
                    task.waiting_reason.clone_from(&reason);
                    if !ordinary_backlog {
                        changes.push(ReasonChange { task_id, attempt: task.attempt, reason: reason.clone() });
                    }
                }
            }
            queue.reason = Some(reason);
        }
        changes
    }

    fn key_of(&self, task: &PendingTask) -> OrderKey {
        order_key(task, self.fair_ordering)
    }
}

fn order_key(task: &PendingTask, fair_ordering: bool) -> OrderKey {
    OrderKey {
        rank: Reverse(task.spec.priority),
        turn: if fair_ordering { task.spec.fair_tag } else { 0 },
        enqueued_at: task.spec.enqueued_at,
        task_id: task.spec.task_id,
    }
}

fn level(priority: Priority) -> usize {
    usize::from(priority.value()).min(PRIORITY_LEVELS - 1)
}

#[cfg(test)]
mod tests;
