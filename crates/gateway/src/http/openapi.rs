//! The OpenAPI 3.1 document of this API, generated from the handlers' annotations, served at
//! `/openapi.json`, and Swagger UI at `/docs`.

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{admin, agents, chat, conversations, hardware, health, resources, tasks, vectors, workflows};

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "SutazAI API", description = "The public REST API of SutazAI (see shared/API.md)."),
    paths(
        health::health, health::detailed, health::breakers, health::reset_breakers,
        chat::chat, chat::chat_stream, chat::batch, chat::models,
        conversations::list, conversations::get, conversations::delete,
        tasks::submit_task, tasks::get_task, tasks::list_tasks, tasks::cancel_task, tasks::task_events,
        workflows::submit_workflow, workflows::get_workflow,
        agents::list_agents, agents::get_agent, agents::get_strategy, agents::set_strategy,
        admin::cache_stats, admin::cache_clear, admin::audit,
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "health"), (name = "chat"), (name = "tasks"), (name = "workflows"), (name = "agents"),
        (name = "cache"), (name = "audit"),
    )
)]
pub(crate) struct ApiDoc;

/// The whole document served at `/openapi.json`: the core API plus vectors, hardware and resources.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
        .merge_from(vectors::VectorsDoc::openapi())
        .merge_from(hardware::HardwareDoc::openapi())
        .merge_from(resources::ResourcesDoc::openapi())
}

/// `/openapi.json` and `/docs`. Swagger UI loads its own scripts and styles, so it gets a CSP that
/// allows them from this origin (the kit's default CSP allows nothing).
pub(crate) fn routes() -> Router {
    let csp = HeaderValue::from_static(
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    );
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, csp))
}
