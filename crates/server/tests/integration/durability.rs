//! What survives a restart on the same data dir: every acknowledged message, every
//! session (access and refresh tokens), read markers; and how shutdown looks to
//! connected clients (close 1001).

use chat_protocol::http::{RefreshResponse, User};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MessageId, close};
use chat_test_support::users::{TestUser, ids};
use chat_test_support::wait::{RECEIVE_TIMEOUT, eventually};
use chat_test_support::ws::{Event, Ws};
use reqwest::StatusCode;

use crate::chat;

#[tokio::test]
async fn every_acknowledged_message_and_every_session_survive_a_restart() {
    // No CHAT_JWT_SECRET: the secret generated into the data dir must be reused.
    let mut server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let direct = alice.direct_with(&bob).await.id;
    let group = alice.group_with("trio", &[&bob, &carol]).await.id;

    let mut alice_ws = alice.connect().await;
    let (acked_direct, acked_group) =
        messages_are_acknowledged_up_to_the_signal(&mut alice_ws, &bob, &carol, direct, group)
            .await;
    let mut bob_ws = bob.connect().await;
    bob_reads_the_group_up_to(&mut bob_ws, &bob, group, acked_group[2]).await;

    server.restart().await;

    let users = [&alice, &bob, &carol];
    old_access_tokens_still_work(&users).await;
    every_acknowledged_message_is_in_history_in_order_and_nothing_else(
        &bob,
        &carol,
        (direct, &acked_direct),
        (group, &acked_group),
    )
    .await;
    read_markers_and_unread_counts_survived(&bob, group, acked_group[2]).await;
    refresh_cookies_still_work(&users).await;

    // Sockets open with the old tokens; new ids are still larger than the old ones.
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let newest_before = *acked_direct.iter().chain(&acked_group).max().unwrap();
    let after = alice_ws.send_and_ack(direct, "after the restart").await;
    assert!(
        after > newest_before,
        "ids keep increasing across a restart"
    );
    bob_ws.message_with_id(after).await;

    // Sync from the start replays every message bob may see, in id order.
    let replayed = sync_from_the_start(&mut bob_ws).await;
    let mut everything: Vec<MessageId> = acked_direct.iter().chain(&acked_group).copied().collect();
    everything.push(after);
    everything.sort();
    assert_eq!(replayed, everything);
}

/// Ten pipelined WebSocket sends to `direct`, six HTTP sends to `group`, and a last
/// WebSocket send acknowledged an instant before the signal; returns the ids.
async fn messages_are_acknowledged_up_to_the_signal(
    alice_ws: &mut Ws,
    bob: &TestUser,
    carol: &TestUser,
    direct: ConversationId,
    group: ConversationId,
) -> (Vec<MessageId>, Vec<MessageId>) {
    let mut acked_direct = Vec::new();
    let mut in_flight = Vec::new();
    for i in 0..10 {
        in_flight.push(alice_ws.send_message(direct, &format!("ws {i}")).await);
    }
    for client_msg_id in in_flight {
        acked_direct.push(alice_ws.ack_of(client_msg_id).await);
    }
    let mut acked_group = Vec::new();
    for i in 0..5 {
        acked_group.push(bob.send_http(group, &format!("http {i}")).await.id);
    }
    acked_group.push(carol.send_http(group, "carol too").await.id);
    // The last one is acknowledged an instant before the signal.
    acked_direct.push(alice_ws.send_and_ack(direct, "last words").await);
    (acked_direct, acked_group)
}

async fn bob_reads_the_group_up_to(
    bob_ws: &mut Ws,
    bob: &TestUser,
    group: ConversationId,
    read: MessageId,
) {
    bob_ws
        .send(&ClientFrame::Read {
            conversation_id: group,
            message_id: read,
        })
        .await;
    bob_ws.round_trip().await;
    eventually("bob's read marker is stored", || async {
        (bob.conversation(group).await.unread_count == 1).then_some(())
    })
    .await;
}

/// The persisted secret was reused, so tokens issued before the restart still work.
async fn old_access_tokens_still_work(users: &[&TestUser]) {
    for user in users {
        let me: User = user.get("/me").await.expect(StatusCode::OK);
        assert_eq!(me.id, user.id());
    }
}

async fn every_acknowledged_message_is_in_history_in_order_and_nothing_else(
    bob: &TestUser,
    carol: &TestUser,
    (direct, acked_direct): (ConversationId, &[MessageId]),
    (group, acked_group): (ConversationId, &[MessageId]),
) {
    let direct_history = bob.history_containing(direct, acked_direct).await;
    let mut want = acked_direct.to_vec();
    want.reverse();
    assert_eq!(ids(&direct_history), want);
    let group_history = carol.history_containing(group, acked_group).await;
    let mut want = acked_group.to_vec();
    want.reverse();
    assert_eq!(ids(&group_history), want);
    assert_eq!(group_history.last().unwrap().body, "http 0");
}

async fn read_markers_and_unread_counts_survived(
    bob: &TestUser,
    group: ConversationId,
    read: MessageId,
) {
    let seen = bob.conversation(group).await;
    assert_eq!(seen.unread_count, 1);
    let marker = seen.members.iter().find(|m| m.user.id == bob.id()).unwrap();
    assert_eq!(marker.last_read_id, Some(read));
}

/// Each refresh cookie still buys an access token that works.
async fn refresh_cookies_still_work(users: &[&TestUser]) {
    for user in users {
        let refreshed: RefreshResponse = user.api.refresh().await.expect(StatusCode::OK);
        user.api
            .with_token(&refreshed.access_token)
            .get("/me")
            .await
            .expect::<User>(StatusCode::OK);
    }
}

/// Sends `sync` since id 0 and returns the replayed ids, in the order they came.
async fn sync_from_the_start(ws: &mut Ws) -> Vec<MessageId> {
    ws.send(&ClientFrame::Sync {
        since: Some(MessageId(0)),
    })
    .await;
    let mut replayed: Vec<MessageId> = Vec::new();
    loop {
        let next = ws
            .wait_for("sync replay", |f| match f {
                ServerFrame::Message { message } => Some(Some(message.id)),
                ServerFrame::Synced { .. } => Some(None),
                _ => None,
            })
            .await;
        match next {
            Some(id) => replayed.push(id),
            None => return replayed,
        }
    }
}

#[tokio::test]
async fn sessions_survive_a_restart_with_a_configured_secret() {
    let mut server = chat()
        .env(&[(
            "CHAT_JWT_SECRET",
            "a-test-secret-0123456789abcdef0123456789",
        )])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    // Bob rotates once; his old refresh token is kept to replay after the restart.
    let bobs_old_refresh = bob.api.refresh_cookie().unwrap();
    bob.api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);

    server.restart().await;

    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
    alice.connect().await.round_trip().await;
    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);

    // Reuse detection survives the restart too: the replay revokes the family.
    bob.api
        .refresh_with_cookie(&bobs_old_refresh)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    bob.api
        .refresh()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn sigterm_closes_open_sockets_with_1001_and_exits_cleanly() {
    let mut server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    alice.direct_with(&bob).await;
    let mut sockets = vec![
        alice.connect().await,
        alice.connect().await,
        bob.connect().await,
    ];
    // An unauthenticated socket is closed too.
    let mut unauthenticated = Ws::connect(&server.endpoint).await;

    server.send_sigterm();
    for ws in &mut sockets {
        assert_eq!(ws.expect_close().await, Some(close::GOING_AWAY));
    }
    let code = unauthenticated.expect_close().await;
    assert!(
        code == Some(close::GOING_AWAY) || code.is_none(),
        "unexpected close {code:?}"
    );
    let status = server.wait_for_exit().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn every_send_acknowledged_during_shutdown_is_kept() {
    let mut server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await.id;
    let mut alice_ws = alice.connect().await;

    // Many sends in flight, then SIGTERM: whatever was acknowledged must be kept.
    for i in 0..100 {
        let frame = ClientFrame::Send {
            reply_to: None,
            conversation_id: conversation,
            client_msg_id: uuid::Uuid::new_v4(),
            body: format!("in flight {i}"),
        };
        if !alice_ws.try_send(&frame).await {
            break; // the server has already closed the socket
        }
        if i == 50 {
            server.send_sigterm();
        }
    }
    let mut acked = Vec::new();
    loop {
        match alice_ws.next_event(RECEIVE_TIMEOUT).await {
            Event::Frame(ServerFrame::Ack { message_id, .. }) => acked.push(message_id),
            Event::Frame(_) => {}
            Event::Closed(code) => {
                assert!(
                    code == Some(close::GOING_AWAY) || code.is_none(),
                    "closed with {code:?}"
                );
                break;
            }
            Event::TimedOut => panic!("the socket stayed open after SIGTERM"),
        }
    }
    let status = server.wait_for_exit().await;
    assert!(status.success(), "exit status {status}");
    server.start_again().await;

    let history = alice.history_containing(conversation, &acked).await;
    assert!(history.len() >= acked.len());
    let mut history_ids = ids(&history);
    history_ids.sort();
    history_ids.dedup();
    assert_eq!(history_ids.len(), history.len(), "no duplicates in history");
}

#[tokio::test]
async fn a_crash_loses_no_acknowledged_message() {
    let mut server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await.id;
    let mut alice_ws = alice.connect().await;
    let mut in_flight = Vec::new();
    for i in 0..30 {
        in_flight.push(alice_ws.send_message(conversation, &format!("m{i}")).await);
    }
    let mut acked = Vec::new();
    for client_msg_id in in_flight {
        acked.push(alice_ws.ack_of(client_msg_id).await);
    }
    server.crash_and_restart().await;

    let history = bob.history_containing(conversation, &acked).await;
    let mut want = acked.clone();
    want.reverse();
    assert_eq!(ids(&history), want);
    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
}
