//! The OpenAPI document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and the protocol crate's schemas, then completed by rules that follow
//! from the extractors every handler shares, so no handler can forget them:
//!
//! - [`SecuritySchemes`]: the bearer access token (`AuthUser`).
//! - [`ErrorResponses`]: the refusals an extractor or a dependency gives on any
//!   operation that has it (401 without a token, 400 for a body or query that does
//!   not parse, 404 for a path id that is not an id, 413 past [`MAX_BODY_BYTES`], 503
//!   when a dependency is down), merged into what each handler documents itself;
//!   every error status lists, in its description, the `ErrorCode`s it carries.
//! - [`Links`]: which response feeds which operation (a created conversation's id
//!   into its messages, a sent message's ids into its edit), so a client, or the
//!   fuzzer's stateful phase, can follow them.
//!
//! The document is also committed as `docs/openapi.json`; a test fails when it is
//! stale (`UPDATE_DOCS=1 cargo test -p chat-server --test documents` rewrites it).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use chat_protocol::ErrorCode;
use chat_protocol::http::ErrorBody;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, RefOr, ResponseBuilder, Type as SchemaType, link::LinkBuilder,
};

use super::{MAX_BODY_BYTES, auth, conversations, messages, ops, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat",
        description = "Real-time chat: the HTTP API under `/api/v1`.\n\n\
            Every error is `{\"error\":{\"code\",\"message\"}}` (`ErrorBody`); each response's description lists the codes its status carries. \
            An unknown path under `/api/` answers 404 `not_found`; a known path with another method answers 405 `method_not_allowed` with `Allow`.\n\n\
            Authenticate with `Authorization: Bearer <access_token>` from sign-up, login or refresh. \
            The refresh token travels only in the `chat_refresh` cookie (HttpOnly, SameSite=Strict, Path=/api/v1/auth); \
            refresh and logout also need the `x-chat-csrf` header.\n\n\
            The WebSocket protocol at `/api/v1/ws` is described by the AsyncAPI document at `/api/v1/asyncapi.json`."
    ),
    servers((url = "/api/v1")),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout,
        users::me, users::update, users::search,
        conversations::create, conversations::list, conversations::get_one, conversations::update,
        conversations::add_members, conversations::remove_member,
        messages::history, messages::send, messages::get_one, messages::edit,
        messages::delete, messages::react, messages::unreact, messages::search,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(ErrorCode)),
    modifiers(&SecuritySchemes, &ErrorResponses, &Links, &AtLeastOneChange),
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` (and `/openapi.json`), generated once.
pub async fn serve_openapi() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    json_document(DOCUMENT.get_or_init(document_json))
}

/// `GET /api/v1/asyncapi.json`: the WebSocket protocol, from the protocol crate.
pub async fn serve_asyncapi() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    json_document(DOCUMENT.get_or_init(chat_protocol::asyncapi::document_json))
}

fn json_document(json: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    spell_link_fields_as_openapi_does(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"));
    json.push('\n');
    json
}

/// utoipa 5.5 serializes a link's fields in snake_case (`operation_id`), which no
/// OpenAPI reader understands: rename them to the specification's camelCase.
fn spell_link_fields_as_openapi_does(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_owned(), value);
            }
        }
    }
}

/// `PATCH /conversations/{id}` must name a change: `minProperties: 1`, set here
/// because utoipa 5.5's `min_properties` attribute writes `maxProperties` instead.
struct AtLeastOneChange;

impl utoipa::Modify for AtLeastOneChange {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let name = <chat_protocol::http::UpdateConversation as utoipa::ToSchema>::name();
        let schema = openapi
            .components
            .as_mut()
            .and_then(|components| components.schemas.get_mut(name.as_ref()));
        if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(object))) = schema {
            object.min_properties = Some(1);
        }
    }
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of sign-up, login or refresh (a JWT valid for `expires_in` seconds).",
                    ))
                    .build(),
            ),
        );
    }
}

/// A refusal some extractor or dependency gives: its status, its code and when.
struct Refusal {
    status: &'static str,
    code: ErrorCode,
    when: String,
}

/// The refusals an operation can give because of what it takes.
fn shared_refusals(operation: &Operation) -> Vec<Refusal> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let takes = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
    let has_body = operation.request_body.is_some();
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let operations_endpoint = operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|t| t == "operations"));
    let mut refusals = Vec::new();
    if has_body || takes(ParameterIn::Query) {
        refusals.push(Refusal {
            status: "400",
            code: ErrorCode::InvalidInput,
            when: "the body or the query is not what the schema describes (a missing field, a wrong type, a value out of range)".into(),
        });
    }
    if secured {
        refusals.push(Refusal {
            status: "401",
            code: ErrorCode::Unauthenticated,
            when: "no valid bearer access token (missing, malformed or expired): refresh it".into(),
        });
    }
    if takes(ParameterIn::Path) {
        refusals.push(Refusal {
            status: "404",
            code: ErrorCode::NotFound,
            when: "no such resource, one the caller may not know exists, or a path id that is not an id".into(),
        });
    }
    if has_body {
        refusals.push(Refusal {
            status: "408",
            code: ErrorCode::RequestTimeout,
            when: "the body did not arrive within the server's body timeout (`CHAT_BODY_READ_TIMEOUT_MS`, 30 s by default); the connection is closed".into(),
        });
        refusals.push(Refusal {
            status: "413",
            code: ErrorCode::TooLarge,
            when: format!("the body is larger than {} KiB", MAX_BODY_BYTES / 1024),
        });
    }
    if !operations_endpoint {
        refusals.push(Refusal {
            status: "503",
            code: ErrorCode::Unavailable,
            when: "a dependency (database, cache or message log) is down, or history is behind the log for a change that must be judged against it: try again shortly".into(),
        });
    }
    refusals
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            <ErrorBody as utoipa::ToSchema>::name(),
        ))))
        .build()
}

struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                for refusal in shared_refusals(operation) {
                    let named = format!("`{}`", refusal.code);
                    let line = format!("- {named}: {}", refusal.when);
                    let responses = &mut operation.responses.responses;
                    match responses.get_mut(refusal.status) {
                        Some(RefOr::T(response)) => {
                            if !response.description.contains(&named) {
                                response.description = format!("{}\n{line}", response.description);
                            }
                        }
                        Some(RefOr::Ref(_)) => {}
                        None => {
                            let response = ResponseBuilder::new()
                                .description(line)
                                .content("application/json", error_content())
                                .build();
                            responses.insert(refusal.status.to_owned(), RefOr::T(response));
                        }
                    }
                }
                if let Some(RefOr::T(limited)) = operation.responses.responses.get_mut("429") {
                    limited.headers.insert(
                        "Retry-After".to_owned(),
                        HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(SchemaType::Integer)
                                    .minimum(Some(1)),
                            )
                            .description(Some("seconds to wait before trying again"))
                            .build(),
                    );
                }
            }
        }
    }
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// One OpenAPI link: the `status` response of operation `from` gives operation `to`
/// its `parameters`, as runtime expressions on that response (`$response.body#/…`)
/// or constants.
struct Link {
    from: &'static str,
    status: &'static str,
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
}

const fn link(
    (from, status): (&'static str, &'static str),
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link {
        from,
        status,
        name,
        to,
        parameters,
    }
}

/// A conversation's id in a response that is a conversation.
const CONVERSATION: &[(&str, &str)] = &[("id", "$response.body#/id")];
/// A conversation's id and its first member's (in a group, the creator).
const FIRST_MEMBER: &[(&str, &str)] = &[
    ("id", "$response.body#/id"),
    ("user_id", "$response.body#/members/0/user/id"),
];
/// A message's ids in a response that is a message.
const MESSAGE: &[(&str, &str)] = &[
    ("id", "$response.body#/conversation_id"),
    ("message_id", "$response.body#/id"),
];
/// A message's ids and an emoji (a constant: no response carries one to react with).
const REACTION: &[(&str, &str)] = &[
    ("id", "$response.body#/conversation_id"),
    ("message_id", "$response.body#/id"),
    ("emoji", "👍"),
];
const CREATED: (&str, &str) = ("create_conversation", "201");
const SENT: (&str, &str) = ("send_message", "201");

/// Which response feeds which operation.
const LINKS: &[Link] = &[
    link(CREATED, "GetConversation", "get_conversation", CONVERSATION),
    link(
        CREATED,
        "UpdateConversation",
        "update_conversation",
        CONVERSATION,
    ),
    link(CREATED, "AddMembers", "add_members", CONVERSATION),
    link(CREATED, "SendMessage", "send_message", CONVERSATION),
    link(CREATED, "History", "history", CONVERSATION),
    link(CREATED, "Leave", "remove_member", FIRST_MEMBER),
    link(
        CREATED,
        "Search",
        "search",
        &[("conversation_id", "$response.body#/id")],
    ),
    link(
        ("get_conversation", "200"),
        "SendMessage",
        "send_message",
        CONVERSATION,
    ),
    link(
        ("add_members", "200"),
        "RemoveMember",
        "remove_member",
        FIRST_MEMBER,
    ),
    link(SENT, "GetMessage", "get_message", MESSAGE),
    link(SENT, "EditMessage", "edit_message", MESSAGE),
    link(SENT, "DeleteMessage", "delete_message", MESSAGE),
    link(SENT, "React", "react", REACTION),
    link(SENT, "Unreact", "unreact", REACTION),
    link(
        SENT,
        "HistoryBefore",
        "history",
        &[
            ("id", "$response.body#/conversation_id"),
            ("before", "$response.body#/id"),
        ],
    ),
    link(
        ("edit_message", "200"),
        "GetMessage",
        "get_message",
        MESSAGE,
    ),
];

struct Links;

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let Some(id) = operation.operation_id.clone() else {
                    continue;
                };
                for Link {
                    from,
                    status,
                    name,
                    to,
                    parameters,
                } in LINKS
                {
                    if *from != id {
                        continue;
                    }
                    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status)
                    {
                        let link = parameters
                            .iter()
                            .fold(
                                LinkBuilder::new().operation_id(*to),
                                |link, (name, value)| link.parameter(*name, *value),
                            )
                            .build();
                        response.links.insert((*name).to_owned(), RefOr::T(link));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, Operation)> {
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            let mut item = item.clone();
            for op in operations_mut(&mut item) {
                all.push((path.clone(), op.clone()));
            }
        }
        all
    }

    #[test]
    fn operation_ids_are_unique_and_every_link_names_one() {
        let doc = ApiDoc::openapi();
        let mut ids: Vec<String> = operations(&doc)
            .into_iter()
            .map(|(path, op)| {
                op.operation_id
                    .unwrap_or_else(|| panic!("{path} has no operation id"))
            })
            .collect();
        ids.sort();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operation ids: {ids:?}");
        for Link { from, to, .. } in LINKS {
            assert!(ids.iter().any(|id| id == from), "link from unknown {from}");
            assert!(ids.iter().any(|id| id == to), "link to unknown {to}");
        }
    }

    #[test]
    fn every_error_status_names_its_codes() {
        for (path, op) in operations(&ApiDoc::openapi()) {
            for (status, response) in &op.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                    assert!(
                        response.description.contains('`'),
                        "{path} {status}: the description names no error code: {}",
                        response.description
                    );
                }
            }
        }
    }
}
