//! Conversation events end to end (issue 10): edits, deletions, reactions, replies,
//! mentions and search over the WebSocket and HTTP, live to every connection, from
//! `sync` after being away, idempotent by `client_msg_id`, refused with a clear
//! error that changes nothing, and a deleted body gone from every row.

use std::time::Duration;

use chat_protocol::events::{MessageDeleted, MessageEdited, ReactionChanged};
use chat_protocol::http::{Conversation, EditMessage, Message, SearchPage, SendMessage};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ErrorCode, MAX_BODY_CHARS, MessageId};
use chat_test_support::users::TestUser;
use chat_test_support::wait::eventually;
use chat_test_support::ws::{Event, Ws};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::chat;
use crate::cluster::{connect_on, embedded_mode, start_cluster, within_limit};

async fn edit_ws(ws: &mut Ws, message: &Message, body: &str) -> Result<MessageId, ErrorCode> {
    let client_msg_id = Uuid::new_v4();
    ws.send(&ClientFrame::Edit {
        conversation_id: message.conversation_id,
        message_id: message.id,
        client_msg_id,
        body: body.into(),
    })
    .await;
    outcome(ws, client_msg_id).await
}

async fn delete_ws(ws: &mut Ws, message: &Message) -> Result<MessageId, ErrorCode> {
    let client_msg_id = Uuid::new_v4();
    ws.send(&ClientFrame::Delete {
        conversation_id: message.conversation_id,
        message_id: message.id,
        client_msg_id,
    })
    .await;
    outcome(ws, client_msg_id).await
}

async fn react_ws(
    ws: &mut Ws,
    message: &Message,
    emoji: &str,
    on: bool,
) -> Result<MessageId, ErrorCode> {
    let client_msg_id = Uuid::new_v4();
    ws.send(&ClientFrame::React {
        conversation_id: message.conversation_id,
        message_id: message.id,
        client_msg_id,
        emoji: emoji.into(),
        on,
    })
    .await;
    outcome(ws, client_msg_id).await
}

/// The event id of the ack for `client_msg_id`, or the error code refusing it.
async fn outcome(ws: &mut Ws, client_msg_id: Uuid) -> Result<MessageId, ErrorCode> {
    ws.wait_for(&format!("the answer to {client_msg_id}"), |f| match f {
        ServerFrame::Ack {
            client_msg_id: id,
            event_id,
            ..
        } if *id == client_msg_id => Some(Ok(*event_id)),
        ServerFrame::Error {
            client_msg_id: Some(id),
            code,
            ..
        } if *id == client_msg_id => Some(Err(*code)),
        _ => None,
    })
    .await
}

async fn edited(ws: &mut Ws, id: MessageId) -> MessageEdited {
    ws.wait_for("an edited frame", |f| match f {
        ServerFrame::Edited(e) if e.id == id => Some(e.clone()),
        _ => None,
    })
    .await
}

async fn deleted(ws: &mut Ws, id: MessageId) -> MessageDeleted {
    ws.wait_for("a deleted frame", |f| match f {
        ServerFrame::Deleted(e) if e.id == id => Some(e.clone()),
        _ => None,
    })
    .await
}

async fn reaction(ws: &mut Ws, id: MessageId) -> ReactionChanged {
    ws.wait_for("a reaction frame", |f| match f {
        ServerFrame::Reaction(e) if e.id == id => Some(e.clone()),
        _ => None,
    })
    .await
}

fn path(message: &Message) -> String {
    format!(
        "/conversations/{}/messages/{}",
        message.conversation_id, message.id
    )
}

fn reaction_path(message: &Message, emoji: &str) -> String {
    let emoji: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
    format!("{}/reactions/{emoji}", path(message))
}

async fn request(
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<&impl serde::Serialize>,
) -> chat_test_support::api::Reply {
    let mut builder = user.api.request(method.clone(), path);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    user.api.send(format!("{method} {path}"), builder).await
}

async fn patch(
    user: &TestUser,
    message: &Message,
    edit: &EditMessage,
) -> chat_test_support::api::Reply {
    request(user, Method::PATCH, &path(message), Some(edit)).await
}

async fn put_reaction(
    user: &TestUser,
    message: &Message,
    emoji: &str,
) -> chat_test_support::api::Reply {
    request(
        user,
        Method::PUT,
        &reaction_path(message, emoji),
        None::<&()>,
    )
    .await
}

/// The message as `user` reads it over HTTP, once `ready` holds.
async fn message_when(
    user: &TestUser,
    message: &Message,
    what: &str,
    ready: impl Fn(&Message) -> bool,
) -> Message {
    eventually(what, || async {
        let reply = user.get(&path(message)).await;
        let now: Message = reply.expect(StatusCode::OK);
        ready(&now).then_some(now)
    })
    .await
}

async fn search(user: &TestUser, query: &str) -> chat_test_support::api::Reply {
    let q: String = url_escape(query);
    user.get(&format!("/search?q={q}")).await
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn found(user: &TestUser, query: &str) -> Vec<MessageId> {
    let page: SearchPage = search(user, query).await.expect(StatusCode::OK);
    page.results.iter().map(|hit| hit.message.id).collect()
}

#[tokio::test]
async fn edits_deletions_and_reactions_reach_every_connection_live() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let group = alice.group_with("crew", &[&bob]).await;
    let mut phone = alice.connect().await;
    let mut laptop = alice.connect().await;
    let mut bob_ws = bob.connect().await;

    let id = phone.send_and_ack(group.id, "helo @bob").await;
    let message = bob_ws.message_with_id(id).await;
    assert_eq!(message.mentions, [bob.id()]);

    let edit = edit_ws(&mut phone, &message, "hello @bob")
        .await
        .expect("an ack");
    for ws in [&mut phone, &mut laptop, &mut bob_ws] {
        let frame = edited(ws, edit).await;
        assert_eq!((frame.message_id, frame.body.as_str()), (id, "hello @bob"));
        assert_eq!(frame.user_id, alice.id());
        assert_eq!(frame.mentions, [bob.id()]);
    }
    let thumbs = react_ws(&mut bob_ws, &message, "👍", true)
        .await
        .expect("an ack");
    for ws in [&mut phone, &mut laptop, &mut bob_ws] {
        let frame = reaction(ws, thumbs).await;
        assert_eq!(
            (frame.user_id, frame.emoji.as_str(), frame.on),
            (bob.id(), "👍", true)
        );
    }
    let now = message_when(&alice, &message, "the reaction is in history", |m| {
        !m.reactions.is_empty()
    })
    .await;
    assert_eq!(now.body, "hello @bob");
    assert!(now.edited_at.is_some());
    assert_eq!(now.reactions[0].user_ids, [bob.id()]);
    assert!(!now.reactions[0].me, "alice did not react");
    let bobs: Message = bob.get(&path(&message)).await.expect(StatusCode::OK);
    assert!(bobs.reactions[0].me, "`me` is per reader");

    // Deleted over HTTP: every connection is told, and history keeps only the shell.
    request(&alice, Method::DELETE, &path(&message), None::<&()>)
        .await
        .expect_success();
    let deletion = laptop
        .wait_for("a deleted frame", |f| match f {
            ServerFrame::Deleted(e) if e.message_id == id => Some(e.id),
            _ => None,
        })
        .await;
    for ws in [&mut phone, &mut bob_ws] {
        assert_eq!(deleted(ws, deletion).await.user_id, alice.id());
    }
    let shell = message_when(&bob, &message, "the deletion is in history", |m| m.deleted).await;
    assert_eq!(
        (shell.id, shell.sender_id, shell.created_at),
        (id, alice.id(), message.created_at)
    );
    assert_eq!(shell.body, "");
    assert!(shell.reactions.is_empty() && shell.mentions.is_empty());
}

#[tokio::test]
async fn a_client_offline_during_an_edit_a_delete_and_a_reaction_gets_all_three_from_sync() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let direct = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let first = alice.send_http(direct.id, "first").await;
    let second = alice.send_http(direct.id, "second").await;
    let third = alice.send_http(direct.id, "third").await;
    let mut bob_ws = bob.connect().await;
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(MessageId(0)),
        })
        .await;
    bob_ws.message_with_id(third.id).await;
    bob_ws.close().await;

    let edit = edit_ws(&mut alice_ws, &first, "first, edited")
        .await
        .expect("edited");
    let deletion = delete_ws(&mut alice_ws, &second).await.expect("deleted");
    let party = react_ws(&mut alice_ws, &third, "🎉", true)
        .await
        .expect("reacted");
    let fourth = alice.send_http(direct.id, "fourth").await;
    // Everything has been fanned out before bob is back, so what he gets is the replay.
    alice_ws.message_with_id(fourth.id).await;

    let mut bob_ws = bob.connect().await;
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(third.id),
        })
        .await;
    let mut replayed = Vec::new();
    loop {
        match bob_ws.next_event(Duration::from_secs(10)).await {
            Event::Frame(ServerFrame::Synced { .. }) => break,
            Event::Frame(
                frame @ (ServerFrame::Edited(_)
                | ServerFrame::Deleted(_)
                | ServerFrame::Reaction(_)
                | ServerFrame::Message { .. }),
            ) => replayed.push(frame),
            Event::Frame(_) => {}
            other => panic!("no synced: {other:?}"),
        }
    }
    let ids: Vec<MessageId> = replayed
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Edited(e) => Some(e.id),
            ServerFrame::Deleted(e) => Some(e.id),
            ServerFrame::Reaction(e) => Some(e.id),
            ServerFrame::Message { message } => Some(message.id),
            _ => None,
        })
        .collect();
    if server.services.is_none() {
        assert_eq!(
            ids,
            [edit, deletion, party, fourth.id],
            "all of it, in id order"
        );
        assert!(matches!(&replayed[0], ServerFrame::Edited(e) if e.body == "first, edited"));
        assert!(matches!(&replayed[1], ServerFrame::Deleted(e) if e.message_id == second.id));
        assert!(matches!(&replayed[2], ServerFrame::Reaction(e) if e.emoji == "🎉" && e.on));
    }
    // With several nodes the replay starts a few seconds before `since` (messages can
    // land out of id order), so the messages come again as they are now. Either way,
    // what the client holds after applying the replay is the truth.
    let mut held = vec![first.clone(), second.clone(), third.clone()];
    for frame in &replayed {
        apply(&mut held, frame);
    }
    assert_eq!(held.len(), 4, "the new message arrived");
    assert_eq!(held[0].body, "first, edited");
    assert!(held[1].deleted && held[1].body.is_empty());
    assert_eq!(held[2].reactions.len(), 1);
    assert_eq!(held[2].reactions[0].user_ids, [alice.id()]);
    assert_eq!(held[3].id, fourth.id);

    // A replay from before the deleted message shows it deleted, never its body.
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(MessageId(0)),
        })
        .await;
    let shell = bob_ws.message_with_id(second.id).await;
    assert!(shell.deleted && shell.body.is_empty());
    let edited_first = bob_ws.message_with_id(first.id).await;
    assert_eq!(edited_first.body, "first, edited");
}

/// What a client does with a frame of a replay: the rules of `ServerFrame`'s docs.
fn apply(held: &mut Vec<Message>, frame: &ServerFrame) {
    let find = |held: &mut Vec<Message>, id| held.iter_mut().position(|m| m.id == id);
    match frame {
        ServerFrame::Message { message } => match find(held, message.id) {
            Some(at) => held[at] = message.clone(),
            None => {
                held.push(message.clone());
                held.sort_by_key(|m| m.id);
            }
        },
        ServerFrame::Edited(e) => {
            if let Some(at) = find(held, e.message_id) {
                let m = &mut held[at];
                if !m.deleted && m.edited_at.is_none_or(|t| t <= e.at) {
                    m.body = e.body.clone();
                    m.mentions = e.mentions.clone();
                    m.edited_at = Some(e.at);
                }
            }
        }
        ServerFrame::Deleted(e) => {
            if let Some(at) = find(held, e.message_id) {
                let m = &mut held[at];
                m.deleted = true;
                m.body.clear();
                m.reactions.clear();
                m.mentions.clear();
            }
        }
        ServerFrame::Reaction(e) => {
            let Some(at) = find(held, e.message_id) else {
                return;
            };
            let m = &mut held[at];
            if m.deleted {
                return;
            }
            let slot = match m.reactions.iter().position(|r| r.emoji == e.emoji) {
                Some(slot) => slot,
                None => {
                    m.reactions.push(chat_protocol::http::Reaction {
                        emoji: e.emoji.clone(),
                        count: 0,
                        me: false,
                        user_ids: Vec::new(),
                    });
                    m.reactions.len() - 1
                }
            };
            let reaction = &mut m.reactions[slot];
            reaction.user_ids.retain(|u| *u != e.user_id);
            if e.on {
                reaction.user_ids.push(e.user_id);
            }
            reaction.count = reaction.user_ids.len() as u32;
            m.reactions.retain(|r| r.count > 0);
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_retried_change_takes_effect_once() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let direct = alice.direct_with(&bob).await;
    let message = alice.send_http(direct.id, "v1").await;
    let mut bob_ws = bob.connect().await;

    let edit = EditMessage {
        client_msg_id: Uuid::new_v4(),
        body: "v2".into(),
    };
    let first: Message = patch(&alice, &message, &edit).await.expect(StatusCode::OK);
    let again: Message = patch(&alice, &message, &edit).await.expect(StatusCode::OK);
    assert_eq!((first.body.as_str(), again.body.as_str()), ("v2", "v2"));
    // The same key over the WebSocket answers with the same ack, appends nothing.
    let mut alice_ws = alice.connect().await;
    alice_ws
        .send(&ClientFrame::Edit {
            conversation_id: direct.id,
            message_id: message.id,
            client_msg_id: edit.client_msg_id,
            body: "v3?".into(),
        })
        .await;
    outcome(&mut alice_ws, edit.client_msg_id)
        .await
        .expect("the earlier ack");

    let key = Uuid::new_v4();
    for _ in 0..3 {
        request(
            &bob,
            Method::PUT,
            &format!("{}?client_msg_id={key}", reaction_path(&message, "❤️")),
            None::<&()>,
        )
        .await
        .expect_success();
    }
    // Bob saw exactly one edit and one reaction.
    alice_ws.round_trip().await;
    bob_ws.round_trip().await;
    let mut frames: Vec<ServerFrame> = bob_ws.backlog().iter().cloned().collect();
    while let Event::Frame(frame) = bob_ws.next_event(Duration::from_millis(500)).await {
        frames.push(frame);
    }
    let edits = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Edited(_)))
        .count();
    let reactions = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Reaction(_)))
        .count();
    assert_eq!((edits, reactions), (1, 1));
    let now = message_when(&alice, &message, "the reaction is stored", |m| {
        !m.reactions.is_empty()
    })
    .await;
    assert_eq!(now.body, "v2");
    assert_eq!(now.reactions[0].count, 1);
}

#[tokio::test]
async fn bad_changes_are_refused_with_a_clear_error_and_change_nothing() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let eve = server.signup("eve").await;
    let group = alice.group_with("crew", &[&bob]).await;
    let elsewhere: Conversation = eve.direct_with(&alice).await;
    let mine = alice.send_http(group.id, "alice's words").await;
    let theirs = alice.send_http(elsewhere.id, "not for bob").await;
    let gone = alice.send_http(group.id, "to be deleted").await;
    request(&alice, Method::DELETE, &path(&gone), None::<&()>)
        .await
        .expect_success();
    message_when(&alice, &gone, "the deletion is stored", |m| m.deleted).await;
    let mut bob_ws = bob.connect().await;
    let mut alice_ws = alice.connect().await;

    // Someone else's message, as a member who is not its author (nor an admin).
    assert_eq!(
        edit_ws(&mut bob_ws, &mine, "bob's now").await,
        Err(ErrorCode::NotAuthor)
    );
    assert_eq!(
        delete_ws(&mut bob_ws, &mine).await,
        Err(ErrorCode::NotAuthor)
    );
    patch(
        &bob,
        &mine,
        &EditMessage {
            client_msg_id: Uuid::new_v4(),
            body: "x".into(),
        },
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "not_author");
    // A conversation one is not in: 404, as for anything an outsider may not know.
    for reply in [
        bob.get(&path(&theirs)).await,
        patch(
            &bob,
            &theirs,
            &EditMessage {
                client_msg_id: Uuid::new_v4(),
                body: "x".into(),
            },
        )
        .await,
        request(&bob, Method::DELETE, &path(&theirs), None::<&()>).await,
        put_reaction(&bob, &theirs, "👍").await,
    ] {
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    // A message id under the wrong conversation is no message of it.
    let mismatched = Message {
        conversation_id: group.id,
        ..theirs.clone()
    };
    patch(
        &alice,
        &mismatched,
        &EditMessage {
            client_msg_id: Uuid::new_v4(),
            body: "x".into(),
        },
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    // Reactions are one emoji.
    for bad in ["ok", "👍👍", "<script>", " ", "a👍", &"😀".repeat(50)] {
        assert_eq!(
            react_ws(&mut bob_ws, &mine, bad, true).await,
            Err(ErrorCode::InvalidEmoji),
            "{bad:?}"
        );
    }
    put_reaction(&bob, &mine, "lol")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_emoji");
    // Replies name a live message of the same conversation.
    for reply_to in [theirs.id, MessageId(12345)] {
        alice
            .post(
                &format!("/conversations/{}/messages", group.id),
                &SendMessage {
                    client_msg_id: Uuid::new_v4(),
                    body: "re".into(),
                    reply_to: Some(reply_to),
                },
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_reply");
    }
    alice
        .post(
            &format!("/conversations/{}/messages", group.id),
            &SendMessage {
                client_msg_id: Uuid::new_v4(),
                body: "re".into(),
                reply_to: Some(gone.id),
            },
        )
        .await
        .expect_error(StatusCode::CONFLICT, "message_deleted");
    // A deleted message takes no more changes.
    assert_eq!(
        edit_ws(&mut alice_ws, &gone, "back").await,
        Err(ErrorCode::MessageDeleted)
    );
    assert_eq!(
        delete_ws(&mut alice_ws, &gone).await,
        Err(ErrorCode::MessageDeleted)
    );
    assert_eq!(
        react_ws(&mut bob_ws, &gone, "👍", true).await,
        Err(ErrorCode::MessageDeleted)
    );
    // An edit may not empty the body or make it too long.
    assert_eq!(
        edit_ws(&mut alice_ws, &mine, " \n ").await,
        Err(ErrorCode::EmptyBody)
    );
    let long = "a".repeat(MAX_BODY_CHARS + 1);
    assert_eq!(
        edit_ws(&mut alice_ws, &mine, &long).await,
        Err(ErrorCode::BodyTooLong)
    );
    // At most MAX_REACTIONS_PER_MESSAGE different emoji on one message.
    let emoji: Vec<&str> = emojis::iter().map(|e| e.as_str()).take(21).collect();
    for e in &emoji[..20] {
        react_ws(&mut bob_ws, &mine, e, true)
            .await
            .expect("room for it");
    }
    assert_eq!(
        react_ws(&mut alice_ws, &mine, emoji[20], true).await,
        Err(ErrorCode::TooManyReactions)
    );
    react_ws(&mut alice_ws, &mine, emoji[0], true)
        .await
        .expect("an emoji already there is fine");

    // Nothing of it changed the messages.
    let now = message_when(&alice, &mine, "the reactions are stored", |m| {
        m.reactions.len() == 20 && m.reactions[0].count == 2
    })
    .await;
    assert_eq!(now.body, "alice's words");
    assert!(now.edited_at.is_none());
    assert_eq!(now.reactions[0].count, 2);
    let other: Message = alice.get(&path(&theirs)).await.expect(StatusCode::OK);
    assert_eq!(
        (other.body.as_str(), other.reactions.len()),
        ("not for bob", 0)
    );
}

#[tokio::test]
async fn a_group_admin_deletes_any_message_and_a_direct_conversation_has_no_admin() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let group = alice.group_with("crew", &[&bob]).await;
    let direct = bob.direct_with(&alice).await;
    let mut alice_ws = alice.connect().await;
    let bobs = bob.send_http(group.id, "spam").await;
    let bobs_direct = bob.send_http(direct.id, "hi").await;
    // Alice created the group: she administers it, and may delete bob's message there.
    delete_ws(&mut alice_ws, &bobs)
        .await
        .expect("an admin deletes");
    message_when(&bob, &bobs, "the deletion is stored", |m| m.deleted).await;
    // In a direct conversation nobody is an admin.
    assert_eq!(
        delete_ws(&mut alice_ws, &bobs_direct).await,
        Err(ErrorCode::NotAuthor)
    );
    // An admin may not edit someone else's message.
    let other = bob.send_http(group.id, "mine").await;
    assert_eq!(
        edit_ws(&mut alice_ws, &other, "hers").await,
        Err(ErrorCode::NotAuthor)
    );
}

#[tokio::test]
async fn mentions_resolve_to_members_and_count_until_read() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let _carol = server.signup("carol").await;
    let group = alice.group_with("crew", &[&bob]).await;
    let reply = alice
        .send_http(group.id, "@bob and @carol, see @BOB's mail x@bob.com")
        .await;
    assert_eq!(
        reply.mentions,
        [bob.id()],
        "members only, each once, not inside words"
    );
    alice.send_http(group.id, "no mention").await;
    let reply_to = SendMessage {
        client_msg_id: Uuid::new_v4(),
        body: "replying to you @bob".into(),
        reply_to: Some(reply.id),
    };
    let quoted: Message = alice
        .post(&format!("/conversations/{}/messages", group.id), &reply_to)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(quoted.reply_to, Some(reply.id));

    let counts = eventually("bob has two unread mentions", || async {
        let list = bob.conversations().await;
        let entry = list.into_iter().find(|c| c.id == group.id)?;
        (entry.unread_mentions == 2).then_some(entry)
    })
    .await;
    assert_eq!(counts.unread_count, 3);
    let alices = alice.conversations().await;
    assert_eq!(alices[0].unread_mentions, 0);

    let mut bob_ws = bob.connect().await;
    bob_ws
        .send(&ClientFrame::Read {
            conversation_id: group.id,
            message_id: reply.id,
        })
        .await;
    eventually("reading moves the mention count", || async {
        let list = bob.conversations().await;
        list.iter()
            .any(|c| c.id == group.id && c.unread_mentions == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn search_covers_only_the_callers_conversations_and_refuses_bad_queries() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let eve = server.signup("eve").await;
    let direct = alice.direct_with(&bob).await;
    let secret = eve.direct_with(&alice).await;
    let deploy = alice
        .send_http(direct.id, "Deploying the green build")
        .await;
    let again = bob.send_http(direct.id, "green build is green again").await;
    let theirs = eve
        .send_http(secret.id, "green secret of eve and alice")
        .await;
    let edited = alice.send_http(direct.id, "typo teh").await;
    let doomed = alice.send_http(direct.id, "greenhouse gossip").await;
    let mut alice_ws = alice.connect().await;
    edit_ws(&mut alice_ws, &edited, "fixed the typo")
        .await
        .expect("edited");
    delete_ws(&mut alice_ws, &doomed).await.expect("deleted");

    // The index trails the log by a moment: wait until it has the edit.
    let page = eventually("search sees the edit and the deletion", || async {
        let page: SearchPage = search(&bob, "green").await.expect(StatusCode::OK);
        let ids: Vec<_> = page.results.iter().map(|h| h.message.id).collect();
        let reindexed = found(&bob, "fixed").await.contains(&edited.id);
        (ids == [again.id, deploy.id] && reindexed).then_some(page)
    })
    .await;
    let marked: Vec<(&str, bool)> = page.results[1]
        .marked
        .iter()
        .map(|m| (m.text.as_str(), m.matched))
        .collect();
    assert_eq!(
        marked,
        [
            ("Deploying the ", false),
            ("green", true),
            (" build", false)
        ]
    );
    assert!(found(&bob, "teh").await.is_empty(), "edits re-index");
    assert!(
        found(&bob, "greenhouse").await.is_empty(),
        "deletions leave the index"
    );
    assert!(found(&bob, "gossip").await.is_empty());
    assert!(
        found(&bob, "secret").await.is_empty(),
        "bob is not in eve's conversation"
    );
    assert_eq!(found(&alice, "secret").await, [theirs.id]);
    assert_eq!(found(&bob, "\"green build\" DEPLOY").await, [deploy.id]);
    // Operators and quotes are words or separators, never syntax: no 500.
    for odd in [
        "green AND",
        "NEAR(green build)",
        "green*",
        "^green",
        "'; DROP TABLE messages; --",
        "a:b",
        "(green OR",
    ] {
        search(&bob, odd).await.expect_success();
    }
    // Paging by next_before.
    let first: SearchPage = bob
        .get("/search?q=green&limit=1")
        .await
        .expect(StatusCode::OK);
    let before = first.next_before.expect("another page");
    let second: SearchPage = bob
        .get(&format!("/search?q=green&limit=1&before={before}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.results[0].message.id, deploy.id);
    assert!(second.next_before.is_none());
    // One conversation; one the caller is not in is not found.
    let only: SearchPage = bob
        .get(&format!("/search?q=green&conversation_id={}", direct.id))
        .await
        .expect(StatusCode::OK);
    assert_eq!(only.results.len(), 2);
    bob.get(&format!("/search?q=green&conversation_id={}", secret.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // Bad queries: a clear 400.
    for bad in ["", "   ", "\"unclosed", "a\0b", &"x".repeat(201), "*** ()"] {
        search(&bob, bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    bob.get("/search?q=green&limit=0")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
}

/// Every text value of every row in the embedded database, or in the distributed
/// mode's PostgreSQL database.
async fn every_stored_text(server: &chat_test_support::server::Server) -> Vec<String> {
    use sqlx::{Column, Row};
    let mut texts = Vec::new();
    match &server.services {
        None => {
            let url = format!(
                "sqlite://{}?mode=ro",
                server.data_dir().join("chat.db").display()
            );
            let pool = sqlx::SqlitePool::connect(&url)
                .await
                .expect("open the database");
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(&pool)
                    .await
                    .expect("list the tables");
            for table in tables {
                for row in sqlx::query(&format!("SELECT * FROM \"{table}\""))
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default()
                {
                    for column in row.columns() {
                        if let Ok(Some(text)) = row.try_get::<Option<String>, _>(column.ordinal()) {
                            texts.push(text);
                        }
                    }
                }
            }
        }
        Some(services) => {
            let pool = sqlx::PgPool::connect(&services.database_url())
                .await
                .expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&pool)
            .await
            .expect("list the tables");
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                        .fetch_all(&pool)
                        .await
                        .expect("read a table");
                texts.extend(rows);
            }
        }
    }
    texts
}

#[tokio::test]
async fn a_deleted_body_is_in_no_row_no_search_and_no_replay() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let direct = alice.direct_with(&bob).await;
    let message = alice
        .send_http(direct.id, "the vault code is zebra4417")
        .await;
    let mut alice_ws = alice.connect().await;
    edit_ws(&mut alice_ws, &message, "the vault code is quokka9921")
        .await
        .expect("edited");
    alice.send_http(direct.id, "keep this one").await;
    let probe = eventually("the edit is stored", || async {
        let texts = every_stored_text(&server).await;
        texts.iter().any(|t| t.contains("quokka9921")).then_some(())
    });
    probe.await;
    delete_ws(&mut alice_ws, &message).await.expect("deleted");
    message_when(&bob, &message, "the deletion is stored", |m| m.deleted).await;
    eventually("no row holds the deleted words", || async {
        let texts = every_stored_text(&server).await;
        let leaks: Vec<&String> = texts
            .iter()
            .filter(|t| t.contains("zebra4417") || t.contains("quokka9921"))
            .collect();
        leaks.is_empty().then_some(())
    })
    .await;
    assert!(
        every_stored_text(&server)
            .await
            .iter()
            .any(|t| t.contains("keep this one")),
        "the scan does see stored bodies"
    );
    assert!(found(&bob, "zebra4417").await.is_empty());
    assert!(found(&bob, "quokka9921").await.is_empty());
    let mut bob_ws = bob.connect().await;
    bob_ws
        .send(&ClientFrame::Sync {
            since: Some(MessageId(0)),
        })
        .await;
    let mut replayed = String::new();
    loop {
        match bob_ws.next_event(Duration::from_secs(10)).await {
            Event::Frame(ServerFrame::Synced { .. }) => break,
            Event::Frame(frame) => {
                replayed.push_str(&serde_json::to_string(&frame).unwrap_or_default())
            }
            other => panic!("no synced: {other:?}"),
        }
    }
    assert!(!replayed.contains("zebra4417") && !replayed.contains("quokka9921"));
}

#[tokio::test]
async fn a_restarted_node_applies_every_acknowledged_event_once() {
    let mut server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let direct = alice.direct_with(&bob).await;
    let mut alice_ws = alice.connect().await;
    let mut bob_ws = bob.connect().await;
    let mut messages = Vec::new();
    for i in 0..20 {
        messages.push(alice.send_http(direct.id, &format!("message {i}")).await);
    }
    for (i, message) in messages.iter().enumerate() {
        edit_ws(&mut alice_ws, message, &format!("message {i}, edited"))
            .await
            .expect("edited");
        react_ws(&mut bob_ws, message, "👍", true)
            .await
            .expect("reacted");
        if i % 4 == 0 {
            delete_ws(&mut alice_ws, message).await.expect("deleted");
        }
    }
    // Killed right after the last ack: the persister may be mid-batch.
    server.crash_and_restart().await;
    for (i, message) in messages.iter().enumerate() {
        let now = message_when(&bob, message, "every event is applied", |m| {
            m.deleted || !m.reactions.is_empty()
        })
        .await;
        if i % 4 == 0 {
            assert!(now.deleted && now.body.is_empty() && now.reactions.is_empty());
        } else {
            assert_eq!(now.body, format!("message {i}, edited"));
            assert_eq!(now.reactions.len(), 1);
            assert_eq!(now.reactions[0].count, 1, "applied once");
            assert_eq!(now.reactions[0].user_ids, [bob.id()]);
        }
    }
    // The search index too: every live message by its edited body, newest first.
    let live: Vec<MessageId> = messages
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 0)
        .map(|(_, m)| m.id)
        .rev()
        .collect();
    eventually(
        "the index holds every edit and no deleted message",
        || async {
            let page: SearchPage = bob
                .get("/search?q=edited&limit=50")
                .await
                .expect(StatusCode::OK);
            let ids: Vec<MessageId> = page.results.iter().map(|h| h.message.id).collect();
            (ids == live).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_member_on_another_node_sees_edits_deletions_and_reactions_live() {
    const TEST: &str = "a_member_on_another_node_sees_edits_deletions_and_reactions_live";
    if embedded_mode(TEST) {
        return;
    }
    within_limit(TEST, async {
        let (_services, nodes) = start_cluster(2, &[]).await;
        let alice = nodes[0].signup("alice").await;
        let bob = nodes[1].signup("bob").await;
        let direct = alice.direct_with(&bob).await;
        let mut alice_ws = connect_on(&alice, &nodes[0]).await;
        let mut bob_ws = connect_on(&bob, &nodes[1]).await;
        let id = alice_ws.send_and_ack(direct.id, "across nodes").await;
        let message = bob_ws.message_with_id(id).await;
        let edit = edit_ws(&mut alice_ws, &message, "across nodes, edited")
            .await
            .expect("edited");
        assert_eq!(edited(&mut bob_ws, edit).await.body, "across nodes, edited");
        let react = react_ws(&mut bob_ws, &message, "🚀", true)
            .await
            .expect("reacted");
        assert_eq!(reaction(&mut alice_ws, react).await.user_id, bob.id());
        let deletion = delete_ws(&mut alice_ws, &message).await.expect("deleted");
        assert_eq!(deleted(&mut bob_ws, deletion).await.message_id, id);
    })
    .await;
}
