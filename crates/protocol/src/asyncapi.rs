//! The AsyncAPI 3.0 document of the WebSocket protocol (`GET /api/v1/ws`, DESIGN.md
//! §5), generated from [`ClientFrame`] and [`ServerFrame`]: one message per frame
//! type, each with the JSON Schema of its frame, so the document cannot drift from
//! the types the server and the clients decode.
//!
//! The server serves it at `GET /api/v1/asyncapi.json`, and it is committed as
//! `docs/asyncapi.json`; a test fails when that file is stale
//! (`UPDATE_DOCS=1 cargo test -p chat-server --test documents` rewrites it).

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use crate::ws::{ClientFrame, ServerFrame};
use crate::{AUTH_TIMEOUT_MS, MAX_FRAME_BYTES, close};

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = serde_json::to_string_pretty(&document())
        .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"));
    json.push('\n');
    json
}

pub fn document() -> Value {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    ClientFrame::schemas(&mut schemas);
    ServerFrame::schemas(&mut schemas);
    let client = frames("client", ClientFrame::schema());
    let server = frames("server", ServerFrame::schema());

    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    for (name, message) in client.iter().chain(server.iter()) {
        messages.insert(name.clone(), message.clone());
        channel_messages.insert(
            name.clone(),
            json!({"$ref": format!("#/components/messages/{name}")}),
        );
    }
    let refs = |frames: &[(String, Value)]| -> Vec<Value> {
        frames
            .iter()
            .map(|(name, _)| json!({"$ref": format!("#/channels/socket/messages/{name}")}))
            .collect()
    };
    let schemas: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "chat WebSocket protocol",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(),
        },
        "defaultContentType": "application/json",
        "channels": {
            "socket": {
                "address": "/api/v1/ws",
                "title": "One user's WebSocket connection",
                "description": "Text frames, one JSON object each, tagged by `type`. The first client frame is `auth` (or the upgrade carries `Authorization: Bearer`); the server checks `Origin` against the allowed origins.",
                "messages": channel_messages,
            }
        },
        "operations": {
            "sendClientFrame": {
                "action": "send",
                "title": "What a client sends",
                "channel": {"$ref": "#/channels/socket"},
                "messages": refs(&client),
            },
            "receiveServerFrame": {
                "action": "receive",
                "title": "What a client receives",
                "channel": {"$ref": "#/channels/socket"},
                "messages": refs(&server),
            }
        },
        "components": {
            "messages": messages,
            "schemas": schemas,
        }
    })
}

fn description() -> String {
    format!(
        "The real-time half of the chat API. Send `auth` within {} ms of connecting, \
         then any other client frame; frames larger than {} bytes close the socket.\n\n\
         Close codes: {} unauthenticated or token expired, {} auth timeout, {} too many frames, \
         {} protocol error, {} invalid UTF-8, {} policy (bad origin), {} frame too large, \
         {} going away, {}/{} server or dependency failure.",
        AUTH_TIMEOUT_MS,
        MAX_FRAME_BYTES,
        close::UNAUTHENTICATED,
        close::AUTH_TIMEOUT,
        close::TOO_MANY_FRAMES,
        close::PROTOCOL_ERROR,
        close::INVALID_UTF8,
        close::POLICY,
        close::TOO_LARGE,
        close::GOING_AWAY,
        close::SERVER_ERROR,
        close::TRY_AGAIN_LATER,
    )
}

/// One AsyncAPI message per variant of a frame enum (its `oneOf`), named
/// `{side}.{type}` after the `type` tag.
fn frames(side: &str, schema: RefOr<Schema>) -> Vec<(String, Value)> {
    let schema = serde_json::to_value(schema).unwrap_or(Value::Null);
    let variants = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants
        .into_iter()
        .map(|variant| {
            let tag = frame_type(&variant).unwrap_or_else(|| "unknown".to_owned());
            let name = format!("{side}.{tag}");
            let mut message = json!({
                "name": tag,
                "title": format!("{side} frame `{tag}`"),
                "contentType": "application/json",
                "payload": variant,
            });
            if let Some(text) = variant.get("description").cloned() {
                message["summary"] = text;
            }
            (name, message)
        })
        .collect()
}

/// The `type` tag of a variant's schema: an object's `properties.type.enum[0]`,
/// or that of one of the parts of an `allOf` (a variant that wraps a struct).
fn frame_type(variant: &Value) -> Option<String> {
    if let Some(tag) = variant
        .pointer("/properties/type/enum/0")
        .and_then(Value::as_str)
    {
        return Some(tag.to_owned());
    }
    variant
        .get("allOf")?
        .as_array()?
        .iter()
        .find_map(frame_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_type_is_a_message() {
        let doc = document();
        let messages = doc["components"]["messages"].as_object().unwrap();
        for name in [
            "client.auth",
            "client.send",
            "client.edit",
            "client.delete",
            "client.react",
            "client.typing",
            "client.read",
            "client.sync",
            "client.ping",
            "server.ready",
            "server.ack",
            "server.message",
            "server.edited",
            "server.deleted",
            "server.reaction",
            "server.presence",
            "server.conversation",
            "server.removed",
            "server.synced",
            "server.error",
            "server.pong",
        ] {
            assert!(
                messages.contains_key(name),
                "no message {name}: {:?}",
                messages.keys()
            );
        }
        assert!(doc["components"]["schemas"]["Message"].is_object());
        assert!(doc["components"]["schemas"]["ErrorCode"].is_object());
    }
}
