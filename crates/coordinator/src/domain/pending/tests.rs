//! The pending order: priority, owner turns, arrival; groups that cannot be placed.

use chrono::Duration;
use proptest::prelude::*;

use super::*;
use crate::domain::task::TaskSpec;

/// A pending task of `owner` at `priority`, arriving `arrival` ms after a fixed instant.
fn task(id: u128, priority: u8, owner: &str, arrival: i64, capabilities: &[&str]) -> PendingTask {
    let origin = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    PendingTask {
        spec: TaskSpec {
            task_id: TaskId(uuid::Uuid::from_u128(id)),
            task_type: "noop".to_owned(),
            priority: Priority::try_from(priority).unwrap(),
            capabilities: Capabilities::new(capabilities),
            owner: owner.to_owned(),
            payload: serde_json::Value::Null,
            deadline: origin + Duration::hours(1),
            enqueued_at: origin + Duration::milliseconds(arrival),
            fair_tag: 0,
            traceparent: None,
        },
        attempt: 1,
        waiting_reason: String::new(),
        reassign_reason: String::new(),
        previous_agent: None,
    }
}

fn ids(taken: &[(PendingTask, ())]) -> Vec<u128> {
    taken.iter().map(|(task, ())| task.spec.task_id.0.as_u128()).collect()
}

fn drain(queue: &mut PendingQueue) -> Vec<u128> {
    ids(&queue.dispatch(|_| Decision::Take(())))
}

#[test]
fn priority_then_arrival() {
    let mut queue = PendingQueue::new(true);
    queue.enqueue_new(task(1, 1, "a", 0, &[]));
    queue.enqueue_new(task(2, 3, "a", 1, &[]));
    queue.enqueue_new(task(3, 2, "a", 2, &[]));
    queue.enqueue_new(task(4, 3, "a", 3, &[]));
    assert_eq!(queue.counts_by_priority()[3], 2);
    assert_eq!(drain(&mut queue), [2, 4, 3, 1]);
    assert!(queue.is_empty());
    assert_eq!(queue.counts_by_priority(), [0; PRIORITY_LEVELS]);
}

#[test]
fn owners_take_turns_within_a_priority() {
    let mut queue = PendingQueue::new(true);
    for index in 0..5 {
        queue.enqueue_new(task(index, 5, "flood", i64::try_from(index).unwrap(), &[]));
    }
    queue.enqueue_new(task(100, 5, "other", 100, &[]));
    queue.enqueue_new(task(101, 5, "other", 101, &[]));
    assert_eq!(drain(&mut queue), [0, 100, 1, 101, 2, 3, 4]);
}

#[test]
fn an_owners_turns_follow_enqueued_at_whatever_the_delivery_order() {
    let mut queue = PendingQueue::new(true);
    assert!(queue.enqueue_new(task(3, 5, "a", 3, &[])).is_empty());
    queue.enqueue_new(task(100, 5, "b", 0, &[]));
    let retagged = queue.enqueue_new(task(1, 5, "a", 1, &[]));
    assert_eq!(retagged, [TaskId(uuid::Uuid::from_u128(3))]);
    queue.enqueue_new(task(2, 5, "a", 2, &[]));
    assert_eq!(drain(&mut queue), [100, 1, 2, 3]);
}

#[test]
fn without_fairness_arrival_order_wins() {
    let mut queue = PendingQueue::new(false);
    for index in 0..3 {
        queue.enqueue_new(task(index, 5, "flood", i64::try_from(index).unwrap(), &[]));
    }
    queue.enqueue_new(task(100, 5, "other", 100, &[]));
    assert_eq!(drain(&mut queue), [0, 1, 2, 100]);
}

#[test]
fn switching_fairness_reorders() {
    let mut queue = PendingQueue::new(false);
    for index in 0..3 {
        queue.enqueue_new(task(index, 5, "flood", i64::try_from(index).unwrap(), &[]));
    }
    queue.enqueue_new(task(100, 5, "other", 100, &[]));
    queue.set_fair_ordering(true);
    assert_eq!(drain(&mut queue), [0, 100, 1, 2]);
}

#[test]
fn a_newcomer_after_dispatches_goes_next() {
    let mut queue = PendingQueue::new(true);
    for index in 0..6 {
        queue.enqueue_new(task(index, 5, "flood", i64::try_from(index).unwrap(), &[]));
    }
    let mut first_three = 0;
    let taken = queue.dispatch(|_| {
        first_three += 1;
        if first_three <= 3 { Decision::Take(()) } else { Decision::Stop }
    });
    assert_eq!(ids(&taken), [0, 1, 2]);
    queue.enqueue_new(task(100, 5, "other", 100, &[]));
    // It has had no turn yet: it goes before the flood's next one.
    assert_eq!(drain(&mut queue), [100, 3, 4, 5]);
}

#[test]
fn a_blocked_group_does_not_hold_back_others() {
    let mut queue = PendingQueue::new(true);
    queue.enqueue_new(task(1, 9, "a", 0, &["gpu"]));
    queue.enqueue_new(task(2, 9, "a", 1, &["gpu"]));
    queue.enqueue_new(task(3, 1, "a", 2, &[]));
    let mut offered = Vec::new();
    let taken = queue.dispatch(|task| {
        offered.push(task.spec.task_id.0.as_u128());
        if task.spec.capabilities.is_empty() { Decision::Take(()) } else { Decision::Skip }
    });
    assert_eq!(ids(&taken), [3]);
    // The gpu group was offered once, not once per task.
    assert_eq!(offered, [1, 3]);
    assert_eq!(queue.len(), 2);
}

#[test]
fn a_requeued_task_regains_its_place() {
    let mut queue = PendingQueue::new(true);
    for index in 0..3 {
        queue.enqueue_new(task(index, 5, "a", i64::try_from(index).unwrap(), &[]));
    }
    let mut taken = queue.dispatch(|_| Decision::Take(()));
    let (first, ()) = taken.remove(0);
    for (task, ()) in taken {
        queue.requeue(task);
    }
    queue.requeue(first);
    assert_eq!(drain(&mut queue), [0, 1, 2]);
}

#[test]
fn restored_turns_keep_the_order_and_newcomers_go_next() {
    let mut before = PendingQueue::new(true);
    for index in 0..4 {
        before.enqueue_new(task(index, 5, "flood", i64::try_from(index).unwrap(), &[]));
    }
    let stored: Vec<PendingTask> = before.tasks().cloned().collect();
    let mut after = PendingQueue::new(true);
    for task in stored {
        after.requeue(task);
    }
    after.finish_restore();
    after.enqueue_new(task(100, 5, "other", 100, &[]));
    assert_eq!(drain(&mut after), [0, 100, 1, 2, 3]);
}

#[test]
fn reasons_are_reported_once_per_change() {
    let mut queue = PendingQueue::new(true);
    queue.enqueue_new(task(1, 5, "a", 0, &["gpu"]));
    let changes = queue.refresh_reasons(|_, _| "busy".to_owned());
    assert_eq!(changes.len(), 1);
    assert!(queue.refresh_reasons(|_, _| "busy".to_owned()).is_empty());
    queue.enqueue_new(task(2, 5, "a", 1, &["gpu"]));
    let changes = queue.refresh_reasons(|_, _| "busy".to_owned());
    assert_eq!(changes.iter().map(|change| change.task_id.0.as_u128()).collect::<Vec<_>>(), [2]);
    let changes = queue.refresh_reasons(|_, _| "gone".to_owned());
    assert_eq!(changes.len(), 2);
    assert_eq!(queue.get(TaskId(uuid::Uuid::from_u128(1))).unwrap().waiting_reason, "gone");
}

proptest! {
    /// Whatever the delivery order, a full drain yields priorities never increasing and each
    /// owner's tasks of one priority in `enqueued_at` order; with every task queued up front,
    /// no owner gets two turns at a priority while another owner still waits there.
    #[test]
    fn drain_order_is_priority_then_fair_fifo(
        arrivals in proptest::collection::vec((0u8..3, 0usize..4, 0i64..1000), 1..60),
    ) {
        let mut queue = PendingQueue::new(true);
        for (index, (priority, owner, enqueued_ms)) in arrivals.iter().enumerate() {
            let id = u128::try_from(index).unwrap();
            queue.enqueue_new(task(id, *priority, &format!("owner-{owner}"), *enqueued_ms, &[]));
        }
        let order = drain(&mut queue);
        prop_assert_eq!(order.len(), arrivals.len());
        let info = |id: u128| arrivals[usize::try_from(id).unwrap()];
        for (position, first_id) in order.iter().enumerate() {
            for second_id in &order[position + 1..] {
                let (first, second) = (info(*first_id), info(*second_id));
                prop_assert!(first.0 >= second.0, "priority increased");
                if first.0 == second.0 && first.1 == second.1 {
                    prop_assert!((first.2, *first_id) < (second.2, *second_id), "an owner's tasks left enqueued_at order");
                }
            }
        }
        for priority in 0u8..3 {
            let level: Vec<usize> = order.iter().map(|id| info(*id)).filter(|(p, _, _)| *p == priority).map(|(_, owner, _)| owner).collect();
            let mut remaining = [0usize; 4];
            for owner in &level { remaining[*owner] += 1; }
            let mut served = [0usize; 4];
            for owner in level {
                served[owner] += 1;
                remaining[owner] -= 1;
                for other in 0..4 {
                    if remaining[other] > 0 {
                        prop_assert!(served[owner] <= served[other] + 1, "owner {} got ahead of owner {}", owner, other);
                    }
                }
            }
        }
    }
}
