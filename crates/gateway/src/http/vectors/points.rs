//! Point routes: upsert, delete and read one, with point ids and payloads as JSON carries them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sutazai_kit::auth::Principal;
use sutazai_kit::http::ApiError;
use sutazai_proto::json::{from_proto_struct, to_proto_struct};
use sutazai_proto::v1 as pb;
use sutazai_proto::v1::delete_points_request::Selector;
use sutazai_proto::v1::point_id::Kind as PointIdKind;
use sutazai_types::ServiceErrorCode;
use utoipa::ToSchema;

use super::filter::parse_filter;
use super::{READ_SCOPE, WRITE_SCOPE, require_collection_access};
use crate::downstream::VECTOR;
use crate::http::AppState;

/// A string point id is at most this long (the vector contract's bound).
const MAX_ID_BYTES: usize = 256;

/// A point id: a string or an unsigned integer; `"7"` and `7` are different ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum PointIdJson {
    // Tried first, so a JSON integer is a numeric id and a JSON string never is.
    Num(u64),
    Str(String),
}

impl PointIdJson {
    pub(super) fn into_proto(self, field: &str) -> Result<pb::PointId, ApiError> {
        let kind = match self {
            Self::Num(number) => PointIdKind::Num(number),
            Self::Str(text) => {
                if text.is_empty() || text.len() > MAX_ID_BYTES {
                    return Err(ApiError::validation(field, format!("must be 1 to {MAX_ID_BYTES} bytes")));
                }
                PointIdKind::Str(text)
            }
        };
        Ok(pb::PointId { kind: Some(kind) })
    }

    pub(super) fn from_proto(id: Option<pb::PointId>) -> Option<Self> {
        match id?.kind? {
            PointIdKind::Num(number) => Some(Self::Num(number)),
            PointIdKind::Str(text) => Some(Self::Str(text)),
        }
    }
}

/// Refuses a vector with a NaN or infinite component. JSON has no NaN, but a number beyond the
/// f32 range (say 1e39) becomes infinity when read as f32.
pub(super) fn check_finite(field: &str, vector: &[f32]) -> Result<(), ApiError> {
    if vector.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    match vector.iter().position(|component| !component.is_finite()) {
        None => Ok(()),
        Some(index) => {
            Err(ApiError::validation(field, format!("component {index} is not a finite 32-bit number")))
        }
    }
}

pub(super) fn payload_struct(payload: Option<&Map<String, Value>>) -> Option<prost_types::Struct> {
    payload.map(to_proto_struct)
}

pub(super) fn payload_json(payload: Option<&prost_types::Struct>) -> Value {
    payload.map(|fields| Value::Object(from_proto_struct(fields))).unwrap_or(Value::Null)
}

/// One point to upsert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointSpec {
    id: PointIdJson,
    /// Exactly the collection's dimension of finite numbers.
    vector: Vec<f32>,
    /// Any JSON object; filters address its fields by dotted path.
    #[schema(value_type = Option<Object>)]
    payload: Option<Map<String, Value>>,
}

/// `PUT /api/v1/vectors/collections/{name}/points`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpsertPoints {
    points: Vec<PointSpec>,
}

/// How many points a write stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Upserted {
    pub(super) upserted: u64,
}

#[utoipa::path(put, path = "/api/v1/vectors/collections/{name}/points", tag = "vectors",
    params(("name" = String, Path)), request_body = UpsertPoints,
    responses((status = 200, body = Upserted), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn upsert_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<UpsertPoints>,
) -> Result<Json<Upserted>, ApiError> {
    require_collection_access(&principal, WRITE_SCOPE, &name)?;
    if body.points.is_empty() {
        return Err(ApiError::validation("points", "must hold at least one point"));
    }
    // A batch is all or nothing, so the first bad point refuses the whole request.
    let mut points = Vec::with_capacity(body.points.len());
    for (index, point) in body.points.into_iter().enumerate() {
        check_finite(&format!("points[{index}].vector"), &point.vector)?;
        points.push(pb::Point {
            id: Some(point.id.into_proto(&format!("points[{index}].id"))?),
            payload: payload_struct(point.payload.as_ref()),
            vector: point.vector,
        });
    }
    let request = pb::UpsertRequest { collection: name, points };
    // The service answers only once the write is durable, so a 200 here means acknowledged.
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().upsert(request)).await?;
    Ok(Json(Upserted { upserted: response.upserted }))
}

/// `POST /api/v1/vectors/collections/{name}/points/delete`: exactly one of `ids` and `filter`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeletePoints {
    ids: Option<Vec<PointIdJson>>,
    /// `{"must":[...], "should":[...], "must_not":[...]}`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

/// How many points a delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    deleted: u64,
}

#[utoipa::path(post, path = "/api/v1/vectors/collections/{name}/points/delete", tag = "vectors",
    params(("name" = String, Path)), request_body = DeletePoints,
    responses((status = 200, body = Deleted), (status = 400), (status = 403), (status = 404), (status = 422),
        (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn delete_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    sutazai_kit::http::Json(body): sutazai_kit::http::Json<DeletePoints>,
) -> Result<Json<Deleted>, ApiError> {
    require_collection_access(&principal, WRITE_SCOPE, &name)?;
    let selector = match (body.ids, body.filter) {
        (Some(ids), None) => {
            let mut point_ids = Vec::with_capacity(ids.len());
            for (index, id) in ids.into_iter().enumerate() {
                point_ids.push(id.into_proto(&format!("ids[{index}]"))?);
            }
            Selector::Ids(pb::PointIdList { ids: point_ids })
        }
        (None, Some(filter)) => Selector::Filter(parse_filter(&filter)?),
        _ => return Err(ApiError::validation("ids", "send exactly one of `ids` and `filter`")),
    };
    let request = pb::DeletePointsRequest { collection: name, selector: Some(selector) };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().delete_points(request)).await?;
    Ok(Json(Deleted { deleted: response.deleted }))
}

/// How to read the `{id}` path segment of a point.
#[derive(Debug, Deserialize)]
pub(crate) struct PointIdQuery {
    /// `string` or `number`; absent: a canonical unsigned integer is a number, anything else a string.
    id_type: Option<String>,
}

/// A path segment is text, so `"7"` and `7` cannot be told apart by the segment alone: a canonical
/// integer (no sign, no leading zero) is read as the numeric id, and `?id_type=string` reaches a
/// string id made of digits.
fn path_point_id(segment: &str, id_type: Option<&str>) -> Result<pb::PointId, ApiError> {
    let numeric = segment.parse::<u64>().ok().filter(|number| number.to_string() == segment);
    let id = match (id_type, numeric) {
        (Some("string"), _) | (None, None) => PointIdJson::Str(segment.to_owned()),
        (Some("number"), Some(number)) | (None, Some(number)) => PointIdJson::Num(number),
        (Some("number"), None) => {
            return Err(ApiError::new(ServiceErrorCode::BadRequest, "id: not an unsigned integer"));
        }
        (Some(_), _) => return Err(ApiError::validation("id_type", "must be `string` or `number`")),
    };
    id.into_proto("id")
}

/// A stored point.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PointView {
    id: Option<PointIdJson>,
    vector: Vec<f32>,
    #[schema(value_type = Object)]
    payload: Value,
}

#[utoipa::path(get, path = "/api/v1/vectors/collections/{name}/points/{id}", tag = "vectors",
    params(("name" = String, Path), ("id" = String, Path), ("id_type" = Option<String>, Query)),
    responses((status = 200, body = PointView), (status = 400), (status = 403), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_point(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, id)): Path<(String, String)>,
    query: Result<Query<PointIdQuery>, QueryRejection>,
) -> Result<Json<PointView>, ApiError> {
    require_collection_access(&principal, READ_SCOPE, &name)?;
    // axum's own rejection is plain text; every error of this API is a problem document.
    let Query(query) =
        query.map_err(|rejection| ApiError::new(ServiceErrorCode::BadRequest, rejection.body_text()))?;
    let request =
        pb::GetPointRequest { id: Some(path_point_id(&id, query.id_type.as_deref())?), collection: name };
    let response = state.downstreams.call(VECTOR, state.downstreams.vector().get_point(request)).await?;
    let point = response.point.ok_or_else(|| ApiError::new(ServiceErrorCode::NotFound, "point not found"))?;
    Ok(Json(PointView {
        payload: payload_json(point.payload.as_ref()),
        id: PointIdJson::from_proto(point.id),
        vector: point.vector,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn point_ids_from_json_and_path() {
        assert_eq!(serde_json::from_value::<PointIdJson>(json!(7)).unwrap(), PointIdJson::Num(7));
        assert_eq!(
            serde_json::from_value::<PointIdJson>(json!("7")).unwrap(),
            PointIdJson::Str("7".to_owned())
        );
        assert!(serde_json::from_value::<PointIdJson>(json!(-1)).is_err());
        assert!(PointIdJson::Str(String::new()).into_proto("id").is_err());

        let numeric = |id: pb::PointId| matches!(id.kind, Some(PointIdKind::Num(_)));
        assert!(numeric(path_point_id("7", None).unwrap()));
        assert!(!numeric(path_point_id("007", None).unwrap()));
        assert!(!numeric(path_point_id("7", Some("string")).unwrap()));
        assert!(!numeric(path_point_id("doc-1", None).unwrap()));
        assert!(path_point_id("doc-1", Some("number")).is_err());
        assert!(path_point_id("7", Some("uuid")).is_err());
    }

    #[test]
    fn vectors_must_be_finite() {
        let error = check_finite("points[3].vector", &[0.5, f32::INFINITY]).unwrap_err();
        assert_eq!(error.code(), ServiceErrorCode::ValidationFailed);
        assert!(error.detail().starts_with("points[3].vector: component 1"));
        // A number beyond f32's range parses, as infinity, and is then refused.
        let body: UpsertPoints =
            serde_json::from_value(json!({"points": [{"id": 1, "vector": [1e39]}]})).unwrap();
        assert!(check_finite("points[0].vector", &body.points[0].vector).is_err());
    }
}
