//! gRPC adapter (`sutazai.v1.VectorService`): each RPC authenticates the bearer token, decodes
//! into domain types, calls one use case and maps the error once. Every RPC needs a valid token
//! with `vectors:read` (reads) or `vectors:write` (writes), admins holding both;
//! deleting a collection needs the admin role (collections have no owner, so dropping one is an
//! operator's act).

mod convert;

use std::sync::Arc;

use sutazai_kit::auth::{ADMIN_ROLE, Principal, TokenVerifier};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::delete_points_request::Selector;
use sutazai_proto::v1::vector_service_server::{VectorService as VectorRpc, VectorServiceServer};
use sutazai_types::ServiceErrorCode;
use tonic::{Request, Response, Status};

use crate::domain::documents::NewDocument;
use crate::domain::name::CollectionName;
use crate::domain::service::{DeleteSelector, VectorService};
use crate::domain::state::SearchOptions;
use crate::error::VectorError;

/// The scope reads (get, list, search, query) need.
const READ_SCOPE: &str = "vectors:read";
/// The scope writes (create, upsert, delete points, snapshot) need.
const WRITE_SCOPE: &str = "vectors:write";

/// The gRPC service over the use cases.
#[derive(Debug, Clone)]
pub(crate) struct VectorGrpc {
    service: VectorService,
    verifier: Arc<TokenVerifier>,
}

impl VectorGrpc {
    /// The tonic service to mount, decoding requests and encoding responses up to
    /// `max_message_bytes` (a larger response fails with `resource_exhausted` instead of being
    /// built and sent whole).
    pub(crate) fn into_service(
        service: VectorService,
        verifier: Arc<TokenVerifier>,
        max_message_bytes: usize,
    ) -> VectorServiceServer<Self> {
        VectorServiceServer::new(Self { service, verifier })
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        sutazai_kit::auth::authenticate_grpc(&self.verifier, request).await
    }

    /// Authenticates and requires `scope` (admins hold every scope).
    async fn authorize<T>(&self, request: &Request<T>, scope: &str) -> Result<Principal, Status> {
        let principal = self.authenticate(request).await?;
        if !principal.has_scope(scope) {
            return Err(sutazai_kit::grpc::status(
                ServiceErrorCode::Forbidden,
                format!("requires the `{scope}` scope"),
            ));
        }
        Ok(principal)
    }
}

/// The one mapping of a domain error to a status; internal errors are logged with their cause
/// chain and answered without detail.
fn to_status(error: VectorError) -> Status {
    match error.code() {
        ServiceErrorCode::Internal => sutazai_kit::grpc::internal_status(&error),
        code => sutazai_kit::grpc::status(code, error.to_string()),
    }
}

fn name(field: &str, text: &str) -> Result<CollectionName, Status> {
    CollectionName::parse(field, text).map_err(to_status)
}

fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[tonic::async_trait]
impl VectorRpc for VectorGrpc {
    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        self.authorize(&request, WRITE_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("name", &body.name)?;
        let metric = convert::metric(body.metric).map_err(to_status)?;
        let spec = crate::domain::spec::CollectionSpec::new(
            u64::from(body.dimension),
            metric,
            convert::index_config(body.index),
        )
        .map_err(to_status)?;
        let info = self.service.create_collection(collection_name, spec).await.map_err(to_status)?;
        Ok(Response::new(pb::CreateCollectionResponse { collection: Some(convert::collection(info)) }))
    }

    async fn get_collection(
        &self,
        request: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::GetCollectionResponse>, Status> {
        self.authorize(&request, READ_SCOPE).await?;
        let collection_name = name("name", &request.get_ref().name)?;
        let info = self.service.get_collection(&collection_name).map_err(to_status)?;
        Ok(Response::new(pb::GetCollectionResponse { collection: Some(convert::collection(info)) }))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        self.authorize(&request, READ_SCOPE).await?;
        let page = request.into_inner().page.unwrap_or_default();
        let listed =
            self.service.list_collections(to_usize(page.skip), to_usize(page.limit)).map_err(to_status)?;
        Ok(Response::new(pb::ListCollectionsResponse {
            page: Some(pb::PageInfo {
                total: listed.total as u64,
                skip: page.skip,
                limit: u32::try_from(listed.limit).unwrap_or(u32::MAX),
            }),
            collections: listed.collections.into_iter().map(convert::collection).collect(),
        }))
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let principal = self.authenticate(&request).await?;
        if !principal.is_admin() {
            return Err(sutazai_kit::grpc::status(
                ServiceErrorCode::Forbidden,
                format!("deleting a collection requires the `{ADMIN_ROLE}` role"),
            ));
        }
        let collection_name = name("name", &request.get_ref().name)?;
        self.service.delete_collection(&collection_name).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteCollectionResponse {}))
    }

    async fn upsert(
        &self,
        request: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        self.authorize(&request, WRITE_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let points = convert::points(body.points).map_err(to_status)?;
        let upserted = self.service.upsert(&collection_name, points).await.map_err(to_status)?;
        Ok(Response::new(pb::UpsertResponse { upserted }))
    }

    async fn delete_points(
        &self,
        request: Request<pb::DeletePointsRequest>,
    ) -> Result<Response<pb::DeletePointsResponse>, Status> {
        self.authorize(&request, WRITE_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let selector = match body.selector {
            Some(Selector::Ids(list)) => {
                let mut ids = Vec::with_capacity(list.ids.len());
                for (position, id) in list.ids.into_iter().enumerate() {
                    ids.push(convert::point_id(&format!("ids[{position}]"), Some(id)).map_err(to_status)?);
                }
                DeleteSelector::Ids(ids)
            }
            Some(Selector::Filter(filter)) => {
                DeleteSelector::Filter(convert::filter(filter, "filter", 1).map_err(to_status)?)
            }
            None => return Err(to_status(VectorError::validation("selector", "send `ids` or `filter`"))),
        };
        let deleted = self.service.delete_points(&collection_name, selector).await.map_err(to_status)?;
        Ok(Response::new(pb::DeletePointsResponse { deleted }))
    }

    async fn get_point(
        &self,
        request: Request<pb::GetPointRequest>,
    ) -> Result<Response<pb::GetPointResponse>, Status> {
        self.authorize(&request, READ_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let id = convert::point_id("id", body.id).map_err(to_status)?;
        let point = self.service.get_point(&collection_name, &id).map_err(to_status)?;
        Ok(Response::new(pb::GetPointResponse { point: Some(convert::stored_point(point)) }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        self.authorize(&request, READ_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let options = SearchOptions {
            k: to_usize(body.k),
            ef: body.ef.map(to_usize),
            nprobe: body.nprobe.map(to_usize),
            filter: convert::optional_filter(body.filter).map_err(to_status)?,
            with_payload: body.with_payload,
            with_vector: body.with_vector,
        };
        let queries = body.queries.into_iter().map(|query| query.vector).collect();
        let results = self.service.search(&collection_name, queries, options).await.map_err(to_status)?;
        Ok(Response::new(pb::SearchResponse {
            results: results
                .into_iter()
                .map(|hits| pb::SearchHits { hits: hits.into_iter().map(convert::scored_point).collect() })
                .collect(),
        }))
    }

    async fn upsert_documents(
        &self,
        request: Request<pb::UpsertDocumentsRequest>,
    ) -> Result<Response<pb::UpsertDocumentsResponse>, Status> {
        self.authorize(&request, WRITE_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let mut documents = Vec::with_capacity(body.documents.len());
        for (position, document) in body.documents.into_iter().enumerate() {
            documents.push(NewDocument {
                id: convert::point_id(&format!("documents[{position}].id"), document.id)
                    .map_err(to_status)?,
                text: document.text,
                payload: document.payload.as_ref().map(sutazai_proto::json::from_proto_struct),
            });
        }
        let upserted = self.service.upsert_documents(&collection_name, documents).await.map_err(to_status)?;
        Ok(Response::new(pb::UpsertDocumentsResponse { upserted }))
    }

    async fn query_documents(
        &self,
        request: Request<pb::QueryDocumentsRequest>,
    ) -> Result<Response<pb::QueryDocumentsResponse>, Status> {
        self.authorize(&request, READ_SCOPE).await?;
        let body = request.into_inner();
        let collection_name = name("collection", &body.collection)?;
        let options = SearchOptions {
            k: to_usize(body.k),
            filter: convert::optional_filter(body.filter).map_err(to_status)?,
            with_payload: body.with_payload,
            ..SearchOptions::default()
        };
        let hits =
            self.service.query_documents(&collection_name, body.text, options).await.map_err(to_status)?;
        Ok(Response::new(pb::QueryDocumentsResponse {
            hits: hits.into_iter().map(convert::scored_point).collect(),
        }))
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        self.authorize(&request, WRITE_SCOPE).await?;
        let collection_name = name("collection", &request.get_ref().collection)?;
        let info = self.service.snapshot(&collection_name).await.map_err(to_status)?;
        Ok(Response::new(pb::SnapshotResponse {
            created_at: Some(convert::timestamp(info.created_at)),
            point_count: info.point_count,
            size_bytes: info.size_bytes,
        }))
    }
}
