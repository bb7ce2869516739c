//! The published documents of the API are the ones the code generates:
//! `docs/openapi.json` (HTTP, from the handlers' utoipa attributes) and
//! `docs/asyncapi.json` (the WebSocket frames, from the protocol crate). Reviewers see
//! an API change in the diff of these files; this test fails when one is stale, and
//! `UPDATE_DOCS=1 cargo test -p chat-server --test documents` rewrites both.

use std::path::PathBuf;

fn check(file: &str, generated: String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().expect("docs/")).expect("create docs/");
        std::fs::write(&path, &generated).expect("write the document");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/{file} is out of date: run `UPDATE_DOCS=1 cargo test -p chat-server --test documents`"
    );
}

#[test]
fn the_committed_openapi_document_is_current() {
    check("openapi.json", chat_server::http::openapi::document_json());
}

#[test]
fn the_committed_asyncapi_document_is_current() {
    check("asyncapi.json", chat_protocol::asyncapi::document_json());
}

#[test]
fn the_asyncapi_document_is_asyncapi_3_with_every_frame_type() {
    let doc: serde_json::Value =
        serde_json::from_str(&chat_protocol::asyncapi::document_json()).expect("JSON");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["socket"]["address"], "/api/v1/ws");
    let sent = doc["operations"]["sendClientFrame"]["messages"]
        .as_array()
        .expect("client frames");
    let received = doc["operations"]["receiveServerFrame"]["messages"]
        .as_array()
        .expect("server frames");
    assert_eq!(
        sent.len(),
        9,
        "auth, send, edit, delete, react, typing, read, sync, ping"
    );
    assert_eq!(received.len(), 14, "{received:?}");
    // Every reference resolves inside the document.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let pointer = reference.split('"').next().unwrap_or_default();
        let pointer = pointer.trim_start_matches('#');
        assert!(
            doc.pointer(pointer).is_some(),
            "the reference #{pointer} resolves to nothing"
        );
    }
}
