//! The gRPC contract: listing agents, pending statistics, the strategy and its authorization.

use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{Backing, FakeAgent, TestCoordinator, authed, settings, task};

#[tokio::test]
async fn agents_are_listed_filtered_and_paged() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let token = backing.issuer.user_token("user-1", &[]);
    let coder = FakeAgent::start(&backing, "coder", &["python", "rust"], 2).await;
    let mut drained = FakeAgent::start(&backing, "summarizer", &["text"], 1).await;
    let reviewer = FakeAgent::start(&backing, "reviewer", &["python"], 1).await;
    coordinator.wait_online(&token, 3).await;
    drained.go_silent();
    coordinator.wait_online(&token, 2).await;

    let all = coordinator.agents(&token, pb::ListAgentsRequest::default()).await;
    let names: Vec<&str> = all.agents.iter().map(|agent| agent.name.as_str()).collect();
    assert_eq!(names, ["coder", "reviewer", "summarizer"]);
    assert_eq!(all.page, Some(pb::PageInfo { total: 3, skip: 0, limit: 50 }));
    assert_eq!(all.agents[0].id, coder.id.to_string());
    assert_eq!(all.agents[0].capabilities, ["python", "rust"]);
    assert_eq!((all.agents[0].slots, all.agents[0].version.as_str()), (2, "test"));

    let python = pb::ListAgentsRequest { capability: "python".to_owned(), ..Default::default() };
    let listed = coordinator.agents(&token, python).await;
    assert_eq!(
        listed.agents.iter().map(|agent| agent.name.as_str()).collect::<Vec<_>>(),
        ["coder", "reviewer"]
    );
    let offline = pb::ListAgentsRequest { status: pb::AgentStatus::Offline.into(), ..Default::default() };
    let listed = coordinator.agents(&token, offline).await;
    assert_eq!(listed.agents.len(), 1);
    assert_eq!(listed.agents[0].id, drained.id.to_string());
    let paged =
        pb::ListAgentsRequest { page: Some(pb::PageRequest { skip: 1, limit: 1 }), ..Default::default() };
    let listed = coordinator.agents(&token, paged).await;
    assert_eq!(listed.agents[0].id, reviewer.id.to_string());
    assert_eq!(listed.page, Some(pb::PageInfo { total: 3, skip: 1, limit: 1 }));

    let too_many =
        pb::ListAgentsRequest { page: Some(pb::PageRequest { skip: 0, limit: 1001 }), ..Default::default() };
    let status = coordinator.rpc.clone().list_agents(authed(too_many, &token)).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "page.limit: must be between 0 and 1000")
    );
    let unknown = pb::GetAgentRequest { agent_id: uuid::Uuid::now_v7().to_string() };
    let status = coordinator.rpc.clone().get_agent(authed(unknown, &token)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let malformed = pb::GetAgentRequest { agent_id: "agent-1".to_owned() };
    let status = coordinator.rpc.clone().get_agent(authed(malformed, &token)).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "agent_id: must be a UUID"));
    let status = coordinator.rpc.clone().list_agents(pb::ListAgentsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    drop((coder, drained, reviewer));
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn pending_stats_count_by_priority() {
    let backing = Backing::new().await;
    let mut small = settings();
    small.pending_capacity = 50;
    let coordinator = TestCoordinator::start(&backing, small).await;
    let token = backing.issuer.user_token("user-1", &[]);
    let stats = coordinator.pending_stats(&token).await;
    assert_eq!((stats.pending, stats.pending_capacity, stats.oldest_pending_at), (0, 50, None));
    let oldest = task(2, "alice", &[]);
    backing.ready(&oldest).await;
    for priority in [7, 2, 7] {
        backing.ready(&task(priority, "alice", &["gpu"])).await;
    }
    coordinator.wait_pending(&token, 4).await;
    let stats = coordinator.pending_stats(&token).await;
    let by_priority: Vec<(u32, u64)> =
        stats.by_priority.iter().map(|count| (count.priority, count.count)).collect();
    assert_eq!(by_priority, [(7, 2), (2, 2)]);
    assert_eq!((stats.unassignable, stats.assigned), (4, 0));
    let oldest_at = stats.oldest_pending_at.unwrap();
    assert_eq!(oldest_at.seconds, oldest.enqueued_at.timestamp());
    coordinator.stop().await;
    backing.cleanup().await;
}

fn strategy(kind: pb::DispatchStrategyKind, lease_s: u32) -> pb::DispatchStrategy {
    pb::DispatchStrategy {
        kind: kind.into(),
        owner_fairness: false,
        max_active_per_owner: 3,
        assignment_lease_s: lease_s,
        updated_at: None,
        updated_by: String::new(),
    }
}

#[tokio::test]
async fn only_an_admin_sets_the_strategy_and_it_survives_a_restart() {
    let backing = Backing::new().await;
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let user = backing.issuer.user_token("user-1", &[]);
    let admin = backing.issuer.admin_token();
    let request = authed(pb::GetStrategyRequest {}, &user);
    let configured =
        coordinator.rpc.clone().get_strategy(request).await.unwrap().into_inner().strategy.unwrap();
    assert_eq!(configured.kind, i32::from(pb::DispatchStrategyKind::CapabilityMatch));
    assert!(configured.owner_fairness);
    assert_eq!((configured.updated_by.as_str(), configured.updated_at), ("configuration", None));

    let denied = coordinator.set_strategy(&user, strategy(pb::DispatchStrategyKind::RoundRobin, 10)).await;
    let status = denied.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::PermissionDenied, "setting the strategy needs the `admin` role")
    );
    let invalid = coordinator.set_strategy(&admin, strategy(pb::DispatchStrategyKind::Unspecified, 10)).await;
    assert_eq!(invalid.unwrap_err().code(), Code::InvalidArgument);
    let invalid = coordinator.set_strategy(&admin, strategy(pb::DispatchStrategyKind::RoundRobin, 0)).await;
    let status = invalid.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "strategy.assignment_lease_s: must be between 1 and 86400")
    );

    let stored =
        coordinator.set_strategy(&admin, strategy(pb::DispatchStrategyKind::RoundRobin, 10)).await.unwrap();
    assert_eq!(stored.kind, i32::from(pb::DispatchStrategyKind::RoundRobin));
    assert_eq!(
        (stored.owner_fairness, stored.max_active_per_owner, stored.assignment_lease_s),
        (false, 3, 10)
    );
    assert!(stored.updated_at.is_some());
    assert!(!stored.updated_by.is_empty());
    coordinator.stop().await;

    let restarted = TestCoordinator::start(&backing, settings()).await;
    let request = authed(pb::GetStrategyRequest {}, &user);
    let kept = restarted.rpc.clone().get_strategy(request).await.unwrap().into_inner().strategy.unwrap();
    assert_eq!(kept, stored);
    restarted.stop().await;
    backing.cleanup().await;
}
