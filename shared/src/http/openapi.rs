//! The API's OpenAPI 3.1 description, made from the code: each function's routes carry their
//! own (`#[utoipa::path]` on the handlers, schemas derived from the request and view types);
//! this module adds what every operation shares — the bearer security scheme, the error
//! responses, `GET /health` — and merges the four.

use utoipa::{
    Modify, OpenApi, PartialSchema, ToSchema,
    openapi::{
        self, Content, HttpMethod, PathItem, Ref, RefOr,
        header::HeaderBuilder,
        path::{Operation, OperationBuilder},
        response::{Response, ResponseBuilder},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{
    app::error::{ErrorBody, ErrorDetail, Limit},
    http::health::{DependencyCheck, HealthReport},
};

/// The name of the security scheme: a Supabase access token as `Authorization: Bearer`.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chat backend API",
        description = "A personal Letta agent with long-term memory per user, billed to the \
            user's own LiteLLM key under a budget; identities from Supabase Auth; replies \
            streamed over SSE. Every error is `{\"error\": {\"code\", \"message\", …}}`; \
            `Retry-After` comes with 429 and 503.",
        license(name = "MIT OR Apache-2.0"),
    ),
    security(("bearer" = [])),
    components(schemas(ErrorBody, ErrorDetail, Limit, HealthReport, DependencyCheck)),
    tags(
        (name = "auth", description = "Registration, sessions, account deletion"),
        (name = "chat", description = "Messages streamed over SSE, history, conversations"),
        (name = "user", description = "Profile, models, usage, budget, export"),
        (name = "agent", description = "The agent's status, memory and reset"),
        (name = "health", description = "Liveness and dependency checks"),
    ),
    modifiers(&Shared)
)]
struct Base;

/// The security scheme, the shared error responses and `GET /health`.
struct Shared;

/// The shared error responses: status, component name, what it means.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Malformed input (JSON that does not parse, a bad header).",
    ),
    (
        "401",
        "Unauthorized",
        "No valid access token (`WWW-Authenticate: Bearer`).",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body or the message is too long.",
    ),
    (
        "422",
        "ValidationFailed",
        "A field with a value that is not allowed (`field` names it).",
    ),
    (
        "429",
        "RateLimited",
        "A rate limit is used up (`Retry-After`).",
    ),
    (
        "500",
        "InternalError",
        "A bug on our side; details only in the logs.",
    ),
    (
        "502",
        "UpstreamError",
        "A dependency answered in a way that cannot be used.",
    ),
    (
        "503",
        "DependencyUnavailable",
        "A dependency is down or overloaded (`Retry-After`).",
    ),
];

fn error_response(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(u64::schema()))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

impl Modify for Shared {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The Supabase access token from register, login or refresh.",
                    ))
                    .build(),
            ),
        );
        for (status, name, description) in ERRORS {
            let retry_after = matches!(*status, "429" | "503");
            components.responses.insert(
                (*name).into(),
                error_response(description, retry_after).into(),
            );
        }
        let health = OperationBuilder::new()
            .tag("health")
            .operation_id(Some("health"))
            .summary(Some("Liveness and a check of each dependency"))
            .description(Some(
                "Each Lambda function answers it for its own dependencies; the local gateway \
                 for all four. Checks are reused for `HEALTH_CACHE_SECS`.",
            ))
            .security(openapi::security::SecurityRequirement::default())
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Every dependency is up.")
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(HealthReport::name()))),
                    ),
            )
            .response(
                "503",
                ResponseBuilder::new()
                    .description("A dependency is down (`failing` names it; `Retry-After`).")
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(HealthReport::name()))),
                    )
                    .header(
                        "Retry-After",
                        HeaderBuilder::new().schema(Some(u64::schema())).build(),
                    ),
            )
            .build();
        doc.paths
            .paths
            .insert("/health".into(), PathItem::new(HttpMethod::Get, health));
    }
}

/// Adds the shared error responses an operation can give and does not list itself: 401 where
/// it needs a token, the rest everywhere.
fn add_error_responses(doc: &mut openapi::OpenApi) {
    let secured_by_default = doc.security.as_ref().is_some_and(|s| !s.is_empty());
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().map_or(secured_by_default, |s| {
                s.iter().any(|r| r != &Default::default())
            });
            add_to(operation, secured);
        }
    }
}

fn add_to(operation: &mut Operation, secured: bool) {
    for (status, name, _) in ERRORS {
        if *status == "401" && !secured {
            continue;
        }
        operation
            .responses
            .responses
            .entry((*status).into())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

/// The whole description: the shared parts and each function's routes.
pub fn document(functions: impl IntoIterator<Item = openapi::OpenApi>) -> openapi::OpenApi {
    let mut doc = Base::openapi();
    for part in functions {
        doc.merge(part);
    }
    add_error_responses(&mut doc);
    doc
}
