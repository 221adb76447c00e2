//! Ownership: a user sees and cancels only their own tasks (another's is not found), admins act
//! for anyone, and services too with the scope of the call.

use serde_json::json;
use sutazai_proto::v1 as pb;
use tonic::Code;

use crate::{TestOrchestrator, assert_status, authed, task_request};

async fn list(app: &TestOrchestrator, token: &str, owner: &str) -> (Vec<String>, u64) {
    let request = pb::ListTasksRequest { owner: owner.to_owned(), ..pb::ListTasksRequest::default() };
    let response = app.rpc.clone().list_tasks(authed(request, token)).await.unwrap().into_inner();
    (response.tasks.into_iter().map(|task| task.id).collect(), response.page.unwrap().total)
}

#[tokio::test]
async fn another_users_task_is_not_found_and_admins_see_all() {
    let app = TestOrchestrator::start().await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let alices = app.submit_simple("alice", json!({})).await;
    let bobs = app.submit_simple("bob", json!({})).await;
    let not_found = format!("task {} not found", alices.id);
    assert_status(app.get(&bob, &alices.id, "bob").await, Code::NotFound, &not_found);
    assert_status(app.get(&bob, &alices.id, "").await, Code::NotFound, &not_found);
    assert_status(app.cancel(&bob, &alices.id, "bob", "mine now").await, Code::NotFound, &not_found);
    assert_status(
        app.get(&bob, &alices.id, "alice").await,
        Code::PermissionDenied,
        "a user token may only act for its own subject",
    );
    assert_eq!(app.get(&alice, &alices.id, "alice").await.unwrap().id, alices.id);

    // Newest first, per owner; the admin view (empty owner) spans owners.
    assert_eq!(list(&app, &alice, "alice").await, (vec![alices.id.clone()], 1));
    assert_eq!(list(&app, &bob, "").await, (vec![bobs.id.clone()], 1));
    assert_eq!(list(&app, &app.admin(), "").await, (vec![bobs.id.clone(), alices.id.clone()], 2));
    assert_eq!(list(&app, &app.admin(), "alice").await.1, 1);
    assert_eq!(app.get(&app.admin(), &alices.id, "").await.unwrap().owner, "alice");
    // A service account with `tasks:write` submits for the owner it names.
    let service = app.issuer.service_token("gateway", &["tasks:read", "tasks:write"]);
    let carols = app.submit(&service, task_request("carol", "summarize", json!({}))).await.unwrap();
    let carols = carols.task.unwrap();
    assert_eq!(carols.owner, "carol");
    assert_eq!(app.get(&service, &carols.id, "").await.unwrap().owner, "carol");
    // One without (the agent workers' account, say) may not act on tasks at all.
    let worker = app.issuer.service_token("agent-worker", &["vectors:write"]);
    assert_status(
        app.submit(&worker, task_request("carol", "summarize", json!({}))).await,
        Code::PermissionDenied,
        "a service token needs the `tasks:write` scope",
    );
    assert_status(
        app.get(&worker, &carols.id, "carol").await,
        Code::PermissionDenied,
        "a service token needs the `tasks:read` scope",
    );
    let reader = app.issuer.service_token("dashboard", &["tasks:read"]);
    assert_eq!(app.get(&reader, &carols.id, "").await.unwrap().id, carols.id);
    assert_status(
        app.cancel(&reader, &carols.id, "carol", "no").await,
        Code::PermissionDenied,
        "a service token needs the `tasks:write` scope",
    );
    app.finish().await;
}
