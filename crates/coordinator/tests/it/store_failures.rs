//! A message the store keeps refusing is dropped after a few tries instead of wedging dispatch.

use std::time::Duration;

use sqlx::PgPool;
use sutazai_proto::v1 as pb;

use crate::{Backing, FakeAgent, TestCoordinator, settings, task};

#[tokio::test]
async fn a_message_the_store_refuses_is_dropped_and_dispatch_goes_on() {
    let backing = Backing::new().await;
    let token = backing.service_token();
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    // Postgres refuses this agent's row, as it would a value it cannot store.
    let pool = PgPool::connect(backing.database.url()).await.unwrap();
    sqlx::query(
        "CREATE FUNCTION coordinator.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.name = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON coordinator.agents
         FOR EACH ROW EXECUTE FUNCTION coordinator.refuse_poison()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let poison = FakeAgent::start(&backing, "poison", &[], 1).await;
    let mut healthy = FakeAgent::start(&backing, "healthy", &[], 1).await;
    // A few failed tries of the whole step, then of the poison registration alone. (A wedged
    // dispatcher answers no RPC either, hence the timeout around the polling.)
    let online = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let request =
                pb::ListAgentsRequest { status: pb::AgentStatus::Online.into(), ..Default::default() };
            let agents = coordinator.agents(&token, request).await.agents;
            if agents.len() == 1 && agents[0].name == "healthy" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(online.is_ok(), "dispatch is wedged: the healthy agent never came online");
    let ready = task(5, "alice", &[]);
    backing.ready(&ready).await;
    assert_eq!(healthy.expect_assignment().await.task_id, ready.task_id);
    let all = coordinator.agents(&token, pb::ListAgentsRequest::default()).await;
    assert_eq!(all.agents.len(), 1, "{:?}", all.agents);
    drop((poison, healthy));
    pool.close().await;
    coordinator.stop().await;
    backing.cleanup().await;
}

#[tokio::test]
async fn nul_characters_in_a_registration_are_removed_before_the_store_sees_them() {
    let backing = Backing::new().await;
    let token = backing.service_token();
    let coordinator = TestCoordinator::start(&backing, settings()).await;
    let mut agent = FakeAgent::start(&backing, "co\0der", &["py\0thon"], 1).await;
    coordinator.wait_online(&token, 1).await;
    let listed = coordinator.agents(&token, pb::ListAgentsRequest::default()).await.agents;
    assert_eq!(
        (listed[0].name.as_str(), listed[0].capabilities.clone()),
        ("coder", vec!["python".to_owned()])
    );
    let ready = task(5, "alice", &["python"]);
    backing.ready(&ready).await;
    assert_eq!(agent.expect_assignment().await.task_id, ready.task_id);
    drop(agent);
    coordinator.stop().await;
    backing.cleanup().await;
}
