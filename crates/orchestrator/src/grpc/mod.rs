//! gRPC adapter (`sutazai.v1.OrchestratorService`): each RPC authenticates the bearer token,
//! decodes into the domain's types, calls the orchestrator, and maps the error once.

mod convert;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use sutazai_kit::auth::{PrincipalKind, TokenVerifier};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::orchestrator_service_server::{OrchestratorService, OrchestratorServiceServer};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::domain::access::{Access, Caller, PrincipalRole};
use crate::error::OrchestratorError;
use crate::service::{Orchestrator, SubmitTask, SubmitWorkflow};

/// The gRPC service over the orchestrator.
#[derive(Debug, Clone)]
pub(crate) struct OrchestratorGrpc {
    orchestrator: Orchestrator,
    verifier: Arc<TokenVerifier>,
    /// Ends event streams at shutdown, so they do not hold the server's drain open.
    shutdown: CancellationToken,
}

impl OrchestratorGrpc {
    /// The tonic service to mount.
    pub(crate) fn into_service(
        orchestrator: Orchestrator,
        verifier: Arc<TokenVerifier>,
        shutdown: CancellationToken,
    ) -> OrchestratorServiceServer<Self> {
        OrchestratorServiceServer::new(Self { orchestrator, verifier, shutdown })
    }

    async fn caller<T>(&self, request: &Request<T>, access: Access) -> Result<Caller, Status> {
        let principal = sutazai_kit::auth::authenticate_grpc(&self.verifier, request).await?;
        let role = if principal.is_admin() {
            PrincipalRole::Admin
        } else if principal.kind == PrincipalKind::Service {
            PrincipalRole::Service
        } else {
            PrincipalRole::User
        };
        Caller::authorize(principal.subject, role, &principal.scopes, access)
            .map_err(|error| to_status(error.into()))
    }
}

fn to_status(error: OrchestratorError) -> Status {
    match &error {
        OrchestratorError::Internal(_) => sutazai_kit::grpc::internal_status(&error),
        OrchestratorError::Unavailable { dependency, cause } => {
            tracing::warn!(dependency, %cause, "orchestrator dependency unavailable");
            sutazai_kit::grpc::status(error.code(), error.to_string())
        }
        _ => sutazai_kit::grpc::status(error.code(), error.to_string()),
    }
}

type EventResponses = Pin<Box<dyn Stream<Item = Result<pb::WatchTaskEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OrchestratorService for OrchestratorGrpc {
    async fn submit_task(
        &self,
        request: Request<pb::SubmitTaskRequest>,
    ) -> Result<Response<pb::SubmitTaskResponse>, Status> {
        let caller = self.caller(&request, Access::Write).await?;
        let mut body = request.into_inner();
        let input = SubmitTask {
            task: convert::task_request(&mut body),
            owner: body.owner,
            idempotency_key: body.idempotency_key,
        };
        let submitted = self.orchestrator.submit_task(&caller, input).await.map_err(to_status)?;
        Ok(Response::new(pb::SubmitTaskResponse {
            task: Some(convert::task(&submitted.item)),
            created: submitted.created,
        }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::GetTaskResponse>, Status> {
        let caller = self.caller(&request, Access::Read).await?;
        let body = request.into_inner();
        let task_id = convert::task_id(&body.task_id).map_err(to_status)?;
        let task = self.orchestrator.get_task(&caller, task_id, &body.owner).await.map_err(to_status)?;
        Ok(Response::new(pb::GetTaskResponse { task: Some(convert::task(&task)) }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = self.caller(&request, Access::Read).await?;
        let body = request.into_inner();
        let status = convert::status_filter(body.status).map_err(to_status)?;
        let page = convert::page(body.page).map_err(to_status)?;
        let task_type = Some(body.task_type.as_str()).filter(|task_type| !task_type.is_empty());
        let listed = self
            .orchestrator
            .list_tasks(&caller, &body.owner, status, task_type, page)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: listed.items.iter().map(convert::task).collect(),
            page: Some(convert::page_info(&listed)),
        }))
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        let caller = self.caller(&request, Access::Write).await?;
        let body = request.into_inner();
        let task_id = convert::task_id(&body.task_id).map_err(to_status)?;
        let task = self
            .orchestrator
            .cancel_task(&caller, task_id, &body.owner, &body.reason)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CancelTaskResponse { task: Some(convert::task(&task)) }))
    }

    async fn list_task_events(
        &self,
        request: Request<pb::ListTaskEventsRequest>,
    ) -> Result<Response<pb::ListTaskEventsResponse>, Status> {
        let caller = self.caller(&request, Access::Read).await?;
        let body = request.into_inner();
        let task_id = convert::task_id(&body.task_id).map_err(to_status)?;
        let page = convert::page(body.page).map_err(to_status)?;
        let listed = self
            .orchestrator
            .list_task_events(&caller, task_id, &body.owner, page)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTaskEventsResponse {
            events: listed.items.iter().map(convert::event).collect(),
            page: Some(convert::page_info(&listed)),
        }))
    }

    type WatchTaskEventsStream = EventResponses;

    async fn watch_task_events(
        &self,
        request: Request<pb::WatchTaskEventsRequest>,
    ) -> Result<Response<Self::WatchTaskEventsStream>, Status> {
        let caller = self.caller(&request, Access::Read).await?;
        let body = request.into_inner();
        let task_id = convert::task_id(&body.task_id).map_err(to_status)?;
        let events = self
            .orchestrator
            .watch_task_events(&caller, task_id, &body.owner, body.after_sequence, self.shutdown.clone())
            .await
            .map_err(to_status)?;
        let responses = events.map(|event| {
            event
                .map(|event| pb::WatchTaskEventsResponse { event: Some(convert::event(&event)) })
                .map_err(to_status)
        });
        Ok(Response::new(responses.boxed()))
    }

    async fn submit_workflow(
        &self,
        request: Request<pb::SubmitWorkflowRequest>,
    ) -> Result<Response<pb::SubmitWorkflowResponse>, Status> {
        let caller = self.caller(&request, Access::Write).await?;
        let mut body = request.into_inner();
        let parent_workflow_id = match body.parent_workflow_id.as_str() {
            "" => None,
            text => Some(convert::workflow_id("parent_workflow_id", text).map_err(to_status)?),
        };
        let input = SubmitWorkflow {
            workflow: convert::workflow_request(&mut body).map_err(to_status)?,
            owner: body.owner,
            idempotency_key: body.idempotency_key,
            parent_workflow_id,
        };
        let submitted = self.orchestrator.submit_workflow(&caller, input).await.map_err(to_status)?;
        Ok(Response::new(pb::SubmitWorkflowResponse {
            workflow: Some(convert::workflow(&submitted.item)),
            created: submitted.created,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let caller = self.caller(&request, Access::Read).await?;
        let body = request.into_inner();
        let workflow_id = convert::workflow_id("workflow_id", &body.workflow_id).map_err(to_status)?;
        let workflow =
            self.orchestrator.get_workflow(&caller, workflow_id, &body.owner).await.map_err(to_status)?;
        Ok(Response::new(pb::GetWorkflowResponse { workflow: Some(convert::workflow(&workflow)) }))
    }
}
