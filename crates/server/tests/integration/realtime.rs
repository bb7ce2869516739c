//! The WebSocket protocol of DESIGN.md §5 on the happy path: two and three users
//! chatting, delivery to every connection, typing, read receipts, presence,
//! membership events and `sync` after a reconnect.

use chat_protocol::http::{AddMembers, Message};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{MessageId, UserId};
use chat_test_support::services;
use chat_test_support::users::ids;
use chat_test_support::wait::{RECEIVE_TIMEOUT, eventually};
use chat_test_support::ws::Ws;
use reqwest::StatusCode;

use crate::chat;

#[tokio::test]
async fn two_users_chat_over_websockets() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;

    let client_msg_id = alice_ws.send_message(conversation.id, "hi bob").await;
    let (ack_conversation, hello) = alice_ws
        .wait_for("ack", |f| match f {
            ServerFrame::Ack {
                event_id: _,
                client_msg_id: id,
                message_id,
                conversation_id,
            } if *id == client_msg_id => Some((*conversation_id, *message_id)),
            _ => None,
        })
        .await;
    assert_eq!(ack_conversation, conversation.id);

    let received = bob_ws.message_with_id(hello).await;
    assert_eq!(received.body, "hi bob");
    assert_eq!(received.sender_id, alice.id());
    assert_eq!(received.conversation_id, conversation.id);
    assert_eq!(received.client_msg_id, client_msg_id);
    let echoed = alice_ws.message_with_id(hello).await;
    assert_eq!(echoed, received, "the sender gets the same message frame");

    let reply = bob_ws.send_and_ack(conversation.id, "hi alice").await;
    assert!(reply > hello, "ids increase in delivery order");
    assert_eq!(alice_ws.message_with_id(reply).await.body, "hi alice");
    bob_ws.message_with_id(reply).await;

    let history = alice
        .history_containing(conversation.id, &[hello, reply])
        .await;
    assert_eq!(ids(&history), vec![reply, hello]);
}

#[tokio::test]
async fn three_users_in_a_group_reach_every_connection_of_every_member() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let dave = server.signup("dave").await;
    let group = alice.group_with("trio", &[&bob, &carol]).await;

    let mut alice_phone = alice.connect().await;
    let mut alice_laptop = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let mut carol_ws = carol.connect().await;
    let mut dave_ws = dave.connect().await;

    let mut sent = Vec::new();
    let id = alice_phone
        .send_and_ack(group.id, "from alice's phone")
        .await;
    sent.push(id);
    for ws in [
        &mut alice_phone,
        &mut alice_laptop,
        &mut bob_ws,
        &mut carol_ws,
    ] {
        assert_eq!(ws.message_with_id(id).await.body, "from alice's phone");
    }
    let id = bob_ws.send_and_ack(group.id, "from bob").await;
    sent.push(id);
    for ws in [
        &mut alice_phone,
        &mut alice_laptop,
        &mut bob_ws,
        &mut carol_ws,
    ] {
        assert_eq!(ws.message_with_id(id).await.sender_id, bob.id());
    }
    let id = carol.send_http(group.id, "from carol over HTTP").await.id;
    sent.push(id);
    for ws in [
        &mut alice_phone,
        &mut alice_laptop,
        &mut bob_ws,
        &mut carol_ws,
    ] {
        assert_eq!(ws.message_with_id(id).await.body, "from carol over HTTP");
    }
    dave_ws.assert_no_message().await;

    let history = carol.history_containing(group.id, &sent).await;
    let mut newest_first = sent.clone();
    newest_first.reverse();
    assert_eq!(ids(&history), newest_first);
    for user in [&alice, &bob] {
        let conversation = user.conversation(group.id).await;
        assert_eq!(
            conversation.last_message.map(|m| m.id),
            Some(*sent.last().unwrap())
        );
    }
}

#[tokio::test]
async fn ready_names_the_user_and_the_heartbeat() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let mut ws = Ws::connect(&server.endpoint).await;
    ws.send(&ClientFrame::Auth {
        token: alice.token.clone(),
    })
    .await;
    match ws.recv().await {
        ServerFrame::Ready { user, heartbeat_ms } => {
            assert_eq!(user, alice.user);
            assert!(heartbeat_ms > 0);
        }
        other => panic!("the first frame should be ready, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bearer_header_on_the_upgrade_authenticates_without_an_auth_frame() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let bearer = format!("Bearer {}", alice.token);
    let mut ws = Ws::connect_with_headers(&server.endpoint, &[("authorization", &bearer)])
        .await
        .expect("upgrade with a bearer header");
    match ws.recv().await {
        ServerFrame::Ready { user, .. } => assert_eq!(user.id, alice.id()),
        other => panic!("expected ready at once, got {other:?}"),
    }
    ws.send_and_ack(conversation.id, "no auth frame needed")
        .await;
}

#[tokio::test]
async fn application_and_websocket_pings_are_answered() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let mut ws = alice.connect().await;
    ws.send(&ClientFrame::Ping).await;
    ws.wait_for("pong", |f| matches!(f, ServerFrame::Pong).then_some(()))
        .await;

    // A protocol-level ping gets a protocol-level pong.
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let mut socket = ws.into_socket();
    socket
        .send(WsMessage::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(RECEIVE_TIMEOUT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let WsMessage::Pong(payload) = message {
                return payload;
            }
        }
        panic!("the socket ended before a pong");
    })
    .await
    .expect("a pong within the timeout");
    assert_eq!(&pong[..], b"are you there");
}

#[tokio::test]
async fn typing_reaches_the_other_members() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let conversation = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let mut carol_ws = carol.connect().await;

    alice_ws
        .send(&ClientFrame::Typing {
            conversation_id: conversation.id,
        })
        .await;
    let (conversation_id, user_id) = bob_ws
        .wait_for("typing", |f| match f {
            ServerFrame::Typing {
                conversation_id,
                user_id,
            } => Some((*conversation_id, *user_id)),
            _ => None,
        })
        .await;
    assert_eq!((conversation_id, user_id), (conversation.id, alice.id()));
    carol_ws
        .assert_no("typing", |f| matches!(f, ServerFrame::Typing { .. }))
        .await;
}

#[tokio::test]
async fn read_receipts_reach_the_other_members() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let id = alice_ws.send_and_ack(conversation.id, "read me").await;
    bob_ws.message_with_id(id).await;

    bob_ws
        .send(&ClientFrame::Read {
            conversation_id: conversation.id,
            message_id: id,
        })
        .await;
    let receipt = alice_ws
        .wait_for("read receipt", |f| match f {
            ServerFrame::Read {
                conversation_id,
                user_id,
                message_id,
            } => Some((*conversation_id, *user_id, *message_id)),
            _ => None,
        })
        .await;
    assert_eq!(receipt, (conversation.id, bob.id(), id));
    eventually("bob has nothing unread", || async {
        (bob.conversation(conversation.id).await.unread_count == 0).then_some(())
    })
    .await;
}

fn presence_of(user: UserId, online: bool) -> impl Fn(&ServerFrame) -> Option<()> {
    move |f| match f {
        ServerFrame::Presence { user_id, online: o } if *user_id == user && *o == online => {
            Some(())
        }
        _ => None,
    }
}

#[tokio::test]
async fn presence_goes_to_users_who_share_a_conversation() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let stranger = server.signup("stranger").await;
    alice.direct_with(&bob).await;
    let mut bob_ws = bob.connect().await;
    let mut stranger_ws = stranger.connect().await;

    let alice_ws = alice.connect().await;
    bob_ws
        .wait_for("alice online", presence_of(alice.id(), true))
        .await;

    alice_ws.close().await;
    bob_ws
        .wait_for("alice offline", presence_of(alice.id(), false))
        .await;

    let alice_id = alice.id();
    stranger_ws
        .assert_no(
            "presence of alice",
            move |f| matches!(f, ServerFrame::Presence { user_id, .. } if *user_id == alice_id),
        )
        .await;
}

#[tokio::test]
async fn a_user_stays_online_while_any_of_their_connections_is_open() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    alice.direct_with(&bob).await;
    let mut bob_ws = bob.connect().await;
    let phone = alice.connect().await;
    bob_ws
        .wait_for("alice online", presence_of(alice.id(), true))
        .await;
    let laptop = alice.connect().await;

    phone.close().await;
    let alice_id = alice.id();
    bob_ws
        .assert_no("alice offline", move |f| {
            matches!(f, ServerFrame::Presence { user_id, online: false } if *user_id == alice_id)
        })
        .await;
    laptop.close().await;
    bob_ws
        .wait_for("alice offline", presence_of(alice.id(), false))
        .await;
}

#[tokio::test]
async fn a_user_added_to_a_group_is_told_at_once_and_receives_its_messages() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob]).await;
    let mut carol_phone = carol.connect().await;
    let mut carol_laptop = carol.connect().await;
    let mut alice_ws = alice.connect().await;

    alice
        .post(
            &format!("/conversations/{}/members", group.id),
            &AddMembers {
                user_ids: vec![carol.id()],
            },
        )
        .await
        .expect_success();
    for ws in [&mut carol_phone, &mut carol_laptop] {
        let told = ws
            .wait_for("conversation event", |f| match f {
                ServerFrame::Conversation { conversation } if conversation.id == group.id => {
                    Some(conversation.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(told.title.as_deref(), Some("club"));
        assert!(told.members.iter().any(|m| m.user.id == carol.id()));
    }

    let id = alice_ws.send_and_ack(group.id, "welcome carol").await;
    assert_eq!(carol_phone.message_with_id(id).await.body, "welcome carol");
    carol_laptop.message_with_id(id).await;
    let reply = carol_phone.send_and_ack(group.id, "thank you").await;
    alice_ws.message_with_id(reply).await;
}

#[tokio::test]
async fn a_removed_member_is_told_and_stops_receiving() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob, &carol]).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;

    alice
        .delete(&format!("/conversations/{}/members/{}", group.id, bob.id()))
        .await
        .expect_success();
    let removed = bob_ws
        .wait_for("removed", |f| match f {
            ServerFrame::Removed { conversation_id } => Some(*conversation_id),
            _ => None,
        })
        .await;
    assert_eq!(removed, group.id);

    let id = alice_ws.send_and_ack(group.id, "bob is gone").await;
    alice_ws.message_with_id(id).await;
    bob_ws.assert_no_message().await;

    let client_msg_id = bob_ws.send_message(group.id, "let me back in").await;
    let (code, for_id) = bob_ws.next_error().await;
    assert_eq!(code, "not_found");
    assert_eq!(for_id, Some(client_msg_id));
    let history = alice.history_containing(group.id, &[id]).await;
    assert_eq!(
        ids(&history),
        vec![id],
        "bob's send after removal was refused"
    );
}

#[tokio::test]
async fn sync_replays_missed_messages_in_id_order_then_synced() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let direct = alice.direct_with(&bob).await;
    let group = carol.group_with("three", &[&alice, &bob]).await;
    let elsewhere = alice.direct_with(&carol).await;

    let mut bob_ws = bob.connect().await;
    let seen = alice.send_http(direct.id, "before the tunnel").await;
    bob_ws.message_with_id(seen.id).await;
    bob_ws.close().await;

    // Bob is offline; messages arrive in both of his conversations.
    let mut missed = Vec::new();
    for (user, conversation, body) in [
        (&alice, direct.id, "one"),
        (&carol, group.id, "two"),
        (&alice, direct.id, "three"),
        (&alice, group.id, "four"),
    ] {
        missed.push(user.send_http(conversation, body).await.id);
    }
    alice.send_http(elsewhere.id, "not for bob").await;

    let mut bob_ws = bob.connect().await;
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(seen.id),
        })
        .await;
    let (replayed, until) = collect_sync(&mut bob_ws).await;
    // With several nodes appending, a replay starts a little before `since` (the
    // log's reorder window); the client drops what it already has by id.
    // (Live copies from the fan-out may interleave too when it runs behind.)
    let fresh: Vec<MessageId> = as_the_client_keeps_them(&replayed)
        .into_iter()
        .filter(|id| *id > seen.id)
        .collect();
    assert_eq!(fresh, missed, "every missed message, in id order");
    assert!(
        services::distributed() || replayed.len() == missed.len(),
        "the embedded log replays exactly what came after `since`"
    );
    assert_eq!(until, Some(*missed.last().unwrap()));

    // From the beginning: everything bob may see, nothing else.
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(MessageId(0)),
        })
        .await;
    let (replayed, _) = collect_sync(&mut bob_ws).await;
    let mut everything = vec![seen.id];
    everything.extend(&missed);
    assert_eq!(as_the_client_keeps_them(&replayed), everything);

    // Nothing missed: just `synced`.
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(*missed.last().unwrap()),
        })
        .await;
    let (replayed, _) = collect_sync(&mut bob_ws).await;
    let last = *missed.last().unwrap();
    assert!(
        replayed.iter().all(|m| m.id <= last),
        "nothing new: {replayed:?}"
    );
    assert!(
        services::distributed() || replayed.is_empty(),
        "{replayed:?}"
    );
}

/// The ids of `received` as a client keeps them. The embedded log delivers each
/// message once, in order, so they are taken as they came. With Kafka, live copies
/// from a fan-out running behind may interleave with a replay (from another
/// partition, so out of id order); the client de-duplicates by id and sorts.
fn as_the_client_keeps_them(received: &[Message]) -> Vec<MessageId> {
    let mut kept = ids(received);
    if services::distributed() {
        kept.sort();
        kept.dedup();
    }
    kept
}

/// Reads `message` frames until `synced`; returns them in arrival order.
async fn collect_sync(ws: &mut Ws) -> (Vec<Message>, Option<MessageId>) {
    let mut replayed = Vec::new();
    loop {
        match ws
            .wait_for("sync replay", |f| match f {
                ServerFrame::Message { message } => Some(Err(message.clone())),
                ServerFrame::Synced { until } => Some(Ok(*until)),
                _ => None,
            })
            .await
        {
            Err(message) => replayed.push(message),
            Ok(until) => return (replayed, until),
        }
    }
}

#[tokio::test]
async fn the_servers_own_origin_may_connect() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let origin = server.endpoint.origin();
    let mut ws = Ws::connect_with_headers(&server.endpoint, &[("origin", &origin)])
        .await
        .expect("upgrade from the server's own origin");
    ws.send(&ClientFrame::Auth {
        token: alice.token.clone(),
    })
    .await;
    ws.wait_for("ready", |f| {
        matches!(f, ServerFrame::Ready { .. }).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_configured_origin_may_connect() {
    let server = chat()
        .env(&[(
            "CHAT_ALLOWED_ORIGINS",
            "https://chat.example.com,https://app.example.com",
        )])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let mut ws =
        Ws::connect_with_headers(&server.endpoint, &[("origin", "https://app.example.com")])
            .await
            .expect("upgrade from an allowed origin");
    ws.send(&ClientFrame::Auth {
        token: alice.token.clone(),
    })
    .await;
    ws.wait_for("ready", |f| {
        matches!(f, ServerFrame::Ready { .. }).then_some(())
    })
    .await;
}

#[tokio::test]
async fn http_sends_and_group_changes_need_membership_but_not_a_socket() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let conversation = alice.direct_with(&bob).await;
    let mut bob_ws = bob.connect().await;
    let message = alice.send_http(conversation.id, "sent by a script").await;
    let delivered = bob_ws.message_with_id(message.id).await;
    assert_eq!(delivered, message, "the HTTP reply and the frame agree");
    // The list reads history, which may lag the live frame by a moment.
    eventually("the conversation shows its last message", || async {
        let seen = bob.conversation(conversation.id).await;
        (seen.last_message.as_ref() == Some(&message)).then_some(())
    })
    .await;
    let _: Vec<chat_protocol::http::Conversation> =
        bob.get("/conversations").await.expect(StatusCode::OK);
}
