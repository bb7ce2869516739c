//! Hostile and broken clients (issue 2's list): each case gets a clear error frame,
//! status or close code, and afterwards nothing has changed: no message was stored or
//! delivered, and every other connection is still served.

use std::time::Duration;

use chat_protocol::http::{AddMembers, Message, SendMessage};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MAX_BODY_CHARS, MAX_FRAME_BYTES, MessageId, close};
use chat_test_support::server::Server;
use chat_test_support::users::{TestUser, ids};
use chat_test_support::wait::{RECEIVE_TIMEOUT, eventually};
use chat_test_support::ws::{Event, Socket, Ws};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::{chat, slow_reader_server};

/// An id no conversation will have in a fresh server.
const NONEXISTENT: ConversationId = ConversationId(4_611_686_018_427_387_903);

/// Two users with a direct conversation and a socket each.
struct Pair {
    server: Server,
    alice: TestUser,
    bob: TestUser,
    conversation: ConversationId,
    alice_ws: Ws,
    bob_ws: Ws,
}

async fn pair() -> Pair {
    pair_on(chat().start().await).await
}

async fn pair_on(server: Server) -> Pair {
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await.id;
    let alice_ws = alice.connect().await;
    let bob_ws = bob.connect().await;
    Pair {
        server,
        alice,
        bob,
        conversation,
        alice_ws,
        bob_ws,
    }
}

impl Pair {
    /// Proves both sockets still work end to end and that history holds exactly the
    /// messages in `expected` plus the proof message; returns the proof's id.
    async fn assert_unchanged(&mut self, expected: &[MessageId]) -> MessageId {
        let proof = self
            .bob_ws
            .send_and_ack(self.conversation, "still here")
            .await;
        self.alice_ws.message_with_id(proof).await;
        let history = self
            .alice
            .history_containing(self.conversation, &[proof])
            .await;
        let mut want: Vec<MessageId> = expected.to_vec();
        want.push(proof);
        want.sort();
        want.reverse();
        assert_eq!(ids(&history), want, "history changed: {history:?}");
        proof
    }
}

#[tokio::test]
async fn a_malformed_json_frame_gets_an_error_and_the_connection_stays_open() {
    let mut p = pair().await;
    for garbage in ["{not json", "", "null", "[1,2,3]", "\"send\"", "{\"type\":"] {
        p.alice_ws.send_text(garbage).await;
        let (code, client_msg_id) = p.alice_ws.next_error().await;
        assert!(
            code == "malformed_json" || code == "invalid_frame",
            "`{garbage}` got `{code}`"
        );
        assert_eq!(client_msg_id, None);
    }
    p.alice_ws.send_text("{this is not json}").await;
    assert_eq!(p.alice_ws.next_error().await.0, "malformed_json");
    p.alice_ws.round_trip().await;
    let id = p
        .alice_ws
        .send_and_ack(p.conversation, "after the garbage")
        .await;
    p.bob_ws.message_with_id(id).await;
    p.bob_ws
        .assert_no("error", |f| matches!(f, ServerFrame::Error { .. }))
        .await;
    p.assert_unchanged(&[id]).await;
}

#[tokio::test]
async fn an_unknown_frame_type_or_missing_fields_get_invalid_frame() {
    let mut p = pair().await;
    let conversation = p.conversation.to_string();
    let frames = [
        json!({"type": "launch_missiles"}),
        json!({"type": "send"}),
        json!({"type": "send", "conversation_id": conversation, "body": "no client_msg_id"}),
        json!({"type": "send", "conversation_id": conversation, "client_msg_id": "not-a-uuid", "body": "x"}),
        json!({"type": "send", "conversation_id": "abc", "client_msg_id": Uuid::new_v4(), "body": "x"}),
        json!({"type": "read", "conversation_id": conversation}),
        json!({"type": "typing"}),
        json!({"no_type": true}),
        json!({"type": "auth", "token": p.alice.token}),
    ];
    for frame in &frames {
        p.alice_ws.send_text(&frame.to_string()).await;
        let (code, _) = p.alice_ws.next_error().await;
        if frame["type"] == "auth" {
            // A second auth on an authenticated socket is refused or ignored, never fatal.
            continue;
        }
        assert_eq!(code, "invalid_frame", "for {frame}");
    }
    p.alice_ws.round_trip().await;
    p.bob_ws.assert_no_message().await;
    p.assert_unchanged(&[]).await;
}

#[tokio::test]
async fn a_binary_frame_gets_invalid_frame() {
    let mut p = pair().await;
    let frame = serde_json::to_vec(&ClientFrame::Send {
        reply_to: None,
        conversation_id: p.conversation,
        client_msg_id: Uuid::new_v4(),
        body: "smuggled in binary".into(),
    })
    .unwrap();
    p.alice_ws.send_raw(WsMessage::binary(frame)).await;
    assert_eq!(p.alice_ws.next_error().await.0, "invalid_frame");
    p.alice_ws.round_trip().await;
    p.bob_ws.assert_no_message().await;
    p.assert_unchanged(&[]).await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_with_1009() {
    let mut p = pair().await;
    let frame = serde_json::to_string(&ClientFrame::Send {
        reply_to: None,
        conversation_id: p.conversation,
        client_msg_id: Uuid::new_v4(),
        body: "x".repeat(MAX_FRAME_BYTES + 1),
    })
    .unwrap();
    p.alice_ws.send_text(&frame).await;
    assert_eq!(p.alice_ws.expect_close().await, Some(close::TOO_LARGE));
    p.bob_ws.assert_no_message().await;

    // Alice reconnects and nothing else changed.
    p.alice_ws = p.alice.connect().await;
    p.assert_unchanged(&[]).await;
}

#[tokio::test]
async fn a_frame_just_under_the_size_limit_is_not_closed() {
    let mut p = pair().await;
    // Valid JSON just under 64 KiB, but its body is far over the character limit.
    let mut frame = serde_json::to_string(&ClientFrame::Send {
        reply_to: None,
        conversation_id: p.conversation,
        client_msg_id: Uuid::new_v4(),
        body: String::new(),
    })
    .unwrap();
    let padding = MAX_FRAME_BYTES - frame.len() - 16;
    frame = frame.replace(
        "\"body\":\"\"",
        &format!("\"body\":\"{}\"", "y".repeat(padding)),
    );
    assert!(frame.len() < MAX_FRAME_BYTES);
    p.alice_ws.send_text(&frame).await;
    assert_eq!(p.alice_ws.next_error().await.0, "body_too_long");
    p.alice_ws.round_trip().await;
    p.assert_unchanged(&[]).await;
}

#[tokio::test]
async fn an_over_long_body_is_refused_and_nothing_is_stored() {
    let mut p = pair().await;
    let too_long = "a".repeat(MAX_BODY_CHARS + 1);
    let client_msg_id = p.alice_ws.send_message(p.conversation, &too_long).await;
    let (code, for_id) = p.alice_ws.next_error().await;
    assert_eq!(code, "body_too_long");
    assert_eq!(for_id, Some(client_msg_id));

    p.alice
        .post(
            &format!("/conversations/{}/messages", p.conversation),
            &SendMessage {
                reply_to: None,
                client_msg_id: Uuid::new_v4(),
                body: too_long,
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "body_too_long");

    // The limit counts characters, not bytes: 4,000 three-byte characters pass.
    let longest = "€".repeat(MAX_BODY_CHARS);
    let accepted = p.alice_ws.send_and_ack(p.conversation, &longest).await;
    assert_eq!(p.bob_ws.message_with_id(accepted).await.body, longest);
    let over_http = p.alice.send_http(p.conversation, &longest).await;
    p.bob_ws.assert_no("the refused message", |f| {
        matches!(f, ServerFrame::Message { message } if message.client_msg_id == client_msg_id)
    })
    .await;
    p.assert_unchanged(&[accepted, over_http.id]).await;
}

#[tokio::test]
async fn an_empty_body_is_refused() {
    let mut p = pair().await;
    let client_msg_id = p.alice_ws.send_message(p.conversation, "").await;
    let (code, for_id) = p.alice_ws.next_error().await;
    assert_eq!(code, "empty_body");
    assert_eq!(for_id, Some(client_msg_id));
    p.alice
        .post(
            &format!("/conversations/{}/messages", p.conversation),
            &SendMessage {
                reply_to: None,
                client_msg_id: Uuid::new_v4(),
                body: String::new(),
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "empty_body");
    p.bob_ws.assert_no_message().await;
    p.assert_unchanged(&[]).await;
}

#[tokio::test]
async fn sending_to_a_conversation_you_are_not_in_is_not_found_and_delivers_nothing() {
    let mut p = pair().await;
    let mallory = p.server.signup("mallory").await;
    let mut mallory_ws = mallory.connect().await;

    for target in [p.conversation, NONEXISTENT] {
        let client_msg_id = mallory_ws.send_message(target, "let me in").await;
        let (code, for_id) = mallory_ws.next_error().await;
        assert_eq!(code, "not_found", "sending to {target}");
        assert_eq!(for_id, Some(client_msg_id));
        mallory
            .post(
                &format!("/conversations/{target}/messages"),
                &SendMessage {
                    reply_to: None,
                    client_msg_id: Uuid::new_v4(),
                    body: "let me in".into(),
                },
            )
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    p.alice_ws.assert_no_message().await;
    p.bob_ws.assert_no_message().await;
    p.assert_unchanged(&[]).await;
    mallory_ws.round_trip().await;
}

#[tokio::test]
async fn an_outsider_cannot_read_history_or_learn_the_conversation_exists() {
    let mut p = pair().await;
    let secret = p
        .alice_ws
        .send_and_ack(p.conversation, "just between us")
        .await;
    let mallory = p.server.signup("mallory").await;

    // Every answer about the real conversation is the answer about a nonexistent one.
    for target in [p.conversation, NONEXISTENT] {
        let replies = [
            mallory.get(&format!("/conversations/{target}")).await,
            mallory
                .get(&format!("/conversations/{target}/messages"))
                .await,
            mallory
                .get(&format!(
                    "/conversations/{target}/messages?after=0&limit=100"
                ))
                .await,
            mallory
                .post(
                    &format!("/conversations/{target}/members"),
                    &AddMembers {
                        user_ids: vec![mallory.id()],
                    },
                )
                .await,
            mallory
                .delete(&format!("/conversations/{target}/members/{}", p.bob.id()))
                .await,
        ];
        for reply in replies {
            reply.expect_error(StatusCode::NOT_FOUND, "not_found");
            assert!(!reply.text.contains("just between us"));
        }
    }
    assert!(mallory.conversations().await.is_empty());

    // Sync replays nothing of it either.
    let mut mallory_ws = mallory.connect().await;
    mallory_ws
        .send(&ClientFrame::Sync {
            since: Some(MessageId(0)),
        })
        .await;
    let leaked = mallory_ws
        .wait_for("synced", |f| match f {
            ServerFrame::Synced { .. } => Some(None),
            ServerFrame::Message { message } => Some(Some(message.clone())),
            _ => None,
        })
        .await;
    assert_eq!(leaked, None, "sync leaked a message to an outsider");

    // Nothing changed: still two members, still one message.
    let conversation = p.alice.conversation(p.conversation).await;
    assert_eq!(conversation.members.len(), 2);
    p.assert_unchanged(&[secret]).await;
}

#[tokio::test]
async fn an_outsider_cannot_type_or_mark_read_in_a_conversation() {
    let mut p = pair().await;
    let id = p.alice_ws.send_and_ack(p.conversation, "hello").await;
    let mallory = p.server.signup("mallory").await;
    let mut mallory_ws = mallory.connect().await;
    mallory_ws
        .send(&ClientFrame::Typing {
            conversation_id: p.conversation,
        })
        .await;
    mallory_ws
        .send(&ClientFrame::Read {
            conversation_id: p.conversation,
            message_id: id,
        })
        .await;
    mallory_ws.round_trip().await;
    for ws in [&mut p.alice_ws, &mut p.bob_ws] {
        ws.assert_no("typing or read from an outsider", |f| {
            matches!(f, ServerFrame::Typing { .. } | ServerFrame::Read { .. })
        })
        .await;
    }
    p.assert_unchanged(&[id]).await;
}

#[tokio::test]
async fn a_replayed_client_msg_id_creates_no_second_message() {
    let mut p = pair().await;
    let client_msg_id = Uuid::new_v4();
    let send = ClientFrame::Send {
        reply_to: None,
        conversation_id: p.conversation,
        client_msg_id,
        body: "only once".into(),
    };
    p.alice_ws.send(&send).await;
    let first = p.alice_ws.ack_of(client_msg_id).await;
    p.alice_ws.send(&send).await;
    let second = p.alice_ws.ack_of(client_msg_id).await;
    assert_eq!(first, second, "the retry is acknowledged with the same id");

    // A retry from another device of the same user, and over HTTP, is the same message.
    let mut other_device = p.alice.connect().await;
    other_device.send(&send).await;
    assert_eq!(other_device.ack_of(client_msg_id).await, first);
    let reply = p
        .alice
        .post(
            &format!("/conversations/{}/messages", p.conversation),
            &SendMessage {
                reply_to: None,
                client_msg_id,
                body: "only once".into(),
            },
        )
        .await;
    assert!(
        reply.status == StatusCode::OK || reply.status == StatusCode::CREATED,
        "{}",
        reply.text
    );
    let over_http: Message = reply.json();
    assert_eq!(over_http.id, first);

    p.bob_ws.message_with_id(first).await;
    p.assert_unchanged(&[first]).await;
}

#[tokio::test]
async fn a_replayed_client_msg_id_over_http_creates_no_second_message() {
    let mut p = pair().await;
    let body = SendMessage {
        reply_to: None,
        client_msg_id: Uuid::new_v4(),
        body: "retry me".into(),
    };
    let path = format!("/conversations/{}/messages", p.conversation);
    let first: Message = p.alice.post(&path, &body).await.expect(StatusCode::CREATED);
    for _ in 0..3 {
        let reply = p.alice.post(&path, &body).await;
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::CREATED,
            "{}",
            reply.text
        );
        assert_eq!(reply.json::<Message>(), first);
    }
    // The same key from another sender is another message: idempotency is per sender.
    let bobs: Message = p.bob.post(&path, &body).await.expect(StatusCode::CREATED);
    assert_ne!(bobs.id, first.id);
    assert_eq!(bobs.sender_id, p.bob.id());
    p.assert_unchanged(&[first.id, bobs.id]).await;
}

#[tokio::test]
async fn concurrent_retries_of_one_send_create_one_message() {
    let mut p = pair().await;
    let body = SendMessage {
        reply_to: None,
        client_msg_id: Uuid::new_v4(),
        body: "racing".into(),
    };
    let path = format!("/conversations/{}/messages", p.conversation);
    let replies = futures::future::join_all((0..8).map(|_| p.alice.api.post(&path, &body))).await;
    let mut seen = Vec::new();
    for reply in &replies {
        if reply.status == StatusCode::CONFLICT {
            // A retry racing the original may be told to come back; it never doubles.
            reply.expect_error(StatusCode::CONFLICT, "send_in_progress");
            continue;
        }
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::CREATED,
            "{}",
            reply.text
        );
        seen.push(reply.json::<Message>().id);
    }
    // Once the dust settles a retry names the one message.
    let settled: Message = eventually("a retry succeeds", || async {
        let reply = p.alice.post(&path, &body).await;
        (reply.status == StatusCode::OK || reply.status == StatusCode::CREATED)
            .then(|| reply.json())
    })
    .await;
    seen.push(settled.id);
    seen.dedup();
    assert_eq!(seen.len(), 1, "all retries name one message: {seen:?}");
    p.assert_unchanged(&seen).await;
}

#[tokio::test]
async fn a_first_frame_other_than_auth_closes_with_4401() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await.id;
    let first_frames = [
        serde_json::to_string(&ClientFrame::Ping).unwrap(),
        serde_json::to_string(&ClientFrame::Send {
            reply_to: None,
            conversation_id: conversation,
            client_msg_id: Uuid::new_v4(),
            body: "unauthenticated send".into(),
        })
        .unwrap(),
        "{garbage".to_owned(),
        json!({"type": "auth"}).to_string(),
        json!({"type": "auth", "token": ""}).to_string(),
    ];
    for frame in first_frames {
        let mut ws = Ws::connect(&server.endpoint).await;
        ws.send_text(&frame).await;
        assert_eq!(
            ws.expect_close().await,
            Some(close::UNAUTHENTICATED),
            "first frame {frame}"
        );
        assert!(
            !ws.backlog()
                .iter()
                .any(|f| matches!(f, ServerFrame::Ready { .. } | ServerFrame::Ack { .. })),
            "{:?}",
            ws.backlog()
        );
    }
    let bearer = "Bearer not-a-token";
    let mut ws = Ws::connect_with_headers(&server.endpoint, &[("authorization", bearer)])
        .await
        .expect("the upgrade itself succeeds");
    assert_eq!(ws.expect_close().await, Some(close::UNAUTHENTICATED));
    assert!(alice.all_history(conversation).await.is_empty());
}

#[tokio::test]
async fn no_auth_frame_within_the_timeout_closes_with_4408() {
    let server = chat().env(&[("CHAT_AUTH_TIMEOUT_MS", "300")]).start().await;
    let alice = server.signup("alice").await;
    let started = Instant::now();
    let mut silent = Ws::connect(&server.endpoint).await;
    assert_eq!(silent.expect_close().await, Some(close::AUTH_TIMEOUT));
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A socket that authenticated in time outlives the timeout.
    let mut ws = alice.connect().await;
    ws.assert_no("anything", |_| true).await;
    ws.round_trip().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_1008() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bearer = format!("Bearer {}", alice.token);
    let other_port = format!("http://127.0.0.1:{}", server.endpoint.addr().port() + 1);
    for origin in ["https://evil.example", "null", other_port.as_str()] {
        let mut ws = Ws::connect_with_headers(
            &server.endpoint,
            &[("origin", origin), ("authorization", &bearer)],
        )
        .await
        .unwrap_or_else(|e| panic!("expected an upgrade then close 1008 for {origin}, got {e}"));
        assert_eq!(
            ws.expect_close().await,
            Some(close::POLICY),
            "origin {origin}"
        );
        assert!(
            !ws.backlog()
                .iter()
                .any(|f| matches!(f, ServerFrame::Ready { .. })),
            "origin {origin} was let in"
        );
    }
}

#[tokio::test]
async fn only_configured_origins_may_connect() {
    let server = chat()
        .env(&[("CHAT_ALLOWED_ORIGINS", "https://chat.example.com")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let mut ws =
        Ws::connect_with_headers(&server.endpoint, &[("origin", "https://evil.example.com")])
            .await
            .expect("the upgrade itself succeeds");
    assert_eq!(ws.expect_close().await, Some(close::POLICY));
    let mut ws =
        Ws::connect_with_headers(&server.endpoint, &[("origin", "https://chat.example.com")])
            .await
            .expect("upgrade from the allowed origin");
    ws.authenticate(&alice.token).await;
}

#[tokio::test]
async fn malformed_and_oversized_http_bodies_are_refused() {
    let mut p = pair().await;
    let path = format!("/conversations/{}/messages", p.conversation);
    let api = &p.alice.api;
    let reply = api
        .send(
            format!("POST {path} (not JSON)"),
            api.request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .body("{\"client_msg_id\":"),
        )
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    p.alice
        .post(&path, &json!({"client_msg_id": "nope", "body": "x"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    p.alice
        .post(&path, &json!({"body": "x"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");

    let huge = json!({"client_msg_id": Uuid::new_v4(), "body": "z".repeat(256 << 10)});
    p.alice
        .post(&path, &huge)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    p.assert_unchanged(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_10000_frames_closes_the_flooder_with_4429_while_others_keep_being_served() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let dave = server.signup("dave").await;
    let flooded = alice.direct_with(&bob).await.id;
    let quiet = carol.direct_with(&dave).await.id;
    let mut bob_ws = bob.connect().await;
    let mut carol_ws = carol.connect().await;
    let mut dave_ws = dave.connect().await;

    let flooder = alice.connect().await.into_socket();
    let (mut sink, mut stream) = flooder.split();
    let frames = [
        serde_json::to_string(&ClientFrame::Ping).unwrap(),
        serde_json::to_string(&ClientFrame::Typing {
            conversation_id: flooded,
        })
        .unwrap(),
        "{not json".to_owned(),
    ];
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        for i in 0..10_000 {
            let frame = WsMessage::text(frames[i % frames.len()].clone());
            if sink.send(frame).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let WsMessage::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    });

    // While the flood runs, carol and dave keep chatting promptly.
    for i in 0..5 {
        let started = Instant::now();
        let id = carol_ws.send_and_ack(quiet, &format!("quiet {i}")).await;
        dave_ws.message_with_id(id).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a message took {:?} during the flood",
            started.elapsed()
        );
    }

    let close_code = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the flooder is disconnected")
        .unwrap();
    assert_eq!(close_code, Some(close::TOO_MANY_FRAMES));
    let sent = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the flood ends")
        .unwrap();
    assert!(sent > 0);

    // Nothing changed: no message in the flooded conversation, the node is healthy,
    // the flooder may come back, and bob is still served.
    assert!(alice.all_history(flooded).await.is_empty());
    assert_eq!(server.get_text("/healthz").await.0, StatusCode::OK);
    let mut alice_ws = alice.connect().await;
    let id = alice_ws.send_and_ack(flooded, "sorry about that").await;
    bob_ws.message_with_id(id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_10000_sends_is_rate_limited_per_user_while_others_keep_being_served() {
    let server = chat()
        .env(&[
            ("CHAT_FRAMES_PER_SEC", "1000000"),
            ("CHAT_FRAME_BURST", "1000000"),
            ("CHAT_SEND_RATE_PER_SEC", "20"),
            ("CHAT_SEND_BURST", "40"),
            // This test is about the send limit, not about slow readers.
            ("CHAT_OUTBOUND_QUEUE", "20000"),
        ])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let dave = server.signup("dave").await;
    let flooded = alice.direct_with(&bob).await.id;
    let quiet = carol.direct_with(&dave).await.id;
    let mut carol_ws = carol.connect().await;
    let mut dave_ws = dave.connect().await;

    const FLOOD: usize = 10_000;
    let flooder = alice.connect().await.into_socket();
    let (sink, stream) = flooder.split();
    let started = Instant::now();
    let writer = tokio::spawn(flood(sink, flooded, FLOOD));
    let reader = tokio::spawn(answers_to_the_flood(stream, FLOOD));
    others_are_served_within_two_seconds(&mut carol_ws, &mut dave_ws, quiet).await;

    let (acked, limited) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("every send is answered")
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let _sink = writer.await.unwrap();
    assert!(limited > 0, "the flood was not limited");
    let allowed = 40.0 + 20.0 * elapsed + 5.0;
    assert!(
        (acked.len() as f64) <= allowed,
        "{} sends accepted in {elapsed:.1}s, more than the limit allows",
        acked.len()
    );
    exactly_the_acknowledged_sends_were_stored(&alice, flooded, &acked).await;
}

/// Writes `count` sends to `conversation` as fast as the socket takes them; returns
/// the sink so the connection stays open.
async fn flood(
    mut sink: SplitSink<Socket, WsMessage>,
    conversation: ConversationId,
    count: usize,
) -> SplitSink<Socket, WsMessage> {
    for i in 0..count {
        let frame = ClientFrame::Send {
            reply_to: None,
            conversation_id: conversation,
            client_msg_id: Uuid::new_v4(),
            body: format!("flood {i}"),
        };
        let text = serde_json::to_string(&frame).unwrap();
        sink.send(WsMessage::text(text))
            .await
            .expect("the flooder stays connected");
    }
    sink
}

/// Reads until each of `count` sends is answered: the acknowledged ids, and how many
/// were refused as `rate_limited` (each refusal naming its send).
async fn answers_to_the_flood(
    mut stream: SplitStream<Socket>,
    count: usize,
) -> (Vec<MessageId>, usize) {
    let (mut acked, mut limited) = (Vec::new(), 0usize);
    while acked.len() + limited < count {
        let Some(Ok(message)) = stream.next().await else {
            panic!(
                "the flooder was disconnected after {} answers",
                acked.len() + limited
            );
        };
        let WsMessage::Text(text) = message else {
            continue;
        };
        match serde_json::from_str::<ServerFrame>(text.as_str()).unwrap() {
            ServerFrame::Ack { message_id, .. } => acked.push(message_id),
            ServerFrame::Error {
                code,
                client_msg_id,
                ..
            } => {
                assert_eq!(code.to_string(), "rate_limited");
                assert!(client_msg_id.is_some(), "the refusal names the send");
                limited += 1;
            }
            _ => {}
        }
    }
    (acked, limited)
}

/// During the flood, carol's messages still reach dave within 2 s each.
async fn others_are_served_within_two_seconds(
    carol_ws: &mut Ws,
    dave_ws: &mut Ws,
    quiet: ConversationId,
) {
    for i in 0..5 {
        let started = Instant::now();
        let id = carol_ws.send_and_ack(quiet, &format!("quiet {i}")).await;
        dave_ws.message_with_id(id).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a message took {:?} during the flood",
            started.elapsed()
        );
    }
}

async fn exactly_the_acknowledged_sends_were_stored(
    alice: &TestUser,
    flooded: ConversationId,
    acked: &[MessageId],
) {
    let stored = eventually("every ack is in history", || async {
        let all = alice.all_history(flooded).await;
        (all.len() >= acked.len()).then_some(all)
    })
    .await;
    let mut stored_ids = ids(&stored);
    stored_ids.sort();
    let mut acked_ids = acked.to_vec();
    acked_ids.sort();
    assert_eq!(stored_ids, acked_ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_disconnected_and_the_others_keep_being_served() {
    let server = slow_reader_server().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await.id;
    let mut alice_ws = alice.connect().await;
    let mut slow = Ws::connect_with_tiny_receive_buffer(&server.endpoint).await;
    slow.authenticate(&bob.token).await;
    let mut bob_fast = bob.connect().await;

    // Bob's slow socket never reads again; alice keeps talking until the server gives
    // up on it (bob's other connection stays, so presence cannot tell us: read it).
    let body = "b".repeat(3_900);
    let mut sent = Vec::new();
    'flood: for _batch in 0..30 {
        let mut pending = Vec::new();
        for _ in 0..50 {
            pending.push(alice_ws.send_message(conversation, &body).await);
        }
        for client_msg_id in pending {
            let id = alice_ws.ack_of(client_msg_id).await;
            sent.push(id);
            // The fast reader keeps up with every message.
            bob_fast.message_with_id(id).await;
        }
        alice_ws.clear_backlog();
        let text = server.get_text("/metrics").await.1;
        let connections = text
            .lines()
            .find(|l| l.starts_with("chat_connections"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok());
        if connections == Some(2.0) {
            break 'flood;
        }
    }

    // The slow socket ends before delivering everything.
    let mut delivered = 0;
    loop {
        match slow.next_event(RECEIVE_TIMEOUT).await {
            Event::Frame(ServerFrame::Message { .. }) => delivered += 1,
            Event::Frame(_) => {}
            Event::Closed(_) => break,
            Event::TimedOut => panic!(
                "the slow reader was never disconnected ({delivered} of {} delivered)",
                sent.len()
            ),
        }
    }
    assert!(delivered < sent.len(), "a slow reader got everything?");
    let id = alice_ws.send_and_ack(conversation, "still served").await;
    bob_fast.message_with_id(id).await;
}

/// Control characters a body may not hold: NUL (which PostgreSQL cannot store in
/// text), the other C0 controls, DEL and the C1 controls.
const CONTROL_BODIES: [&str; 5] = [
    "nul \u{0} byte",
    "bell\u{7}",
    "clear \u{1b}[2J screen",
    "del\u{7f}",
    "c1 \u{85} next line",
];

#[tokio::test]
async fn a_body_with_a_control_character_is_refused_over_http_and_websocket_and_nothing_changes() {
    let mut p = pair().await;
    let path = format!("/conversations/{}/messages", p.conversation);
    // Newlines, tabs and carriage returns are text, not controls.
    let multiline = p
        .alice_ws
        .send_and_ack(p.conversation, "line one\r\nline two\tcolumn")
        .await;
    let original = p.alice.send_http(p.conversation, "the original").await;
    for body in CONTROL_BODIES {
        let client_msg_id = p.alice_ws.send_message(p.conversation, body).await;
        assert_eq!(
            p.alice_ws.next_error().await,
            ("invalid_input".to_owned(), Some(client_msg_id)),
            "{body:?}"
        );
        let edit = Uuid::new_v4();
        p.alice_ws
            .send(&ClientFrame::Edit {
                conversation_id: p.conversation,
                message_id: original.id,
                client_msg_id: edit,
                body: body.to_owned(),
            })
            .await;
        assert_eq!(
            p.alice_ws.next_error().await,
            ("invalid_input".to_owned(), Some(edit)),
            "{body:?}"
        );
        p.alice
            .post(
                &path,
                &SendMessage {
                    reply_to: None,
                    client_msg_id: Uuid::new_v4(),
                    body: body.to_owned(),
                },
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
        p.alice
            .patch(
                &format!("{path}/{}", original.id),
                &json!({"client_msg_id": Uuid::new_v4(), "body": body}),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    p.bob_ws.message_with_id(multiline).await;
    p.bob_ws.message_with_id(original.id).await;
    p.bob_ws
        .assert_no("a refused body or edit", |f| {
            matches!(f, ServerFrame::Message { .. } | ServerFrame::Edited(_))
        })
        .await;
    let proof = p.assert_unchanged(&[multiline, original.id]).await;
    let history = p.alice.history_containing(p.conversation, &[proof]).await;
    let stored = history.iter().find(|m| m.id == original.id);
    assert_eq!(stored.map(|m| m.body.as_str()), Some("the original"));
    assert!(stored.is_some_and(|m| m.edited_at.is_none()), "{stored:?}");
}

/// Names that would disguise themselves or what follows them, one per kind: control
/// characters, bidirectional overrides, isolates and marks, and nothing visible.
const DISGUISED_NAMES: [&str; 9] = [
    "Admin\u{202e}gnp.exe",
    "left\u{202a}embedded",
    "iso\u{2066}late\u{2069}",
    "mark\u{200f}",
    "arabic mark\u{61c}",
    "nul\u{0}name",
    "two\nlines",
    "\u{200b}\u{200c}\u{2060}",
    "\u{3164}",
];

#[tokio::test]
async fn a_display_name_with_bidi_controls_control_characters_or_nothing_visible_is_refused_and_nothing_is_stored()
 {
    let server = chat().start().await;
    let anonymous = server.anonymous();
    for name in DISGUISED_NAMES {
        anonymous
            .post(
                "/auth/signup",
                &json!({"username": "mallory", "password": "a long enough password", "display_name": name}),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    // Nothing was stored: the username is still free, and nobody by that name exists.
    let alice = server.signup("alice").await;
    let found: Vec<chat_protocol::http::User> =
        alice.get("/users?q=mallory").await.expect(StatusCode::OK);
    assert!(found.is_empty(), "{found:?}");
    let mallory: chat_protocol::http::AuthResponse = anonymous
        .post(
            "/auth/signup",
            &json!({"username": "mallory", "password": "a long enough password", "display_name": "Mallory ⚡"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(mallory.user.display_name, "Mallory ⚡");
    // The node and the others are unaffected.
    let bob = server.signup("bob").await;
    let direct = alice.direct_with(&bob).await.id;
    let mut bob_ws = bob.connect().await;
    let sent = alice.send_http(direct, "still served").await;
    bob_ws.message_with_id(sent.id).await;
}

#[tokio::test]
async fn a_group_title_with_bidi_controls_control_characters_or_nothing_visible_is_refused_and_nothing_changes()
 {
    let mut p = pair().await;
    let group = p.alice.group_with("Engines", &[&p.bob]).await;
    p.bob_ws
        .wait_for("the new group", |f| {
            matches!(f, ServerFrame::Conversation { conversation } if conversation.id == group.id)
                .then_some(())
        })
        .await;
    let before = p.alice.conversations().await;
    for title in DISGUISED_NAMES {
        p.alice
            .post(
                "/conversations",
                &json!({"kind": "group", "title": title, "member_ids": [p.bob.id()]}),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
        p.alice
            .patch(
                &format!("/conversations/{}", group.id),
                &json!({"title": title}),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let after = p.alice.conversations().await;
    assert_eq!(
        after.iter().map(|c| c.id).collect::<Vec<_>>(),
        before.iter().map(|c| c.id).collect::<Vec<_>>(),
        "no group was created"
    );
    assert_eq!(
        p.alice.conversation(group.id).await.title.as_deref(),
        Some("Engines")
    );
    p.bob_ws
        .assert_no("a conversation from a refused title", |f| {
            matches!(f, ServerFrame::Conversation { .. })
        })
        .await;
    p.assert_unchanged(&[]).await;
}

/// An HTTP send whose client hangs up as soon as the request is out: the server still
/// finishes it, so the retry with the same `client_msg_id` is answered with the one
/// stored message (not `send_in_progress` for as long as a claim lives), and nothing
/// is posted twice.
#[tokio::test]
async fn an_http_send_whose_client_hangs_up_mid_request_is_finished_and_its_retry_gets_the_stored_message()
 {
    use tokio::io::AsyncWriteExt;

    let mut p = pair().await;
    let path = format!("/api/v1/conversations/{}/messages", p.conversation);
    let mut retries = Vec::new();
    for i in 0..5 {
        let send = SendMessage {
            reply_to: None,
            client_msg_id: Uuid::new_v4(),
            body: format!("hung up #{i}"),
        };
        let body = serde_json::to_string(&send).expect("a JSON body");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            p.server.endpoint.addr(),
            p.alice.token,
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(p.server.endpoint.addr())
            .await
            .expect("connect");
        socket
            .write_all(request.as_bytes())
            .await
            .expect("write the request");
        // Gone before any answer: the server sees the connection close mid-request.
        drop(socket);
        retries.push(send);
    }
    let mut stored = Vec::new();
    for send in &retries {
        let deadline = Instant::now() + Duration::from_secs(5);
        let message: Message = loop {
            let reply = p
                .alice
                .post(&format!("/conversations/{}/messages", p.conversation), send)
                .await;
            if reply.status == StatusCode::OK || reply.status == StatusCode::CREATED {
                break reply.json();
            }
            reply.expect_error(StatusCode::CONFLICT, "send_in_progress");
            assert!(
                Instant::now() < deadline,
                "the retry is still told the send is in progress"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(message.client_msg_id, send.client_msg_id);
        assert_eq!(message.body, send.body);
        // Asked again, the same message.
        let again: Message = p
            .alice
            .post(&format!("/conversations/{}/messages", p.conversation), send)
            .await
            .json();
        assert_eq!(again.id, message.id);
        stored.push(message.id);
    }
    for id in &stored {
        p.bob_ws.message_with_id(*id).await;
    }
    // Exactly one message per hung-up send, and nothing else.
    p.assert_unchanged(&stored).await;
}

/// Conversation ids are sequential, so an attacker knows the next ones. Probing them
/// before they exist (typing, read, send, history) must not leave anything behind
/// that refuses their members once the conversations are created.
#[tokio::test]
async fn conversations_probed_before_they_exist_work_for_their_members_once_created() {
    let mut p = pair().await;
    let carol = p.server.signup("carol").await;
    let mallory = p.server.signup("mallory").await;
    let mut mallory_ws = mallory.connect().await;
    let upcoming: Vec<ConversationId> = (1..=4)
        .map(|n| ConversationId(p.conversation.0 + n))
        .collect();
    for &conversation_id in &upcoming {
        mallory_ws
            .send(&ClientFrame::Typing { conversation_id })
            .await;
        mallory_ws
            .send(&ClientFrame::Read {
                conversation_id,
                message_id: MessageId(1),
            })
            .await;
        mallory_ws.send_message(conversation_id, "first!").await;
        for frame in ["typing", "read", "send"] {
            let (code, _) = mallory_ws.next_error().await;
            assert_eq!(code, "not_found", "{frame} for {conversation_id}");
        }
        let history = mallory
            .get(&format!("/conversations/{conversation_id}/messages"))
            .await;
        assert_eq!(history.status, StatusCode::NOT_FOUND, "{}", history.text);
        // The members-to-be probe too (a client racing its own creation).
        carol
            .get(&format!("/conversations/{conversation_id}/messages"))
            .await;
    }
    mallory_ws.round_trip().await;

    let direct = p.alice.direct_with(&carol).await.id;
    let group = p.alice.group_with("probed", &[&p.bob, &carol]).await.id;
    assert!(
        upcoming.contains(&direct) && upcoming.contains(&group),
        "the new conversations ({direct}, {group}) were not among the probed ids {upcoming:?}"
    );
    let mut carol_ws = carol.connect().await;
    let to_carol = p.alice_ws.send_and_ack(direct, "hello carol").await;
    carol_ws.message_with_id(to_carol).await;
    let to_group = carol_ws.send_and_ack(group, "hello group").await;
    p.alice_ws.message_with_id(to_group).await;
    p.bob_ws.message_with_id(to_group).await;
    assert_eq!(
        ids(&carol.history_containing(group, &[to_group]).await),
        vec![to_group]
    );
    // The prober is still an outsider of both.
    mallory_ws.send_message(group, "let me in").await;
    assert_eq!(mallory_ws.next_error().await.0, "not_found");
    p.assert_unchanged(&[]).await;
}
