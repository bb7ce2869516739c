//! Group roles over HTTP (DESIGN.md §4, issue 10): the creator is the admin; admins
//! add and remove members, rename the group and make or unmake admins with `PATCH
//! /conversations/{id}`; anyone may leave; the last admin leaving makes the
//! longest-standing member admin; a direct conversation has no admins and no
//! membership changes. Every refusal has its own clear error and changes nothing
//! (each test re-reads the conversation), and every change reaches the members'
//! sockets as a `conversation` frame (`removed` for whoever left), across nodes too.

use chat_protocol::http::{Conversation, MemberRole, UpdateConversation};
use chat_protocol::ws::ServerFrame;
use chat_protocol::{ConversationId, UserId};
use chat_test_support::users::TestUser;
use chat_test_support::ws::Ws;
use reqwest::StatusCode;
use serde_json::json;

use crate::chat;
use crate::cluster::{connect_on, embedded_mode, on_node, start_cluster, within_limit};

/// An id no user or conversation will have in a fresh server.
const NONEXISTENT: i64 = 4_611_686_018_427_387_903;

fn path(id: ConversationId) -> String {
    format!("/conversations/{id}")
}

fn member_path(id: ConversationId, user: UserId) -> String {
    format!("/conversations/{id}/members/{user}")
}

/// Each member's role, in the conversation's member order.
fn roles(conversation: &Conversation) -> Vec<(UserId, MemberRole)> {
    conversation
        .members
        .iter()
        .map(|m| (m.user.id, m.role))
        .collect()
}

fn role_of(conversation: &Conversation, user: &TestUser) -> Option<MemberRole> {
    conversation
        .members
        .iter()
        .find(|m| m.user.id == user.id())
        .map(|m| m.role)
}

fn make_admins(users: &[&TestUser]) -> UpdateConversation {
    UpdateConversation {
        add_admins: Some(users.iter().map(|u| u.id()).collect()),
        ..UpdateConversation::default()
    }
}

fn unmake_admins(users: &[&TestUser]) -> UpdateConversation {
    UpdateConversation {
        remove_admins: Some(users.iter().map(|u| u.id()).collect()),
        ..UpdateConversation::default()
    }
}

fn rename(title: &str) -> UpdateConversation {
    UpdateConversation {
        title: Some(title.to_owned()),
        ..UpdateConversation::default()
    }
}

/// The next `conversation` frame about `id`.
async fn conversation_frame(ws: &mut Ws, id: ConversationId) -> Conversation {
    ws.wait_for("conversation frame", |f| match f {
        ServerFrame::Conversation { conversation } if conversation.id == id => {
            Some(conversation.clone())
        }
        _ => None,
    })
    .await
}

async fn removed_frame(ws: &mut Ws, id: ConversationId) {
    ws.wait_for("removed frame", |f| match f {
        ServerFrame::Removed { conversation_id } if *conversation_id == id => Some(()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn the_creator_is_the_admin_and_direct_members_are_plain_members() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob, &carol]).await;
    for viewer in [&alice, &bob, &carol] {
        let seen = viewer.conversation(group.id).await;
        assert_eq!(role_of(&seen, &alice), Some(MemberRole::Admin));
        assert_eq!(role_of(&seen, &bob), Some(MemberRole::Member));
        assert_eq!(role_of(&seen, &carol), Some(MemberRole::Member));
    }
    // Roles travel as their snake_case names.
    let raw: serde_json::Value = alice.get(&path(group.id)).await.expect(StatusCode::OK);
    let names: Vec<&str> = raw["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(names.iter().filter(|r| **r == "admin").count(), 1, "{raw}");
    assert_eq!(names.iter().filter(|r| **r == "member").count(), 2, "{raw}");

    let direct = alice.direct_with(&bob).await;
    assert!(direct.members.iter().all(|m| m.role == MemberRole::Member));
}

#[tokio::test]
async fn an_admin_renames_and_makes_admins_and_every_member_is_told() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob, &carol]).await;
    let mut bob_phone = bob.connect().await;
    let mut bob_laptop = bob.connect().await;
    let mut carol_ws = carol.connect().await;

    let updated: Conversation = alice
        .patch(
            &path(group.id),
            &UpdateConversation {
                title: Some("  book club  ".into()),
                add_admins: Some(vec![bob.id()]),
                remove_admins: None,
            },
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(updated.title.as_deref(), Some("book club"), "trimmed");
    assert_eq!(role_of(&updated, &bob), Some(MemberRole::Admin));
    assert_eq!(role_of(&updated, &alice), Some(MemberRole::Admin));
    for ws in [&mut bob_phone, &mut bob_laptop, &mut carol_ws] {
        let told = conversation_frame(ws, group.id).await;
        assert_eq!(told.title.as_deref(), Some("book club"));
        assert_eq!(roles(&told), roles(&updated));
    }

    // The new admin can do what admins do: remove, add, and unmake the creator.
    bob.delete(&member_path(group.id, carol.id()))
        .await
        .expect_success();
    removed_frame(&mut carol_ws, group.id).await;
    bob.add_to_group(group.id, &[&carol]).await.expect_success();
    let after: Conversation = bob
        .patch(&path(group.id), &unmake_admins(&[&alice]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(role_of(&after, &alice), Some(MemberRole::Member));
    assert_eq!(role_of(&after, &bob), Some(MemberRole::Admin));
    assert_eq!(role_of(&after, &carol), Some(MemberRole::Member));
    let told = conversation_frame(&mut carol_ws, group.id).await;
    assert!(told.members.iter().any(|m| m.user.id == carol.id()));
    assert_eq!(alice.conversation(group.id).await, after);
}

#[tokio::test]
async fn a_non_admin_cannot_add_remove_rename_or_change_roles_and_nothing_changes() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let dave = server.signup("dave").await;
    let group = alice.group_with("club", &[&bob, &carol]).await;
    let before = alice.conversation(group.id).await;
    let mut carol_ws = carol.connect().await;

    let refusals = [
        bob.add_to_group(group.id, &[&dave]).await,
        bob.delete(&member_path(group.id, carol.id())).await,
        bob.delete(&member_path(group.id, alice.id())).await,
        bob.patch(&path(group.id), &rename("bob's club")).await,
        bob.patch(&path(group.id), &make_admins(&[&bob])).await,
        bob.patch(&path(group.id), &unmake_admins(&[&alice])).await,
        // Refused as a non-admin even when the request is otherwise bad too.
        bob.patch(&path(group.id), &rename("")).await,
    ];
    for reply in refusals {
        reply.expect_error(StatusCode::FORBIDDEN, "not_admin");
    }
    assert_eq!(alice.conversation(group.id).await, before);
    dave.get(&path(group.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    carol_ws
        .assert_no("a frame about a refused change", |f| {
            matches!(
                f,
                ServerFrame::Conversation { .. } | ServerFrame::Removed { .. }
            )
        })
        .await;
}

#[tokio::test]
async fn any_member_can_leave_and_the_others_are_told() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&bob, &carol]).await;
    let mut alice_ws = alice.connect().await;
    let mut carol_ws = carol.connect().await;

    let left = carol.delete(&member_path(group.id, carol.id())).await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text);
    removed_frame(&mut carol_ws, group.id).await;
    let told = conversation_frame(&mut alice_ws, group.id).await;
    assert!(told.members.iter().all(|m| m.user.id != carol.id()));
    assert_eq!(told.members.len(), 2);
    carol
        .get(&path(group.id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // A former member is an outsider: leaving again is a 404 like any other.
    carol
        .delete(&member_path(group.id, carol.id()))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_last_admin_leaving_makes_the_longest_standing_member_admin() {
    let server = chat().start().await;
    // Dave signs up first (the smallest id) but joins last: joining time decides.
    let dave = server.signup("dave").await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let group = alice.group_with("club", &[&carol, &bob]).await;
    alice
        .add_to_group(group.id, &[&dave])
        .await
        .expect_success();
    let mut dave_ws = dave.connect().await;

    alice
        .delete(&member_path(group.id, alice.id()))
        .await
        .expect_success();
    // Bob and Carol joined in the same moment as Alice; Bob's id is the smaller.
    let told = conversation_frame(&mut dave_ws, group.id).await;
    assert_eq!(role_of(&told, &bob), Some(MemberRole::Admin));
    assert_eq!(role_of(&told, &carol), Some(MemberRole::Member));
    assert_eq!(role_of(&told, &dave), Some(MemberRole::Member));
    assert_eq!(dave.conversation(group.id).await, told);

    // And the promoted member can act as admin at once.
    bob.patch(&path(group.id), &rename("bob's club"))
        .await
        .expect_success();
}

#[tokio::test]
async fn role_refusals_have_clear_errors_and_change_nothing() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let stranger = server.signup("stranger").await;
    let group = alice.group_with("club", &[&bob]).await;
    let before = alice.conversation(group.id).await;
    let at = path(group.id);

    // The only admin stepping down.
    alice
        .patch(&at, &unmake_admins(&[&alice]))
        .await
        .expect_error(StatusCode::CONFLICT, "last_admin");
    // Admins are made of members only, and of users who exist.
    alice
        .patch(&at, &make_admins(&[&stranger]))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_member");
    alice
        .patch(&at, &json!({ "add_admins": [NONEXISTENT.to_string()] }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_member");
    // All or nothing: a good rename beside a bad role change does not happen.
    alice
        .patch(
            &at,
            &UpdateConversation {
                title: Some("renamed".into()),
                add_admins: Some(vec![bob.id(), stranger.id()]),
                remove_admins: None,
            },
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "not_a_member");
    let bad_requests = [
        json!({}),
        json!({ "title": "" }),
        json!({ "title": "   " }),
        json!({ "title": "x".repeat(101) }),
        json!({ "add_admins": [bob.id()], "remove_admins": [bob.id()] }),
        json!({ "titel": "typo" }),
        json!({ "add_admins": ["not a number"] }),
        json!({ "add_admins": bob.id() }),
    ];
    for body in bad_requests {
        let reply = alice.patch(&at, &body).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    }
    // Removing a non-member is a 404.
    alice
        .delete(&member_path(group.id, stranger.id()))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // An outsider learns nothing, whether the group exists or not.
    for target in [group.id, ConversationId(NONEXISTENT)] {
        stranger
            .patch(&path(target), &rename("mine"))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(alice.conversation(group.id).await, before);

    // The last member cannot leave (the admin removing themselves, alone).
    bob.delete(&member_path(group.id, bob.id()))
        .await
        .expect_success();
    let alone = alice.conversation(group.id).await;
    alice
        .delete(&member_path(group.id, alice.id()))
        .await
        .expect_error(StatusCode::CONFLICT, "last_member");
    assert_eq!(alice.conversation(group.id).await, alone);
}

#[tokio::test]
async fn a_direct_conversation_has_no_admins_and_no_membership_changes() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let carol = server.signup("carol").await;
    let direct = alice.direct_with(&bob).await;
    let before = alice.conversation(direct.id).await;
    let refusals = [
        alice.patch(&path(direct.id), &rename("us")).await,
        alice.patch(&path(direct.id), &make_admins(&[&alice])).await,
        alice.delete(&member_path(direct.id, alice.id())).await,
        bob.delete(&member_path(direct.id, alice.id())).await,
        alice.add_to_group(direct.id, &[&carol]).await,
    ];
    for reply in refusals {
        reply.expect_error(StatusCode::BAD_REQUEST, "not_a_group");
    }
    assert_eq!(alice.conversation(direct.id).await, before);
}

#[tokio::test]
async fn patching_a_conversation_requires_authentication_and_is_documented() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    let group = alice.group_with("club", &[&bob]).await;
    server
        .anonymous()
        .patch(&path(group.id), &rename("anonymous"))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        alice.conversation(group.id).await.title.as_deref(),
        Some("club")
    );

    let (status, body) = server.get_text("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("OpenAPI is JSON");
    let paths = doc["paths"].as_object().expect("the document has paths");
    let operation = paths
        .iter()
        .find(|(p, _)| p.ends_with("/conversations/{id}"))
        .map(|(_, item)| &item["patch"])
        .expect("/conversations/{id} is documented");
    assert!(
        operation["requestBody"].is_object(),
        "PATCH /conversations/{{id}} is documented with its body: {operation}"
    );
    assert!(doc["components"]["schemas"]["UpdateConversation"].is_object());
    assert!(doc["components"]["schemas"]["MemberRole"].is_object());
}

#[tokio::test]
async fn a_role_change_on_one_node_reaches_members_on_another() {
    if embedded_mode("a_role_change_on_one_node_reaches_members_on_another") {
        return;
    }
    within_limit(
        "a_role_change_on_one_node_reaches_members_on_another",
        async {
            let (_services, nodes) = start_cluster(2, &[]).await;
            let alice = nodes[0].signup("alice").await;
            let bob = nodes[0].signup("bob").await;
            let carol = nodes[0].signup("carol").await;
            let group = alice.group_with("club", &[&bob, &carol]).await;
            let mut carol_on_b = connect_on(&carol, &nodes[1]).await;
            let mut bob_on_b = connect_on(&bob, &nodes[1]).await;

            alice
                .patch(
                    &path(group.id),
                    &UpdateConversation {
                        title: Some("renamed on a".into()),
                        add_admins: Some(vec![bob.id()]),
                        remove_admins: None,
                    },
                )
                .await
                .expect_success();
            let told = conversation_frame(&mut carol_on_b, group.id).await;
            assert_eq!(told.title.as_deref(), Some("renamed on a"));
            assert_eq!(role_of(&told, &bob), Some(MemberRole::Admin));
            let told_bob = conversation_frame(&mut bob_on_b, group.id).await;
            assert_eq!(roles(&told_bob), roles(&told));

            // Node b sees the new admin at once: Bob acts there.
            let bob_b = on_node(&bob, &nodes[1]);
            bob_b
                .delete(&member_path(group.id, carol.id()))
                .await
                .expect_success();
            removed_frame(&mut carol_on_b, group.id).await;
            let told = conversation_frame(&mut bob_on_b, group.id).await;
            assert!(told.members.iter().all(|m| m.user.id != carol.id()));

            // Alice leaves on a; Bob is still an admin, so nobody is promoted, and Carol
            // (removed) cannot act on b.
            alice
                .delete(&member_path(group.id, alice.id()))
                .await
                .expect_success();
            let seen = bob_b.conversation(group.id).await;
            assert_eq!(roles(&seen), vec![(bob.id(), MemberRole::Admin)]);
            on_node(&carol, &nodes[1])
                .patch(&path(group.id), &rename("carol's"))
                .await
                .expect_error(StatusCode::NOT_FOUND, "not_found");
        },
    )
    .await;
}
