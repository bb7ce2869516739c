//! The HTTP API as a contract (issue 14): under `/api/` an unknown path is a JSON
//! 404 and a wrong method a JSON 405 with `Allow`, never the web client's page; the
//! documents are served; and the error paths answer statuses and codes their
//! operations document. (Every reply of every test made through the test-support
//! `Api` is checked against the document too; this test walks the error paths on
//! purpose, so none of them goes unchecked.)

use chat_protocol::http::{ErrorBody, Message, SendMessage, SignupRequest};
use chat_test_support::api::Reply;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::chat;

#[track_caller]
fn expect_json_error(reply: &Reply, status: StatusCode, code: &str) {
    reply.expect_error(status, code);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}: the error is JSON, not {:?}",
        reply.what,
        reply.header("content-type")
    );
}

#[tokio::test]
async fn an_unknown_api_path_is_a_json_404_and_other_paths_are_the_web_client() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    for path in ["/nope", "/conversations/1/nope", "/auth", "/openapi.yaml"] {
        expect_json_error(&alice.get(path).await, StatusCode::NOT_FOUND, "not_found");
    }
    // Outside /api/v1 but under /api/: still the API's answer.
    for path in ["/api", "/api/v2/users", "/api/"] {
        let reply = alice
            .api
            .send(
                format!("GET {path}"),
                reqwest::Client::new().get(server.endpoint.http(path)),
            )
            .await;
        expect_json_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
    // The single-page app owns every other path.
    let (status, page) = server.get_text("/conversations/5").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<title>chat</title>"), "{page}");
}

#[tokio::test]
async fn a_known_path_with_another_method_is_a_405_that_lists_the_allowed_ones() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    for (method, path, allowed) in [
        (Method::DELETE, "/me", "GET,HEAD,PATCH"),
        (Method::PUT, "/conversations", "GET,HEAD,POST"),
        (
            Method::POST,
            "/conversations/1/messages/2",
            "DELETE,GET,HEAD,PATCH",
        ),
        (Method::GET, "/auth/signup", "POST"),
        (Method::DELETE, "/openapi.json", "GET,HEAD"),
    ] {
        let reply = alice
            .api
            .send(
                format!("{method} {path}"),
                alice.api.request(method.clone(), path),
            )
            .await;
        expect_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        let mut allow: Vec<&str> = reply
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
    }
    // The operations endpoints at the root too.
    let reply = alice
        .api
        .send(
            "POST /healthz".into(),
            reqwest::Client::new().post(server.endpoint.http("/healthz")),
        )
        .await;
    expect_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn the_openapi_and_asyncapi_documents_are_served_and_complete() {
    let server = chat().start().await;
    let (status, body) = server.get_text("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("OpenAPI is JSON");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let needs_token = !path.starts_with("/auth/")
                && !["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
            assert_eq!(secured, needs_token, "{method} {path}: security");
            if secured {
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path}: no 401"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    // Constraints the server enforces are in the schemas.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SignupRequest"]["properties"]["username"]["maxLength"],
        32
    );
    assert_eq!(
        schemas["SendMessage"]["properties"]["body"]["maxLength"],
        4000
    );
    assert!(schemas["UserId"]["pattern"].is_string());
    // One rule for every name people see, so one pattern.
    let display_name = &schemas["SignupRequest"]["properties"]["display_name"]["pattern"];
    assert!(
        display_name.as_str().is_some_and(|p| p.contains("\\u202e")),
        "{display_name}"
    );
    assert_eq!(
        &schemas["UpdateConversation"]["properties"]["title"]["pattern"],
        display_name
    );
    // The refresh cookie and the CSRF header.
    let refresh = &doc["paths"]["/auth/refresh"]["post"]["parameters"];
    let names: Vec<(&str, &str)> = refresh
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["in"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(names.contains(&("x-chat-csrf", "header")), "{names:?}");
    assert!(names.contains(&("chat_refresh", "cookie")), "{names:?}");
    // Links for clients (and the fuzzer's stateful phase) to follow.
    let links = &doc["paths"]["/conversations/{id}/messages"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["GetMessage"]["operationId"], "get_message");

    let (status, body) = server.get_text("/api/v1/asyncapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let asyncapi: Value = serde_json::from_str(&body).expect("AsyncAPI is JSON");
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    assert!(asyncapi["components"]["messages"]["client.send"].is_object());
}

#[tokio::test]
async fn every_error_path_answers_a_status_and_code_its_operation_documents() {
    let server = chat()
        .env(&[("CHAT_SIGNUPS_PER_MINUTE", "100000")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let anonymous = server.anonymous();
    let document: Value = serde_json::from_str(&server.get_text("/api/v1/openapi.json").await.1)
        .expect("the document");
    let documented = |path: &str, method: &str, status: StatusCode| {
        assert!(
            document["paths"][path][method]["responses"][status.as_str()].is_object(),
            "{method} {path} does not document {status}"
        );
    };

    // Sign-up and login.
    let signup = |username: &str, password: &str| SignupRequest {
        username: username.into(),
        password: password.into(),
        display_name: None,
    };
    for (request, code) in [
        (signup("a", "long enough password"), "invalid_username"),
        (signup("carol", "short"), "invalid_password"),
    ] {
        anonymous
            .post("/auth/signup", &request)
            .await
            .expect_error(StatusCode::BAD_REQUEST, code);
    }
    anonymous
        .post("/auth/signup", &signup("alice", "long enough password"))
        .await
        .expect_error(StatusCode::CONFLICT, "username_taken");
    documented("/auth/signup", "post", StatusCode::CONFLICT);
    anonymous
        .post(
            "/auth/login",
            &json!({"username": "alice", "password": "wrong password"}),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    anonymous
        .send(
            "POST /auth/refresh without the CSRF header".into(),
            anonymous.request(Method::POST, "/auth/refresh"),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, "csrf_header_missing");
    anonymous
        .refresh()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    // Extractors: no token, a body that is not JSON or too large, a path id that is
    // not an id, a query out of range.
    anonymous
        .get("/me")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    documented("/me", "get", StatusCode::UNAUTHORIZED);
    alice
        .api
        .send(
            "POST /conversations with broken JSON".into(),
            alice
                .api
                .request(Method::POST, "/conversations")
                .header("content-type", "application/json")
                .body("{\"kind\":"),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let huge = "x".repeat(70 * 1024);
    alice
        .post(
            "/conversations",
            &json!({"kind": "group", "title": huge, "member_ids": []}),
        )
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    documented("/conversations", "post", StatusCode::PAYLOAD_TOO_LARGE);
    alice
        .get("/conversations/abc")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .get("/conversations/12345")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Messages.
    let direct = alice.direct_with(&bob).await;
    let messages = format!("/conversations/{}/messages", direct.id);
    for (body, code) in [
        ("   ".to_owned(), "empty_body"),
        ("b".repeat(4001), "body_too_long"),
    ] {
        let send = SendMessage {
            client_msg_id: Uuid::new_v4(),
            body,
            reply_to: None,
        };
        alice
            .post(&messages, &send)
            .await
            .expect_error(StatusCode::BAD_REQUEST, code);
    }
    for limit in ["0", "101", "many"] {
        alice
            .get(&format!("{messages}?limit={limit}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let sent: Message = alice
        .post(
            &messages,
            &SendMessage {
                client_msg_id: Uuid::new_v4(),
                body: "hi".into(),
                reply_to: None,
            },
        )
        .await
        .expect(StatusCode::CREATED);
    let message = format!("{messages}/{}", sent.id);
    bob.patch(
        &message,
        &json!({"client_msg_id": Uuid::new_v4(), "body": "mine now"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "not_author");
    let reaction = |emoji: &str| {
        alice
            .api
            .request(Method::PUT, &format!("{message}/reactions/{emoji}"))
    };
    alice
        .api
        .send("PUT a reaction that is no emoji".into(), reaction("nope"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_emoji");
    alice.delete(&message).await.expect_success();
    alice
        .patch(
            &message,
            &json!({"client_msg_id": Uuid::new_v4(), "body": "too late"}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "message_deleted");

    // Groups.
    alice
        .patch(
            &format!("/conversations/{}", direct.id),
            &json!({"title": "a direct one"}),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_group");
    let group = alice.group_with("club", &[&bob]).await;
    bob.patch(
        &format!("/conversations/{}", group.id),
        &json!({"title": "mine"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "not_admin");
    alice
        .patch(
            &format!("/conversations/{}", group.id),
            &json!({"remove_admins": [alice.id()]}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "last_admin");

    // Search and user search.
    alice
        .get("/search?q=%22unclosed")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    alice
        .get("/users?q=")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    let body: ErrorBody = alice.get("/search").await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(body.error.code.to_string(), "invalid_input");
}
