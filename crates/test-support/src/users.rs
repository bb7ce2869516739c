//! Test users: signed up over HTTP with one shared password, each with their own
//! access token and HTTP client, and the few steps nearly every test takes as them
//! (open a conversation, send, read history, connect a WebSocket).

use std::time::Duration;

use chat_protocol::http::{
    AddMembers, Conversation, CreateConversation, HistoryPage, Message, SendMessage,
};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MessageId};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::api::{Api, Reply};
use crate::wait::settle_timeout;
use crate::ws::Ws;

/// A password every test user shares; it satisfies the 8-character minimum.
pub const PASSWORD: &str = "correct horse battery";

/// A signed-up user: their profile, access token and HTTP client (with cookie jar).
pub struct TestUser {
    pub user: chat_protocol::http::User,
    pub token: String,
    pub api: Api,
}

impl TestUser {
    pub fn id(&self) -> chat_protocol::UserId {
        self.user.id
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.api.get(path).await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Reply {
        self.api.post(path, body).await
    }

    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Reply {
        self.api.patch(path, body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.api.delete(path).await
    }

    pub async fn direct_with(&self, other: &TestUser) -> Conversation {
        let reply = self
            .post(
                "/conversations",
                &CreateConversation::Direct {
                    user_id: other.id(),
                },
            )
            .await;
        reply.expect_success();
        reply.json()
    }

    pub async fn group_with(&self, title: &str, others: &[&TestUser]) -> Conversation {
        self.post(
            "/conversations",
            &CreateConversation::Group {
                title: title.to_owned(),
                member_ids: others.iter().map(|u| u.id()).collect(),
            },
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// `POST /conversations/{id}/members` with `users`; the reply, to check.
    pub async fn add_to_group(&self, group: ConversationId, users: &[&TestUser]) -> Reply {
        self.post(
            &format!("/conversations/{group}/members"),
            &AddMembers {
                user_ids: users.iter().map(|u| u.id()).collect(),
            },
        )
        .await
    }

    pub async fn conversation(&self, id: ConversationId) -> Conversation {
        self.get(&format!("/conversations/{id}"))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn conversations(&self) -> Vec<Conversation> {
        self.get("/conversations").await.expect(StatusCode::OK)
    }

    /// Sends over HTTP and returns the stored message.
    pub async fn send_http(&self, conversation: ConversationId, body: &str) -> Message {
        self.post(
            &format!("/conversations/{conversation}/messages"),
            &SendMessage {
                client_msg_id: Uuid::new_v4(),
                body: body.to_owned(),
                reply_to: None,
            },
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// One page of history; `query` is the raw query string such as `limit=2&before=9`.
    pub async fn history_page(&self, conversation: ConversationId, query: &str) -> HistoryPage {
        self.get(&format!("/conversations/{conversation}/messages?{query}"))
            .await
            .expect(StatusCode::OK)
    }

    /// The newest page of history once it satisfies `ready` (history may lag the ack
    /// by a moment); fails after [`settle_timeout`].
    pub async fn history_when(
        &self,
        conversation: ConversationId,
        ready: impl Fn(&[Message]) -> bool,
    ) -> Vec<Message> {
        let deadline = Instant::now() + settle_timeout();
        loop {
            let page = self.history_page(conversation, "limit=100").await;
            if ready(&page.messages) {
                return page.messages;
            }
            if Instant::now() > deadline {
                panic!(
                    "history of {conversation} never reached the expected state; last page: {:?}",
                    page.messages
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The whole history of a conversation, newest first, page by page.
    pub async fn all_history(&self, conversation: ConversationId) -> Vec<Message> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let query = match all.last() {
                Some(oldest) => format!("limit=100&before={}", oldest.id),
                None => "limit=100".to_owned(),
            };
            let page = self.history_page(conversation, &query).await;
            all.extend(page.messages);
            if !page.has_more {
                return all;
            }
        }
    }

    /// History once every id in `ids` is in it (and nothing else is required).
    pub async fn history_containing(
        &self,
        conversation: ConversationId,
        ids: &[MessageId],
    ) -> Vec<Message> {
        self.history_when(conversation, |messages| {
            ids.iter().all(|id| messages.iter().any(|m| m.id == *id))
        })
        .await
    }

    /// A WebSocket that has sent `auth` and received `ready`.
    pub async fn connect(&self) -> Ws {
        let mut ws = Ws::connect(&self.api.endpoint).await;
        ws.send(&ClientFrame::Auth {
            token: self.token.clone(),
        })
        .await;
        let ready = ws
            .wait_for("ready", |f| match f {
                ServerFrame::Ready { user, .. } => Some(user.clone()),
                _ => None,
            })
            .await;
        assert_eq!(ready.id, self.id(), "ready names the wrong user");
        ws
    }
}

/// Message ids, newest first, as history returns them.
pub fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}
