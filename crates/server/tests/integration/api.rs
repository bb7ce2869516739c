//! The HTTP API of DESIGN.md §4, endpoint by endpoint, on the happy path and with
//! invalid input.

use chat_protocol::http::{
    AddMembers, AuthResponse, Conversation, ConversationKind, CreateConversation, HistoryPage,
    LoginRequest, Me, Message, Readiness, SendMessage, SignupRequest, User,
};
use chat_protocol::ws::ClientFrame;
use chat_protocol::{ConversationId, UserId};
use chat_test_support::api::Reply;
use chat_test_support::users::{PASSWORD, TestUser, ids};
use chat_test_support::wait::eventually;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::chat;

/// An id no conversation or user will ever have in a fresh server.
const NONEXISTENT: i64 = 4_611_686_018_427_387_903;

fn set_cookies(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// The `Set-Cookie` line of the refresh cookie, lowercased for attribute checks.
pub fn refresh_set_cookie(reply: &Reply) -> String {
    set_cookies(reply)
        .into_iter()
        .find(|c| c.starts_with(&format!("{}=", chat_protocol::REFRESH_COOKIE)))
        .unwrap_or_else(|| {
            panic!(
                "{}: no {} cookie set; headers {:?}",
                reply.what,
                chat_protocol::REFRESH_COOKIE,
                reply.headers
            )
        })
        .to_ascii_lowercase()
}

#[tokio::test]
async fn signup_returns_the_user_a_token_and_a_refresh_cookie() {
    let server = chat().start().await;
    let api = server.anonymous();
    let reply = api
        .post(
            "/auth/signup",
            &SignupRequest {
                username: "alice".into(),
                password: PASSWORD.into(),
                display_name: Some("Alice Liddell".into()),
            },
        )
        .await;
    let auth: AuthResponse = reply.expect(StatusCode::CREATED);
    assert_eq!(auth.user.username, "alice");
    assert_eq!(auth.user.display_name, "Alice Liddell");
    assert!(!auth.access_token.is_empty());
    assert!(
        auth.expires_in > 0 && auth.expires_in <= 900,
        "access tokens live at most 15 minutes, got {}",
        auth.expires_in
    );

    let cookie = refresh_set_cookie(&reply);
    assert!(cookie.contains("httponly"), "cookie not HttpOnly: {cookie}");
    assert!(
        cookie.contains("samesite=strict"),
        "cookie not SameSite=Strict: {cookie}"
    );
    assert!(
        cookie.contains("path=/api/v1/auth"),
        "cookie path should be /api/v1/auth: {cookie}"
    );
    assert!(
        api.refresh_cookie().is_some(),
        "the jar kept no refresh cookie"
    );

    // The id travels as a string.
    let raw: serde_json::Value = reply.json();
    assert!(raw["user"]["id"].is_string(), "ids are strings: {raw}");

    let me: User = api
        .with_token(&auth.access_token)
        .get("/me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(me, auth.user);
}

#[tokio::test]
async fn signup_lowercases_the_username_and_refuses_a_taken_one() {
    let server = chat().start().await;
    let alice = server.signup("Alice_01").await;
    assert_eq!(alice.user.username, "alice_01");
    assert_eq!(
        alice.user.display_name, "alice_01",
        "display name defaults to the username"
    );

    let again = server
        .anonymous()
        .post(
            "/auth/signup",
            &SignupRequest {
                username: "ALICE_01".into(),
                password: "another password".into(),
                display_name: None,
            },
        )
        .await;
    again.expect_error(StatusCode::CONFLICT, "username_taken");

    // Nothing changed: the original password still logs in.
    let login = server
        .anonymous()
        .post(
            "/auth/login",
            &LoginRequest {
                username: "alice_01".into(),
                password: PASSWORD.into(),
            },
        )
        .await;
    let auth: AuthResponse = login.expect(StatusCode::OK);
    assert_eq!(auth.user.id, alice.id());
}

#[tokio::test]
async fn signup_refuses_bad_usernames_passwords_and_bodies() {
    let server = chat().start().await;
    let api = server.anonymous();
    for username in ["ab", "has space", "dash-ed", "émile", &"x".repeat(33), ""] {
        api.post(
            "/auth/signup",
            &SignupRequest {
                username: username.into(),
                password: PASSWORD.into(),
                display_name: None,
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_username");
    }
    for password in ["short12".to_owned(), "p".repeat(129)] {
        api.post(
            "/auth/signup",
            &SignupRequest {
                username: "valid_name".into(),
                password,
                display_name: None,
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_password");
    }
    // Boundaries are accepted.
    server.signup("abc").await;
    server.signup(&"z".repeat(32)).await;

    let not_json = api
        .send(
            "POST /auth/signup (not JSON)".into(),
            api.request(reqwest::Method::POST, "/auth/signup")
                .header("content-type", "application/json")
                .body("{\"username\":"),
        )
        .await;
    not_json.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    api.post("/auth/signup", &json!({"username": "nopassword"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");

    // Nothing was created by the refused attempts.
    let probe = server.signup("probe").await;
    let found: Vec<User> = probe.get("/users?q=valid").await.expect(StatusCode::OK);
    assert!(found.is_empty(), "a refused signup created {found:?}");
}

#[tokio::test]
async fn login_returns_a_token_and_a_new_refresh_cookie() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let api = server.anonymous();
    let reply = api
        .post(
            "/auth/login",
            &LoginRequest {
                username: "ALICE".into(),
                password: PASSWORD.into(),
            },
        )
        .await;
    let auth: AuthResponse = reply.expect(StatusCode::OK);
    assert_eq!(auth.user, alice.user);
    assert!(auth.expires_in > 0 && auth.expires_in <= 900);
    let cookie = refresh_set_cookie(&reply);
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"));
    let me: User = api
        .with_token(&auth.access_token)
        .get("/me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
}

#[tokio::test]
async fn me_requires_a_bearer_token() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me, alice.user);
    server
        .anonymous()
        .get("/me")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    server
        .anonymous()
        .with_token("not-a-jwt")
        .get("/me")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn the_dataset_consent_is_the_operators_default_until_the_user_chooses() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    // opt_in by default: nobody's messages are used until they agree.
    let me: Me = alice.get("/me").await.expect(StatusCode::OK);
    assert!(!me.dataset_consent && me.dataset_consent_at.is_none());
    assert_eq!((me.id, me.username.as_str()), (alice.id(), "alice"));

    let chose: Me = alice
        .patch("/me", &json!({"dataset_consent": true}))
        .await
        .expect(StatusCode::OK);
    assert!(chose.dataset_consent && chose.dataset_consent_at.is_some());
    assert_eq!(alice.get("/me").await.expect::<Me>(StatusCode::OK), chose);
    let withdrew: Me = alice
        .patch("/me", &json!({"dataset_consent": false}))
        .await
        .expect(StatusCode::OK);
    assert!(!withdrew.dataset_consent);
    assert!(withdrew.dataset_consent_at >= chose.dataset_consent_at);
    // Someone else's choice is their own.
    let bobs: Me = bob.get("/me").await.expect(StatusCode::OK);
    assert!(!bobs.dataset_consent && bobs.dataset_consent_at.is_none());
}

#[tokio::test]
async fn a_malformed_or_anonymous_consent_change_is_refused_and_changes_nothing() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let before: Me = alice
        .patch("/me", &json!({"dataset_consent": true}))
        .await
        .expect(StatusCode::OK);
    for body in [
        json!({}),
        json!({"dataset_consent": "false"}),
        json!({"dataset_consent": 0}),
        json!({"dataset_consent": null}),
        json!({"dataset_consent": false, "display_name": "Mallory"}),
        json!("false"),
        json!(false),
    ] {
        alice
            .patch("/me", &body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    let not_json = alice
        .api
        .send(
            "PATCH /me (not JSON)".into(),
            alice
                .api
                .request(reqwest::Method::PATCH, "/me")
                .header("content-type", "application/json")
                .body("{\"dataset_consent\": fal"),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    server
        .anonymous()
        .patch("/me", &json!({"dataset_consent": false}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(alice.get("/me").await.expect::<Me>(StatusCode::OK), before);
}

#[tokio::test]
async fn under_opt_out_a_user_who_never_chose_counts_as_allowing() {
    let server = chat()
        .env(&[("CHAT_DATASET_CONSENT", "opt_out")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let me: Me = alice.get("/me").await.expect(StatusCode::OK);
    assert!(me.dataset_consent && me.dataset_consent_at.is_none());
    let no: Me = alice
        .patch("/me", &json!({"dataset_consent": false}))
        .await
        .expect(StatusCode::OK);
    assert!(!no.dataset_consent);
}

#[tokio::test]
async fn user_search_finds_users_by_prefix() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let alicia = server.signup("alicia").await;
    let bob = server.signup("bob").await;

    let found: Vec<User> = bob.get("/users?q=ali").await.expect(StatusCode::OK);
    let found_ids: Vec<UserId> = found.iter().map(|u| u.id).collect();
    assert!(found_ids.contains(&alice.id()) && found_ids.contains(&alicia.id()));
    assert!(!found_ids.contains(&bob.id()), "bob does not match `ali`");

    let found: Vec<User> = bob.get("/users?q=ALIC").await.expect(StatusCode::OK);
    assert_eq!(found.len(), 2, "search ignores case: {found:?}");

    let found: Vec<User> = bob.get("/users?q=zed").await.expect(StatusCode::OK);
    assert!(found.is_empty());

    server
        .anonymous()
        .get("/users?q=ali")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn creating_a_direct_conversation_twice_returns_the_same_one() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;

    let reply = alice
        .post(
            "/conversations",
            &CreateConversation::Direct { user_id: bob.id() },
        )
        .await;
    let first: Conversation = reply.expect(StatusCode::CREATED);
    assert_eq!(first.kind, ConversationKind::Direct);
    assert_eq!(first.title, None);
    let mut members: Vec<UserId> = first.members.iter().map(|m| m.user.id).collect();
    members.sort();
    let mut expected = vec![alice.id(), bob.id()];
    expected.sort();
    assert_eq!(members, expected);

    let second = alice.direct_with(&bob).await;
    assert_eq!(second.id, first.id);
    let from_bob = bob.direct_with(&alice).await;
    assert_eq!(
        from_bob.id, first.id,
        "bob's direct conversation with alice is the same one"
    );
    assert_eq!(alice.conversations().await.len(), 1);
    assert_eq!(bob.conversations().await.len(), 1);
}

#[tokio::test]
async fn a_direct_conversation_with_an_unknown_user_is_not_found() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    alice
        .post(
            "/conversations",
            &CreateConversation::Direct {
                user_id: UserId(NONEXISTENT),
            },
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .post("/conversations", &json!({"kind": "direct"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    alice
        .post(
            "/conversations",
            &json!({"kind": "channel", "user_id": "1"}),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(alice.conversations().await.is_empty());
}

#[tokio::test]
async fn a_group_has_its_title_and_every_member() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;

    let group = alice.group_with("Tea party", &[&bob, &carol]).await;
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.title.as_deref(), Some("Tea party"));
    let mut members: Vec<UserId> = group.members.iter().map(|m| m.user.id).collect();
    members.sort();
    let mut expected = vec![alice.id(), bob.id(), carol.id()];
    expected.sort();
    assert_eq!(members, expected);
    assert!(group.last_message.is_none());
    assert_eq!(group.unread_count, 0);

    for user in [&alice, &bob, &carol] {
        let seen = user.conversation(group.id).await;
        assert_eq!(seen.id, group.id);
        assert_eq!(seen.members.len(), 3);
        assert!(seen.members.iter().all(|m| m.last_read_id.is_none()));
    }
}

#[tokio::test]
async fn conversations_are_listed_most_recent_first_with_last_message_and_unread_count() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;

    let with_bob = alice.direct_with(&bob).await;
    let group = alice.group_with("trio", &[&bob, &carol]).await;

    alice.send_http(group.id, "first in the group").await;
    alice.send_http(with_bob.id, "hello bob").await;
    let latest = alice.send_http(with_bob.id, "are you there?").await;

    // History is written behind the log, one partition at a time, so wait for both
    // conversations to show their messages.
    let listed = eventually("bob's list shows the latest messages", || async {
        let list = bob.conversations().await;
        let ok = list.len() == 2
            && list[0].last_message.as_ref().map(|m| m.id) == Some(latest.id)
            && list[0].unread_count == 2
            && list[1].unread_count == 1;
        ok.then_some(list)
    })
    .await;
    assert_eq!(listed[0].id, with_bob.id, "most recent first");
    assert_eq!(listed[1].id, group.id);
    assert_eq!(listed[1].unread_count, 1);
    assert_eq!(
        listed[1].last_message.as_ref().map(|m| m.body.as_str()),
        Some("first in the group")
    );

    // Your own messages are never unread.
    let mine = alice.conversations().await;
    assert!(mine.iter().all(|c| c.unread_count == 0), "{mine:?}");

    // A new message in the group moves it to the top.
    let newest = carol.send_http(group.id, "me too").await;
    let listed = eventually("the group moves to the top", || async {
        let list = bob.conversations().await;
        (list[0].id == group.id).then_some(list)
    })
    .await;
    assert_eq!(
        listed[0].last_message.as_ref().map(|m| m.id),
        Some(newest.id)
    );
    assert_eq!(listed[0].unread_count, 2);
}

#[tokio::test]
async fn reading_up_to_a_message_clears_the_unread_count() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    alice.send_http(conversation.id, "one").await;
    let second = alice.send_http(conversation.id, "two").await;
    let third = alice.send_http(conversation.id, "three").await;

    let mut ws = bob.connect().await;
    ws.send(&ClientFrame::Read {
        conversation_id: conversation.id,
        message_id: second.id,
    })
    .await;
    ws.round_trip().await;
    let seen = eventually("bob's unread count drops to 1", || async {
        let c = bob.conversation(conversation.id).await;
        (c.unread_count == 1).then_some(c)
    })
    .await;
    let bob_member = seen.members.iter().find(|m| m.user.id == bob.id()).unwrap();
    assert_eq!(bob_member.last_read_id, Some(second.id));

    ws.send(&ClientFrame::Read {
        conversation_id: conversation.id,
        message_id: third.id,
    })
    .await;
    eventually("bob's unread count drops to 0", || async {
        (bob.conversation(conversation.id).await.unread_count == 0).then_some(())
    })
    .await;
    // Alice sees bob's read marker too.
    let from_alice = alice.conversation(conversation.id).await;
    let bob_member = from_alice
        .members
        .iter()
        .find(|m| m.user.id == bob.id())
        .unwrap();
    assert_eq!(bob_member.last_read_id, Some(third.id));
}

#[tokio::test]
async fn group_members_can_be_added_and_removed() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob]).await;

    alice
        .post(
            &format!("/conversations/{}/members", group.id),
            &AddMembers {
                user_ids: vec![carol.id()],
            },
        )
        .await
        .expect_success();
    let seen = carol.conversation(group.id).await;
    assert!(seen.members.iter().any(|m| m.user.id == carol.id()));
    assert_eq!(seen.members.len(), 3);
    carol.send_http(group.id, "thanks for having me").await;

    alice
        .delete(&format!("/conversations/{}/members/{}", group.id, bob.id()))
        .await
        .expect_success();
    let seen = alice.conversation(group.id).await;
    assert!(!seen.members.iter().any(|m| m.user.id == bob.id()));
    assert_eq!(seen.members.len(), 2);

    // Bob is now an outsider: the group is invisible to him.
    bob.get(&format!("/conversations/{}", group.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    bob.get(&format!("/conversations/{}/messages", group.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(bob.conversations().await.iter().all(|c| c.id != group.id));
}

#[tokio::test]
async fn members_cannot_be_added_to_a_direct_conversation() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let direct = alice.direct_with(&bob).await;
    alice
        .post(
            &format!("/conversations/{}/members", direct.id),
            &AddMembers {
                user_ids: vec![carol.id()],
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_group");
    alice
        .delete(&format!(
            "/conversations/{}/members/{}",
            direct.id,
            bob.id()
        ))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_group");
    assert_eq!(alice.conversation(direct.id).await.members.len(), 2);
    carol
        .get(&format!("/conversations/{}", direct.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn http_send_returns_the_message_with_a_string_snowflake_id() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let client_msg_id = Uuid::new_v4();
    let reply = alice
        .post(
            &format!("/conversations/{}/messages", conversation.id),
            &SendMessage {
                reply_to: None,
                client_msg_id,
                body: "hello, bob".into(),
            },
        )
        .await;
    let message: Message = reply.expect(StatusCode::CREATED);
    assert_eq!(message.body, "hello, bob");
    assert_eq!(message.sender_id, alice.id());
    assert_eq!(message.conversation_id, conversation.id);
    assert_eq!(message.client_msg_id, client_msg_id);
    let raw: serde_json::Value = reply.json();
    let id = raw["id"].as_str().expect("the message id is a JSON string");
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");

    // Snowflakes: milliseconds since the epoch sit above bit 22, so ids made a moment
    // apart are far apart, and they increase.
    let next = alice.send_http(conversation.id, "again").await;
    assert!(next.id > message.id);
    assert!(
        message.id.0 >> 22 > 0,
        "not a snowflake (no timestamp bits): {}",
        message.id
    );
    let age = chrono::Utc::now() - message.created_at;
    assert!(age.num_seconds().abs() < 60, "created_at is now-ish");
}

#[tokio::test]
async fn history_pages_newest_first_by_cursor() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            alice
                .send_http(conversation.id, &format!("message {i}"))
                .await
                .id,
        );
    }
    let all = bob.history_containing(conversation.id, &sent).await;
    let newest_first: Vec<_> = sent.iter().rev().copied().collect();
    assert_eq!(ids(&all), newest_first);

    let page = bob.history_page(conversation.id, "limit=2").await;
    assert_eq!(ids(&page.messages), newest_first[..2]);
    assert!(page.has_more);

    let page = bob
        .history_page(
            conversation.id,
            &format!("limit=2&before={}", newest_first[1]),
        )
        .await;
    assert_eq!(ids(&page.messages), newest_first[2..4]);
    assert!(page.has_more);

    let page = bob
        .history_page(
            conversation.id,
            &format!("limit=2&before={}", newest_first[3]),
        )
        .await;
    assert_eq!(ids(&page.messages), newest_first[4..]);
    assert!(!page.has_more);

    let page = bob
        .history_page(conversation.id, &format!("after={}", sent[2]))
        .await;
    assert_eq!(ids(&page.messages), vec![sent[4], sent[3]]);
    assert!(!page.has_more);

    let page = bob
        .history_page(conversation.id, &format!("after={}&limit=1", sent[2]))
        .await;
    assert_eq!(page.messages.len(), 1);
    assert!(page.has_more);
    assert!(
        page.messages[0].id == sent[3] || page.messages[0].id == sent[4],
        "a page after a cursor holds messages after it"
    );

    let page = bob
        .history_page(
            conversation.id,
            &format!("after={}&before={}", sent[0], sent[4]),
        )
        .await;
    assert_eq!(ids(&page.messages), vec![sent[3], sent[2], sent[1]]);

    a_limit_past_the_maximum_is_never_honoured_and_a_bad_cursor_is_refused(&bob, conversation.id)
        .await;
}

async fn a_limit_past_the_maximum_is_never_honoured_and_a_bad_cursor_is_refused(
    bob: &TestUser,
    conversation: ConversationId,
) {
    // A limit past the maximum is refused or capped, never honoured.
    let reply = bob
        .get(&format!(
            "/conversations/{conversation}/messages?limit=1000"
        ))
        .await;
    if reply.status == StatusCode::OK {
        let page: HistoryPage = reply.json();
        assert!(page.messages.len() <= 100);
    } else {
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    bob.get(&format!(
        "/conversations/{conversation}/messages?before=yesterday"
    ))
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn history_of_an_unknown_conversation_is_not_found() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let unknown = ConversationId(NONEXISTENT);
    alice
        .get(&format!("/conversations/{unknown}/messages"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .get(&format!("/conversations/{unknown}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .post(
            &format!("/conversations/{unknown}/messages"),
            &SendMessage {
                reply_to: None,
                client_msg_id: Uuid::new_v4(),
                body: "anyone?".into(),
            },
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn every_api_endpoint_requires_authentication() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let anonymous = server.anonymous();
    let id = conversation.id;
    let replies = [
        anonymous.get("/me").await,
        anonymous.get("/users?q=a").await,
        anonymous.get("/conversations").await,
        anonymous
            .post(
                "/conversations",
                &CreateConversation::Direct { user_id: bob.id() },
            )
            .await,
        anonymous.get(&format!("/conversations/{id}")).await,
        anonymous
            .post(
                &format!("/conversations/{id}/members"),
                &AddMembers { user_ids: vec![] },
            )
            .await,
        anonymous
            .delete(&format!("/conversations/{id}/members/{}", bob.id()))
            .await,
        anonymous
            .get(&format!("/conversations/{id}/messages"))
            .await,
        anonymous
            .post(
                &format!("/conversations/{id}/messages"),
                &SendMessage {
                    reply_to: None,
                    client_msg_id: Uuid::new_v4(),
                    body: "sneaky".into(),
                },
            )
            .await,
    ];
    for reply in replies {
        reply.expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let history = alice.history_page(id, "").await;
    assert!(history.messages.is_empty(), "nothing was posted");
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let server = chat().start().await;
    let (status, _) = server.get_text("/healthz").await;
    assert_eq!(status, StatusCode::OK);

    for at in ["/api/v1/healthz", "/readyz", "/api/v1/readyz"] {
        let (status, body) = server.get_text(at).await;
        assert_eq!(status, StatusCode::OK, "{at}: {body}");
        if at.ends_with("readyz") {
            let readiness: Readiness = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{at} is not a Readiness ({e}): {body}"));
            assert!(readiness.ready, "{body}");
            assert!(!readiness.checks.is_empty(), "readyz names its checks");
            assert!(readiness.checks.values().all(|v| v == "ok"), "{body}");
        }
    }

    // Make every metric exist: an open connection, a sent and delivered message.
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let id = alice_ws.send_and_ack(conversation.id, "count me").await;
    bob_ws.message_with_id(id).await;

    for at in ["/metrics", "/api/v1/metrics"] {
        let text = eventually("metrics show the message", || async {
            let (status, text) = server.get_text(at).await;
            assert_eq!(status, StatusCode::OK, "{at}");
            text.contains("chat_messages_delivered_total")
                .then_some(text)
        })
        .await;
        assert_metrics(&text);
    }
}

/// Every metric issue 2 names is there, and two sockets are counted.
fn assert_metrics(text: &str) {
    for metric in [
        "chat_connections",
        "chat_messages_sent_total",
        "chat_messages_delivered_total",
        "chat_send_latency_seconds",
    ] {
        assert!(text.contains(metric), "/metrics lacks {metric}:\n{text}");
    }
    let connections = text
        .lines()
        .find(|l| l.starts_with("chat_connections"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("chat_connections has a value");
    assert!(connections >= 2.0, "two sockets are open:\n{text}");
}

/// `/a/{id}/b` → `/a/{}/b`, so documents may name their parameters as they like.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_lists_every_path() {
    let server = chat().start().await;
    for at in ["/api/v1/openapi.json", "/openapi.json"] {
        let (status, body) = server.get_text(at).await;
        assert_eq!(status, StatusCode::OK, "{at}");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("OpenAPI is JSON");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
            "{at} is not an OpenAPI 3 document"
        );
        let paths: Vec<String> = doc["paths"]
            .as_object()
            .expect("the document has paths")
            .keys()
            .map(|p| normalize(p))
            .collect();
        for wanted in [
            "/auth/signup",
            "/auth/login",
            "/auth/refresh",
            "/auth/logout",
            "/me",
            "/users",
            "/conversations",
            "/conversations/{}",
            "/conversations/{}/members",
            "/conversations/{}/members/{}",
            "/conversations/{}/messages",
            "/conversations/{}/messages/{}",
            "/conversations/{}/messages/{}/reactions/{}",
            "/search",
        ] {
            assert!(
                paths.iter().any(|p| p.ends_with(wanted)
                    && (p.len() == wanted.len() || p.ends_with(&format!("/v1{wanted}")))),
                "{at} does not document {wanted}; it has {paths:?}"
            );
        }
        // Every method of the message paths, with the schemas of their bodies.
        let message = doc["paths"]
            .as_object()
            .and_then(|paths| {
                paths
                    .iter()
                    .find(|(p, _)| normalize(p).ends_with("/conversations/{}/messages/{}"))
            })
            .map(|(_, item)| item.clone())
            .expect("the message path");
        for method in ["get", "patch", "delete"] {
            assert!(
                message.get(method).is_some(),
                "{at}: no {method} of a message"
            );
        }
        for schema in [
            "EditMessage",
            "SearchPage",
            "SearchHit",
            "Marked",
            "Reaction",
        ] {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "{at}: no schema {schema}"
            );
        }
    }
}
