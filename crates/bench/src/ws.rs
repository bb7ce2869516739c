//! One client WebSocket: connecting (from a chosen loopback source address), the
//! `auth` → `ready` handshake, writing frames, and reading server frames cheaply.
//!
//! Frames the bench reads by the hundred thousand per second (`message`, `ack`) are
//! read through [`Incoming`], a borrowing view of the same JSON that
//! `chat_protocol::ws::ServerFrame` defines: no `String` is allocated per frame. The
//! tests check the view against frames serialized from the protocol types, so the two
//! cannot drift apart. Rare frames (`ready`) are parsed with the protocol types.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MessageId};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

pub type Socket = WebSocketStream<TcpStream>;

/// How long connecting and authenticating may take before the bench gives up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect to {addr} from {source_ip:?} failed: {error}")]
    Tcp {
        addr: SocketAddr,
        source_ip: Option<IpAddr>,
        error: std::io::Error,
    },
    #[error("WebSocket upgrade failed: {0}")]
    Upgrade(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the socket before `ready`{0}")]
    Closed(String),
    #[error("the server refused the auth frame: {0}")]
    Refused(String),
    #[error("no `ready` within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

/// Where the WebSocket endpoint is.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub url: String,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            url: format!("ws://{addr}/api/v1/ws"),
        }
    }
}

/// The source address of the `index`-th client socket: 127.0.0.1 for the first
/// `per_source`, then 127.0.0.2, … One source address can hold only about 28,000
/// connections to one server address (the ephemeral port range), so many
/// connections must come from several; all of 127.0.0.0/8 is loopback on Linux.
pub fn source_ip(index: usize, per_source: usize) -> Option<IpAddr> {
    let block = index / per_source.max(1);
    if block == 0 {
        return None; // the kernel's choice, 127.0.0.1
    }
    let host = u32::try_from(block + 1).ok().filter(|&h| h < 0x00FF_FFFF)?;
    Some(IpAddr::V4(std::net::Ipv4Addr::from(0x7F00_0000 | host)))
}

/// Connects, upgrades and authenticates; returns the socket once `ready` arrived.
pub async fn connect(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    token: &str,
) -> Result<Socket, ConnectError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_inner(endpoint, source, token))
        .await
        .map_err(|_| ConnectError::Timeout)?
}

async fn connect_inner(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    token: &str,
) -> Result<Socket, ConnectError> {
    let tcp_error = |error| ConnectError::Tcp {
        addr: endpoint.addr,
        source_ip: source,
        error,
    };
    let socket = TcpSocket::new_v4().map_err(tcp_error)?;
    if let Some(ip) = source {
        // Let connect() pick the port per destination, so one source address is not
        // limited to one connection per ephemeral port across all destinations.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::new(ip, 0)).map_err(tcp_error)?;
    }
    let stream = socket.connect(endpoint.addr).await.map_err(tcp_error)?;
    stream.set_nodelay(true).map_err(tcp_error)?;
    // Small buffers: the default 128 KiB read buffer would cost gigabytes at 100,000
    // connections, and bench frames are a few hundred bytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(endpoint.url.as_str(), stream, Some(config))
            .await?;
    send(
        &mut socket,
        &ClientFrame::Auth {
            token: token.to_owned(),
        },
    )
    .await?;
    loop {
        match socket.next().await {
            Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Ready { .. }) => return Ok(socket),
                Ok(ServerFrame::Error { code, message, .. }) => {
                    return Err(ConnectError::Refused(format!("{code}: {message}")));
                }
                // Presence and the like may come first; the server may also add frame
                // types the bench does not know yet.
                _ => continue,
            },
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(ConnectError::Closed(
                    frame
                        .map(|f| format!(" ({} {})", f.code, f.reason))
                        .unwrap_or_default(),
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => return Err(ConnectError::Closed(String::new())),
        }
    }
}

/// Writes one client frame.
pub async fn send(
    socket: &mut Socket,
    frame: &ClientFrame,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    // Serializing a protocol type into a String cannot fail.
    let json = serde_json::to_string(frame).unwrap_or_default();
    socket.send(WsMessage::text(json)).await
}

/// What the bench needs from one server frame.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    Message {
        id: MessageId,
        conversation_id: ConversationId,
        body: Cow<'a, str>,
    },
    Ack {
        client_msg_id: Uuid,
        message_id: MessageId,
    },
    Synced {
        until: Option<MessageId>,
    },
    Pong,
    Error {
        code: Cow<'a, str>,
        client_msg_id: Option<Uuid>,
        /// A temporary refusal: how long the server asks us to wait.
        retry_after: Option<Duration>,
    },
    /// Any other frame (typing, presence, …), or a type the bench does not know.
    Other,
}

/// A borrowing view of a server frame: the fields of every frame type the bench
/// reads, flattened, since `message` is an object in a `message` frame and a string in
/// an `error` frame.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<MessageField<'a>>,
    #[serde(default)]
    client_msg_id: Option<Uuid>,
    #[serde(default)]
    message_id: Option<MessageId>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default)]
    until: Option<MessageId>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    id: MessageId,
    conversation_id: ConversationId,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

enum MessageField<'a> {
    Message(MessageView<'a>),
    Text,
}

impl<'de: 'a, 'a> Deserialize<'de> for MessageField<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
            type Value = MessageField<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message object or an error text")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MessageField::Text)
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                MessageView::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MessageField::Message)
            }
        }
        deserializer.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

/// Reads one server frame; `None` if it is not JSON of a shape the protocol defines.
pub fn parse(text: &str) -> Option<Event<'_>> {
    let frame: Incoming = serde_json::from_str(text).ok()?;
    Some(match (&*frame.kind, frame.message) {
        ("message", Some(MessageField::Message(m))) => Event::Message {
            id: m.id,
            conversation_id: m.conversation_id,
            body: m.body,
        },
        ("ack", _) => Event::Ack {
            client_msg_id: frame.client_msg_id?,
            message_id: frame.message_id?,
        },
        ("synced", _) => Event::Synced { until: frame.until },
        ("pong", _) => Event::Pong,
        ("error", _) => Event::Error {
            code: frame.code?,
            client_msg_id: frame.client_msg_id,
            retry_after: frame.retry_after_ms.map(Duration::from_millis),
        },
        ("message", _) => return None,
        _ => Event::Other,
    })
}

#[cfg(test)]
mod tests {
    use chat_protocol::http::{Message, User};
    use chat_protocol::{ErrorCode, UserId};

    use super::*;

    fn json(frame: &ServerFrame) -> String {
        serde_json::to_string(frame).unwrap()
    }

    #[test]
    fn a_message_frame_reads_as_the_protocol_writes_it() {
        let frame = ServerFrame::Message {
            message: Message {
                id: MessageId(7_212_136_519_393_280),
                conversation_id: ConversationId(42),
                sender_id: UserId(3),
                body: "bench 1 2 3 with \"quotes\" and ünïcode".into(),
                client_msg_id: Uuid::nil(),
                created_at: "2025-01-02T03:04:05.678Z".parse().unwrap(),
                reply_to: None,
                mentions: vec![UserId(5)],
                edited_at: None,
                deleted: false,
                reactions: Vec::new(),
            },
        };
        let text = json(&frame);
        assert_eq!(
            parse(&text),
            Some(Event::Message {
                id: MessageId(7_212_136_519_393_280),
                conversation_id: ConversationId(42),
                body: "bench 1 2 3 with \"quotes\" and ünïcode".into(),
            })
        );
    }

    #[test]
    fn a_plain_body_is_borrowed_not_copied() {
        let text = r#"{"type":"message","message":{"id":"1","conversation_id":"2","sender_id":"3","body":"bench 0 0 5","client_msg_id":"00000000-0000-0000-0000-000000000000","created_at":"2025-01-01T00:00:00Z"}}"#;
        assert!(matches!(
            parse(text),
            Some(Event::Message {
                body: Cow::Borrowed(_),
                ..
            })
        ));
    }

    #[test]
    fn acks_errors_synced_and_pong_read_as_the_protocol_writes_them() {
        let id = Uuid::from_u64_pair(1, 2);
        let ack = ServerFrame::Ack {
            client_msg_id: id,
            message_id: MessageId(9),
            conversation_id: ConversationId(4),
            event_id: MessageId(9),
        };
        assert_eq!(
            parse(&json(&ack)),
            Some(Event::Ack {
                client_msg_id: id,
                message_id: MessageId(9)
            })
        );

        let error = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            client_msg_id: Some(id),
            retry_after_ms: Some(1500),
        };
        assert_eq!(
            parse(&json(&error)),
            Some(Event::Error {
                code: "rate_limited".into(),
                client_msg_id: Some(id),
                retry_after: Some(Duration::from_millis(1500)),
            })
        );
        let error = ServerFrame::Error {
            code: ErrorCode::InvalidFrame,
            message: "x".into(),
            client_msg_id: None,
            retry_after_ms: None,
        };
        assert_eq!(
            parse(&json(&error)),
            Some(Event::Error {
                code: "invalid_frame".into(),
                client_msg_id: None,
                retry_after: None,
            })
        );

        assert_eq!(
            parse(&json(&ServerFrame::Synced { until: None })),
            Some(Event::Synced { until: None })
        );
        assert_eq!(
            parse(&json(&ServerFrame::Synced {
                until: Some(MessageId(5))
            })),
            Some(Event::Synced {
                until: Some(MessageId(5))
            })
        );
        assert_eq!(parse(&json(&ServerFrame::Pong)), Some(Event::Pong));
        let presence = ServerFrame::Presence {
            user_id: UserId(1),
            online: true,
        };
        assert_eq!(parse(&json(&presence)), Some(Event::Other));
        let ready = ServerFrame::Ready {
            user: User {
                id: UserId(1),
                username: "a".into(),
                display_name: "A".into(),
            },
            heartbeat_ms: 1,
        };
        assert_eq!(parse(&json(&ready)), Some(Event::Other));
    }

    #[test]
    fn garbage_is_not_an_event() {
        for text in [
            "",
            "null",
            "{}",
            r#"{"type":"message"}"#,
            r#"{"type":"ack"}"#,
            "[1,2]",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        assert_eq!(
            parse(r#"{"type":"from_the_future","x":1}"#),
            Some(Event::Other)
        );
    }

    #[test]
    fn sources_spread_over_loopback_addresses_in_blocks() {
        assert_eq!(source_ip(0, 20_000), None);
        assert_eq!(source_ip(19_999, 20_000), None);
        assert_eq!(
            source_ip(20_000, 20_000),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            source_ip(99_999, 20_000),
            Some("127.0.0.5".parse().unwrap())
        );
        assert_eq!(
            source_ip(300 * 20_000, 20_000),
            Some("127.0.1.45".parse().unwrap())
        );
    }
}
