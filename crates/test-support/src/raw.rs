//! Bytes on a TCP socket, for the tests that must send what a well-behaved client
//! library refuses to: WebSocket frames that break RFC 6455 (unmasked, reserved bits
//! or opcodes, oversized control frames, invalid UTF-8), and HTTP requests trickled a
//! byte at a time. [`RawWs`] does the upgrade by hand and then writes [`RawFrame`]s
//! exactly as given; it reads the server's frames just far enough to find its close.

use std::net::SocketAddr;
use std::time::Duration;

use chat_protocol::ws::ServerFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::server::Endpoint;
use crate::wait::RECEIVE_TIMEOUT;

/// The opcodes of RFC 6455 §5.2.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
}

/// One WebSocket frame, as it will be written: nothing is checked or fixed up.
#[derive(Clone, Debug)]
pub struct RawFrame {
    pub fin: bool,
    /// The three reserved bits (RSV1..RSV3) as the low bits of this value.
    pub reserved_bits: u8,
    pub opcode: u8,
    /// Clients must mask every frame; `false` sends it in the clear.
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// A final, masked frame of this opcode: a well-formed client frame.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> RawFrame {
        RawFrame {
            fin: true,
            reserved_bits: 0,
            opcode,
            masked: true,
            payload: payload.into(),
        }
    }

    pub fn text(payload: impl Into<Vec<u8>>) -> RawFrame {
        RawFrame::new(opcode::TEXT, payload)
    }

    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_header(self.payload.len() as u64)
            .into_iter()
            .chain(self.masked_payload())
            .collect()
    }

    /// Only the header, announcing a payload of `length` bytes (which may never come).
    pub fn encode_header(&self, length: u64) -> Vec<u8> {
        let mut out = vec![
            (u8::from(self.fin) << 7) | ((self.reserved_bits & 0b111) << 4) | (self.opcode & 0x0f),
        ];
        let mask_bit = u8::from(self.masked) << 7;
        if length < 126 {
            out.push(mask_bit | length as u8);
        } else if length <= u64::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&length.to_be_bytes());
        }
        if self.masked {
            out.extend_from_slice(&MASK);
        }
        out
    }

    fn masked_payload(&self) -> Vec<u8> {
        if !self.masked {
            return self.payload.clone();
        }
        self.payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ MASK[i % 4])
            .collect()
    }
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How a raw connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server sent a close frame with this code.
    Closed(u16),
    /// The stream ended (EOF or reset) without a close frame.
    Dropped,
}

/// A WebSocket to `/api/v1/ws` written frame by frame.
pub struct RawWs {
    tcp: TcpStream,
    /// Bytes read but not yet parsed into frames.
    read: Vec<u8>,
}

impl RawWs {
    /// Upgrades with `Authorization: Bearer {token}` and waits for the `ready` frame.
    pub async fn connect_authenticated(endpoint: &Endpoint, token: &str) -> RawWs {
        let tcp = TcpStream::connect(endpoint.addr())
            .await
            .expect("connect to the server");
        let request = format!(
            "GET /api/v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n",
            endpoint.addr()
        );
        let mut ws = RawWs {
            tcp,
            read: Vec::new(),
        };
        ws.tcp
            .write_all(request.as_bytes())
            .await
            .expect("write the upgrade request");
        let head = ws.read_http_head().await;
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "the upgrade was refused: {head}"
        );
        loop {
            match ws.next_frame().await {
                Some((opcode::TEXT, payload))
                    if matches!(
                        serde_json::from_slice(&payload),
                        Ok(ServerFrame::Ready { .. })
                    ) =>
                {
                    return ws;
                }
                Some(_) => continue,
                None => panic!("the connection ended before `ready`"),
            }
        }
    }

    async fn read_http_head(&mut self) -> String {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        loop {
            if let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.read[..end]).into_owned();
                self.read.drain(..end + 4);
                return head;
            }
            let more = tokio::time::timeout_at(deadline, self.fill())
                .await
                .expect("no HTTP response head in time");
            assert!(more, "the connection ended during the HTTP response head");
        }
    }

    /// Reads more bytes; false at EOF or on an error (a reset).
    async fn fill(&mut self) -> bool {
        let mut buffer = [0u8; 16 * 1024];
        match self.tcp.read(&mut buffer).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.read.extend_from_slice(&buffer[..n]);
                true
            }
        }
    }

    /// The next server frame: (opcode, payload); `None` when the stream ended.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some((opcode, payload));
            }
            let more = timeout(RECEIVE_TIMEOUT, self.fill())
                .await
                .expect("no frame from the server in time");
            if !more {
                return None;
            }
        }
    }

    /// Writes bytes as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        timeout(RECEIVE_TIMEOUT, self.tcp.write_all(bytes))
            .await
            .expect("writing to the server timed out")
            .expect("write to the server");
    }

    pub async fn send(&mut self, frame: &RawFrame) {
        self.send_bytes(&frame.encode()).await;
    }

    /// Writes bytes, but only until the server stops taking them; false then.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> bool {
        matches!(
            timeout(RECEIVE_TIMEOUT, self.tcp.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Reads (skipping data and ping frames) until the server closes; fails if it does
    /// not within [`RECEIVE_TIMEOUT`].
    pub async fn ending(&mut self) -> Ending {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_frame())
                .await
                .expect("the server did not close the connection in time");
            match frame {
                Some((opcode::CLOSE, payload)) if payload.len() >= 2 => {
                    return Ending::Closed(u16::from_be_bytes([payload[0], payload[1]]));
                }
                Some((opcode::CLOSE, _)) => return Ending::Closed(1005),
                Some(_) => continue,
                None => return Ending::Dropped,
            }
        }
    }
}

/// Parses one unmasked server frame off the front of `bytes`: (opcode, payload,
/// bytes used), or `None` if it is not all there yet.
fn parse_server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let first = *bytes.first()?;
    let second = *bytes.get(1)?;
    let (length, header) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        short => (u64::from(short), 2),
    };
    let end = header + usize::try_from(length).ok()?;
    let payload = bytes.get(header..end)?.to_vec();
    Some((first & 0x0f, payload, end))
}

/// A plain TCP connection to the server from `local` (any loopback address works on
/// Linux, so a test can be several clients), or from the default address.
pub async fn connect_from(server: SocketAddr, local: Option<[u8; 4]>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    if let Some(local) = local {
        socket
            .bind(SocketAddr::from((local, 0)))
            .expect("bind a loopback address");
    }
    timeout(RECEIVE_TIMEOUT, socket.connect(server))
        .await
        .expect("connecting timed out")
        .expect("connect to the server")
}

/// Reads until the peer closes or resets the connection; what arrived before. Fails
/// if that takes longer than `within`.
pub async fn read_to_end(tcp: &mut (impl AsyncRead + Unpin), within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buffer)).await {
            Err(_) => panic!(
                "the server kept the connection open for {within:?}; it sent: {}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}
