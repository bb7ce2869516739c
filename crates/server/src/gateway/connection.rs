//! One WebSocket connection: a task that owns the socket. It authenticates, then
//! reads frames and answers them, while a writer task drains the connection's bounded
//! outbound queue (shared with the hub, which fans messages into it) and sends
//! heartbeat pings. The connection ends on close, error, token expiry (4401), a
//! flood (4429), an oversized frame (1009), falling behind (the hub kicks it) or
//! server shutdown (1001).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chat_protocol::ErrorCode;
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MAX_FRAME_BYTES, MessageId, UserId, close};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Admission;
use super::hub::Outbound;
use crate::app::ApiContext;
use crate::auth::AccessGrant;
use crate::error::AppError;
use crate::events::{encode, encode_message};
use crate::persister::caught_up;
use crate::send::Sent;
use crate::snowflake::{first_id_at, unix_ms_of};

const SYNC_PAGE: u32 = 500;
/// How long a reply may wait for room in the connection's own queue (sync replays).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = SplitSink<WebSocket, WsMessage>;
type Stream = SplitStream<WebSocket>;

pub async fn run(ctx: ApiContext, socket: WebSocket, admission: Admission) {
    let (mut sink, mut stream) = socket.split();
    let grant = match admission {
        Admission::ForeignOrigin => {
            return close_now(&mut sink, close::POLICY, "origin not allowed").await;
        }
        Admission::BadToken => {
            return close_now(
                &mut sink,
                close::UNAUTHENTICATED,
                "invalid or expired token",
            )
            .await;
        }
        Admission::Authenticated(grant) => grant,
        Admission::AwaitAuth => match authenticate(&ctx, &mut stream).await {
            Ok(grant) => grant,
            Err((code, reason)) => return close_now(&mut sink, code, reason).await,
        },
    };
    let Ok(Some(user)) = ctx.directory.user(grant.user).await else {
        return close_now(&mut sink, close::UNAUTHENTICATED, "unknown user").await;
    };

    // Count the connection before `ready`: once the client sees `ready`, closing
    // another of its connections must not make it look offline.
    let contacts = ctx.directory.contacts(grant.user).await.unwrap_or_default();
    let came_online = ctx.presence.connected(grant.user).await.unwrap_or(false);

    let (queue, outbound) = mpsc::channel(ctx.config.outbound_queue);
    let kick = Arc::new(Notify::new());
    let ready = ServerFrame::Ready {
        user,
        heartbeat_ms: ctx.config.heartbeat_ms,
    };
    let _ = queue.try_send(encode(&ready));
    let id = ctx.hub.register(grant.user, queue.clone(), kick.clone());
    let (closer, close_rx) = oneshot::channel();
    let heartbeat = Duration::from_millis(u64::from(ctx.config.heartbeat_ms));
    let writer = tokio::spawn(write_frames(sink, outbound, close_rx, heartbeat));

    let mut connection = Connection {
        ctx: ctx.clone(),
        user: grant.user,
        queue,
    };
    connection.announce_presence(&contacts, came_online).await;
    let (code, reason) = connection.read_frames(&mut stream, &kick, grant).await;

    connection.went_offline().await;
    let _ = closer.send((code, reason));
    drop(connection);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    // Read on until the client answers the close (or a second passes): dropping a
    // socket with unread frames in it resets the connection, and a flooding client
    // would then never see its close code.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    // Only now, with the close frame sent, does the connection stop counting: shutdown
    // waits for the count to reach zero before the runtime (and this task) is dropped.
    ctx.hub.unregister(grant.user, id);
}

/// Waits for the first frame, which must be a valid `auth`.
async fn authenticate(
    ctx: &ApiContext,
    stream: &mut Stream,
) -> Result<AccessGrant, (u16, &'static str)> {
    let deadline = tokio::time::Instant::now() + ctx.config.auth_timeout();
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| (close::AUTH_TIMEOUT, "no auth frame in time"))?;
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
                return match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(ClientFrame::Auth { token }) => ctx
                        .tokens
                        .verify(&token)
                        .map_err(|_| (close::UNAUTHENTICATED, "invalid or expired token")),
                    _ => Err((close::UNAUTHENTICATED, "the first frame must be auth")),
                };
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(WsMessage::Binary(_))) => {
                return Err((close::UNAUTHENTICATED, "the first frame must be auth"));
            }
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => {
                return Err((close::UNAUTHENTICATED, "closed before auth"));
            }
        }
    }
}

async fn close_now(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = sink.send(WsMessage::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Sends queued frames and heartbeat pings until told to close.
async fn write_frames(
    mut sink: Sink,
    mut outbound: mpsc::Receiver<Outbound>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
    heartbeat: Duration,
) {
    let mut pings = tokio::time::interval(heartbeat);
    pings.tick().await;
    loop {
        tokio::select! {
            frame = outbound.recv() => {
                let Some(frame) = frame else {
                    // Every sender is gone because the reader ended: its close code
                    // is on the way (or already sent), so don't lose it in this race.
                    if let Ok((code, reason)) = (&mut close_rx).await {
                        close_now(&mut sink, code, reason).await;
                    }
                    return;
                };
                if sink.feed(WsMessage::Text(frame)).await.is_err() {
                    return;
                }
                // Batch whatever else is queued into one flush.
                while let Ok(frame) = outbound.try_recv() {
                    if sink.feed(WsMessage::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            _ = pings.tick() => {
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            reason = &mut close_rx => {
                // Frames already queued (an ack, `synced`) go out before the close.
                while let Ok(frame) = outbound.try_recv() {
                    if sink.feed(WsMessage::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if let Ok((code, reason)) = reason {
                    close_now(&mut sink, code, reason).await;
                }
                return;
            }
        }
    }
}

/// A per-connection token bucket for frames of any kind.
struct FrameBudget {
    tokens: f64,
    updated: Instant,
    rate_per_sec: f64,
    burst: f64,
}

impl FrameBudget {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.updated).as_secs_f64() * self.rate_per_sec)
            .min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Connection {
    ctx: ApiContext,
    user: UserId,
    queue: mpsc::Sender<Outbound>,
}

impl Connection {
    /// Reads and answers frames until the connection must end; returns the close.
    async fn read_frames(
        &mut self,
        stream: &mut Stream,
        kick: &Notify,
        grant: AccessGrant,
    ) -> (u16, &'static str) {
        let mut shutdown = self.ctx.shutdown.clone();
        let mut budget = FrameBudget {
            tokens: self.ctx.config.frame_burst,
            updated: Instant::now(),
            rate_per_sec: self.ctx.config.frames_per_sec,
            burst: self.ctx.config.frame_burst,
        };
        let now_unix = jsonwebtoken::get_current_timestamp();
        let expiry = tokio::time::sleep(Duration::from_secs(
            grant.expires_at.saturating_sub(now_unix),
        ));
        tokio::pin!(expiry);
        // A `sync` may wait for history to catch up with the log before it replays,
        // so it runs beside the frames that follow it (sends are not held up behind
        // it). One at a time; dropping the set when the connection ends aborts it.
        let mut syncs = JoinSet::new();
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopping| *stopping) => return (close::GOING_AWAY, "server shutting down"),
                _ = kick.notified() => return (close::POLICY, "too slow: the connection fell behind"),
                _ = &mut expiry => return (close::UNAUTHENTICATED, "token expired"),
                frame = stream.next() => frame,
            };
            let text = match frame {
                Some(Ok(WsMessage::Text(text))) => text,
                Some(Ok(WsMessage::Binary(bytes))) => {
                    if bytes.len() > MAX_FRAME_BYTES {
                        return (close::TOO_LARGE, "frame too large");
                    }
                    if !budget.take() {
                        return (close::TOO_MANY_FRAMES, "too many frames");
                    }
                    self.error(
                        ErrorCode::InvalidFrame,
                        "frames are JSON text, not binary",
                        None,
                    );
                    continue;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return (1000, "bye"),
            };
            if text.len() > MAX_FRAME_BYTES {
                return (close::TOO_LARGE, "frame too large");
            }
            if !budget.take() {
                return (close::TOO_MANY_FRAMES, "too many frames");
            }
            self.handle(&text, &mut syncs).await;
        }
    }

    async fn handle(&mut self, text: &str, syncs: &mut JoinSet<()>) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) if e.is_data() => {
                return self.error(
                    ErrorCode::InvalidFrame,
                    &format!("not a valid frame: {e}"),
                    None,
                );
            }
            Err(e) => return self.error(ErrorCode::MalformedJson, &format!("not JSON: {e}"), None),
        };
        match frame {
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body,
            } => self.send(conversation_id, client_msg_id, body).await,
            ClientFrame::Typing { conversation_id } => self.typing(conversation_id).await,
            ClientFrame::Read {
                conversation_id,
                message_id,
            } => self.read(conversation_id, message_id).await,
            ClientFrame::Sync { since } => {
                while syncs.try_join_next().is_some() {}
                if syncs.is_empty() {
                    let connection = self.clone();
                    syncs.spawn(async move { connection.sync(since).await });
                } else {
                    self.error(
                        ErrorCode::SyncInProgress,
                        "a sync is already running on this connection; wait for its synced",
                        None,
                    );
                }
            }
            ClientFrame::Ping => self.reply(&ServerFrame::Pong),
            ClientFrame::Auth { .. } => self.error(
                ErrorCode::AlreadyAuthenticated,
                "this connection is authenticated",
                None,
            ),
        }
    }

    async fn send(&mut self, conversation_id: ConversationId, client_msg_id: Uuid, body: String) {
        match self
            .ctx
            .sender
            .send(self.user, conversation_id, client_msg_id, body)
            .await
        {
            Ok(sent) => self.reply(&ack(&sent, client_msg_id)),
            Err(error) => self.refuse(&error, Some(client_msg_id)),
        }
    }

    async fn typing(&mut self, conversation_id: ConversationId) {
        let members = match self.ctx.members.of(conversation_id).await {
            Ok(members) if members.contains(&self.user) => members,
            Ok(_) => return self.refuse(&AppError::NotFound("conversation"), None),
            Err(e) => return self.refuse(&e.into(), None),
        };
        let others: Vec<UserId> = members
            .iter()
            .copied()
            .filter(|m| *m != self.user)
            .collect();
        let frame = ServerFrame::Typing {
            conversation_id,
            user_id: self.user,
        };
        self.ctx.events.publish(&others, encode(&frame)).await;
    }

    async fn read(&mut self, conversation_id: ConversationId, message_id: MessageId) {
        match self.mark_read(conversation_id, message_id).await {
            Ok(Some(members)) => {
                let frame = ServerFrame::Read {
                    conversation_id,
                    user_id: self.user,
                    message_id,
                };
                self.ctx.events.publish(&members, encode(&frame)).await;
            }
            Ok(None) => {}
            Err(error) => self.refuse(&error, None),
        }
    }

    /// Moves the read marker; returns the members to tell if it moved.
    async fn mark_read(
        &self,
        conversation_id: ConversationId,
        message_id: MessageId,
    ) -> Result<Option<Arc<[UserId]>>, AppError> {
        let members = self.ctx.members.of(conversation_id).await?;
        if !members.contains(&self.user) {
            return Err(AppError::NotFound("conversation"));
        }
        let mut message = self.ctx.history.message(message_id).await?;
        if message.is_none() {
            // It may be acknowledged but not yet in history.
            caught_up(self.ctx.log.as_ref(), Duration::from_secs(2)).await;
            message = self.ctx.history.message(message_id).await?;
        }
        if message.is_none_or(|m| m.conversation_id != conversation_id) {
            return Err(AppError::NotFound("message"));
        }
        let moved = self
            .ctx
            .directory
            .mark_read(conversation_id, self.user, message_id)
            .await?;
        Ok(moved.then_some(members))
    }

    /// Replays every message after `since` in the user's conversations, in id order.
    async fn sync(&self, since: Option<MessageId>) {
        let Some(since) = since else {
            return self.reply(&ServerFrame::Synced { until: None });
        };
        // History must hold everything acknowledged so far before it is replayed.
        if !caught_up(self.ctx.log.as_ref(), Duration::from_secs(5)).await {
            return self.refuse(&AppError::Unavailable("message history"), None);
        }
        let conversations = match self.ctx.directory.conversations_of(self.user).await {
            Ok(conversations) => conversations,
            Err(e) => return self.refuse(&e.into(), None),
        };
        // When the log can hold messages out of id order (several nodes appending),
        // also replay the late ones at or before `since` that this node saw, so none
        // is skipped; a node that just started replays the whole reorder window
        // instead. The client drops what it already has by id.
        let window_ms = self.ctx.log.reorder_window().as_millis() as i64;
        let mut cursor = since;
        if window_ms > 0 {
            match self.ctx.late.at_or_before(since) {
                Some(mut late) => {
                    late.retain(|m| conversations.contains(&m.conversation_id));
                    late.sort_by_key(|m| m.id);
                    for message in late {
                        let frame = encode_message(&message);
                        if tokio::time::timeout(REPLY_TIMEOUT, self.queue.send(frame))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                None => cursor = first_id_at(unix_ms_of(since) - window_ms).min(since),
            }
        }
        loop {
            let page = match self
                .ctx
                .history
                .since(&conversations, cursor, SYNC_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => return self.refuse(&e.into(), None),
            };
            let full = page.len() == SYNC_PAGE as usize;
            for message in page {
                cursor = message.id;
                let frame = encode_message(&message);
                if tokio::time::timeout(REPLY_TIMEOUT, self.queue.send(frame))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        self.reply(&ServerFrame::Synced {
            until: Some(cursor.max(since)),
        });
    }

    /// Tells the contacts this user came online (if this is their first connection)
    /// and tells this connection which contacts are online.
    async fn announce_presence(&mut self, contacts: &[UserId], came_online: bool) {
        if came_online {
            let frame = ServerFrame::Presence {
                user_id: self.user,
                online: true,
            };
            self.ctx.events.publish(contacts, encode(&frame)).await;
        }
        if let Ok(online) = self.ctx.presence.online(contacts).await {
            for user_id in online {
                self.reply(&ServerFrame::Presence {
                    user_id,
                    online: true,
                });
            }
        }
    }

    async fn went_offline(&mut self) {
        if let Ok(true) = self.ctx.presence.disconnected(self.user).await
            && let Ok(contacts) = self.ctx.directory.contacts(self.user).await
        {
            let frame = ServerFrame::Presence {
                user_id: self.user,
                online: false,
            };
            self.ctx.events.publish(&contacts, encode(&frame)).await;
        }
    }

    /// Queues a frame for this connection; a full queue means the client is not
    /// reading, and the hub's kick will end the connection.
    fn reply(&self, frame: &ServerFrame) {
        let _ = self.queue.try_send(encode(frame));
    }

    fn error(&self, code: ErrorCode, message: &str, client_msg_id: Option<Uuid>) {
        self.reply(&ServerFrame::Error {
            code,
            message: message.to_owned(),
            client_msg_id,
        });
    }

    fn refuse(&self, error: &AppError, client_msg_id: Option<Uuid>) {
        if let AppError::Internal(e) = error {
            tracing::error!(error = format!("{e:#}"), "frame failed");
        }
        self.error(error.code(), &error.to_string(), client_msg_id);
    }
}

fn ack(sent: &Sent, client_msg_id: Uuid) -> ServerFrame {
    ServerFrame::Ack {
        client_msg_id,
        message_id: sent.message_id(),
        conversation_id: sent.conversation_id(),
    }
}
