//! gRPC adapter (`sutazai.v1.HardwareService`): each RPC authenticates the bearer token,
//! decodes, calls the service, and maps the error once. `Optimize` and `RestoreQuarantine` need
//! an admin. The RPCs that reveal file paths (storage scans, the quarantine list) need an admin
//! or a service account, like the gateway's routes; metrics any verified principal.

mod convert;

use std::sync::Arc;

use sutazai_kit::auth::{ADMIN_ROLE, Principal, PrincipalKind, TokenVerifier};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::hardware_service_server::{HardwareService as HardwareRpc, HardwareServiceServer};
use tonic::{Request, Response, Status};

use crate::audit::{self, Actor};
use crate::domain::optimize::CleanupRequest;
use crate::error::HardwareError;
use crate::service::HardwareService;

/// The gRPC service over the use cases.
#[derive(Debug, Clone)]
pub(crate) struct HardwareGrpc {
    service: HardwareService,
    verifier: Arc<TokenVerifier>,
}

impl HardwareGrpc {
    /// The tonic service to mount.
    pub(crate) fn into_service(
        service: HardwareService,
        verifier: Arc<TokenVerifier>,
    ) -> HardwareServiceServer<Self> {
        HardwareServiceServer::new(Self { service, verifier })
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        sutazai_kit::auth::authenticate_grpc(&self.verifier, request).await
    }

    /// File paths under the allowed roots are not every user's business.
    async fn authenticate_path_reader<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = self.authenticate(request).await?;
        if principal.kind != PrincipalKind::Service && !principal.is_admin() {
            return Err(to_status(HardwareError::Forbidden(format!(
                "requires the `{ADMIN_ROLE}` role or a service token"
            ))));
        }
        Ok(principal)
    }
}

fn to_status(error: HardwareError) -> Status {
    match error {
        HardwareError::Internal(_) => sutazai_kit::grpc::internal_status(&error),
        other => sutazai_kit::grpc::status(other.code(), other.to_string()),
    }
}

fn forbidden() -> HardwareError {
    HardwareError::Forbidden(format!("requires the `{ADMIN_ROLE}` role"))
}

fn actor(principal: &Principal, requested_by: String) -> Actor {
    Actor { name: principal.name.clone(), requested_by }
}

#[tonic::async_trait]
impl HardwareRpc for HardwareGrpc {
    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        self.authenticate(&request).await?;
        let metrics = self.service.metrics(request.into_inner().top_processes).await.map_err(to_status)?;
        Ok(Response::new(pb::GetMetricsResponse { metrics: Some(convert::host_metrics(metrics)) }))
    }

    async fn analyze_storage(
        &self,
        request: Request<pb::AnalyzeStorageRequest>,
    ) -> Result<Response<pb::AnalyzeStorageResponse>, Status> {
        self.authenticate_path_reader(&request).await?;
        let analysis = self.service.analyze_storage(request.into_inner().path).await.map_err(to_status)?;
        Ok(Response::new(convert::storage(analysis)))
    }

    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        self.authenticate_path_reader(&request).await?;
        let body = request.into_inner();
        let report = self.service.find_duplicates(body.path, body.min_size_bytes).await.map_err(to_status)?;
        Ok(Response::new(convert::duplicates(report)))
    }

    async fn find_large_files(
        &self,
        request: Request<pb::FindLargeFilesRequest>,
    ) -> Result<Response<pb::FindLargeFilesResponse>, Status> {
        self.authenticate_path_reader(&request).await?;
        let body = request.into_inner();
        let found = self
            .service
            .find_large_files(body.path, body.min_size_bytes, body.limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::large_files(found)))
    }

    async fn optimize(
        &self,
        request: Request<pb::OptimizeRequest>,
    ) -> Result<Response<pb::OptimizeResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let body = request.into_inner();
        let actor = actor(&principal, body.requested_by.clone());
        let kind = convert::cleanup_kind(body.kind);
        if !principal.is_admin() {
            let error = forbidden();
            audit::cleanup_refused(
                &actor,
                kind.as_ref().ok().copied(),
                body.path.as_deref(),
                body.dry_run != Some(false),
                &error,
            );
            return Err(to_status(error));
        }
        let cleanup = CleanupRequest {
            kind: kind.map_err(to_status)?,
            path: body.path,
            dry_run: body.dry_run,
            days_old: body.days_old.map(i64::from),
            label: body.label,
        };
        let report = self.service.optimize(cleanup, &actor).await.map_err(to_status)?;
        Ok(Response::new(convert::cleanup_report(report)))
    }

    async fn list_quarantine(
        &self,
        request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        self.authenticate_path_reader(&request).await?;
        let page = request.into_inner().page.unwrap_or_default();
        let listed = self.service.list_quarantine(page.skip, page.limit).await.map_err(to_status)?;
        Ok(Response::new(pb::ListQuarantineResponse {
            entries: listed.entries.into_iter().map(convert::quarantine_entry).collect(),
            page: Some(pb::PageInfo { total: listed.total, skip: listed.skip, limit: listed.limit }),
        }))
    }

    async fn restore_quarantine(
        &self,
        request: Request<pb::RestoreQuarantineRequest>,
    ) -> Result<Response<pb::RestoreQuarantineResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        let body = request.into_inner();
        let actor = actor(&principal, body.requested_by);
        if !principal.is_admin() {
            let error = forbidden();
            audit::restore(&actor, &body.quarantine_id, Err(&error));
            return Err(to_status(error));
        }
        let entry = self.service.restore(&body.quarantine_id, &actor).await.map_err(to_status)?;
        Ok(Response::new(pb::RestoreQuarantineResponse { entry: Some(convert::quarantine_entry(entry)) }))
    }
}
