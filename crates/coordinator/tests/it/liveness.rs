//! Silent agents, assignment leases and re-assignment with the next attempt.

use std::time::{Duration, Instant};

use sutazai_proto::v1 as pb;

use crate::{Backing, FakeAgent, TestCoordinator, authed, settings, task};

#[tokio::test]
async fn a_silent_agent_goes_offline_and_its_task_moves_with_the_next_attempt() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.service_token();
    let mut first = FakeAgent::start(&backing, "first", &[], 1).await;
    coordinator.wait_online(&token, 1).await;
    let ready = task(5, "alice", &[]);
    backing.ready(&ready).await;
    let assigned = first.expect_assignment().await;
    assert_eq!((assigned.task_id, assigned.attempt, assigned.reason.as_str()), (ready.task_id, 1, ""));
    let mut second = FakeAgent::start(&backing, "second", &[], 1).await;
    coordinator.wait_online(&token, 2).await;
    first.go_silent();
    let silenced = Instant::now();
    let reassigned = second.expect_assignment().await;
    assert!(
        silenced.elapsed() >= Duration::from_millis(250),
        "re-assigned before the agent was silent long enough"
    );
    assert_eq!(reassigned.task_id, ready.task_id);
    assert_eq!(reassigned.attempt, 2);
    assert_eq!(reassigned.reason, format!("agent {} went offline", first.id));
    let request = pb::GetAgentRequest { agent_id: first.id.to_string() };
    let agent =
        coordinator.rpc.clone().get_agent(authed(request, &token)).await.unwrap().into_inner().agent.unwrap();
    assert_eq!(agent.status, i32::from(pb::AgentStatus::Offline));
    assert_eq!(agent.active_tasks, 0);
    drop((first, second));
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn a_started_task_outlives_its_lease_but_not_its_agent() {
    let backing = Backing::new().await;
    let mut short_lease = settings();
    short_lease.assignment_lease_s = 1;
    let coordinator = TestCoordinator::start(&backing, short_lease).await;
    let token = backing.service_token();
    let mut first = FakeAgent::start(&backing, "first", &[], 1).await;
    let mut second = FakeAgent::start(&backing, "second", &[], 1).await;
    coordinator.wait_online(&token, 2).await;
    let ready = task(5, "alice", &[]);
    backing.ready(&ready).await;
    // Ties go to the lower id: the first agent.
    let assigned = first.expect_assignment().await;
    first.started(&assigned).await;
    // Well past the one-second lease, the running task stays where it is.
    second.expect_no_assignment(Duration::from_millis(1300)).await;
    first.go_silent();
    let reassigned = second.expect_assignment().await;
    assert_eq!((reassigned.task_id, reassigned.attempt), (ready.task_id, 2));
    assert_eq!(reassigned.reason, format!("agent {} went offline", first.id));
    drop((first, second));
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn an_unstarted_assignment_moves_when_its_lease_expires() {
    let backing = Backing::new().await;
    let mut short_lease = settings();
    short_lease.assignment_lease_s = 1;
    let coordinator = TestCoordinator::start(&backing, short_lease).await;
    let token = backing.service_token();
    let mut first = FakeAgent::start(&backing, "first", &[], 1).await;
    let mut second = FakeAgent::start(&backing, "second", &[], 1).await;
    coordinator.wait_online(&token, 2).await;
    let ready = task(5, "alice", &[]);
    backing.ready(&ready).await;
    let assigned = first.expect_assignment().await;
    let assigned_at = Instant::now();
    let reassigned = second.expect_assignment().await;
    assert!(assigned_at.elapsed() >= Duration::from_millis(800), "the lease ended early");
    assert_eq!((reassigned.task_id, reassigned.attempt), (assigned.task_id, 2));
    assert_eq!(reassigned.reason, "assignment lease expired");
    // The first agent is still online: only the lease ran out.
    first.expect_no_assignment(Duration::from_millis(100)).await;
    drop((first, second));
    coordinator.stop().await;
    backing.cleanup().await;
}
