//! No busy loop: with tasks pending and no agent, the coordinator sleeps.

use std::time::Duration;

use crate::{Backing, TestCoordinator, settings, task};

/// CPU time this process's threads have run so far: the sum of the first field of each
/// thread's `/proc/self/task/<tid>/schedstat` (nanoseconds on a CPU, user and system).
fn process_cpu() -> Duration {
    let mut total_ns: u64 = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = entry.unwrap().path().join("schedstat");
        // A thread that exited between listing and reading has nothing left to count.
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        total_ns += text.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    }
    Duration::from_nanos(total_ns)
}

#[tokio::test]
async fn fifty_pending_tasks_and_no_agent_cost_no_cpu() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    for _ in 0..50 {
        backing.ready(&task(5, "alice", &[])).await;
    }
    coordinator.wait_pending(&token, 50).await;
    let window = Duration::from_secs(2);
    let before = process_cpu();
    tokio::time::sleep(window).await;
    let used = process_cpu().saturating_sub(before);
    // The whole test process is measured (coordinator, its pools, the test's own broker
    // connection): it must stay under 5 % of one core.
    println!("cpu over {window:?} with 50 pending tasks and no agent: {used:?}");
    assert!(used < window / 20, "the idle coordinator used {used:?} of cpu in {window:?}");
    assert_eq!(coordinator.pending_stats(&token).await.pending, 50);
    coordinator.stop().await;
    backing.cleanup().await;
}
