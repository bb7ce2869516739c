//! WebSocket clients that break RFC 6455 or hold their socket (DESIGN.md §5): each
//! class of violation closes with its own code (1009 too large, 1007 invalid UTF-8,
//! 1002 protocol error), a ping flood is closed like any flood (4429), and a slow
//! reader that is disconnected lets go of its TCP socket at once. Frames are written
//! byte by byte ([`RawWs`]) because a client library will not send them; beside each
//! hostile client two bystanders keep chatting.

use std::time::Duration;

use chat_protocol::{MAX_FRAME_BYTES, close};
use chat_test_support::raw::{Ending, RawFrame, RawWs, opcode};
use chat_test_support::server::Server;
use chat_test_support::ws::Ws;
use tokio::time::Instant;

use crate::{Bystanders, chat, slow_reader_server};

/// Starts a server with two bystanders, opens an authenticated raw socket as
/// mallory, hands it to `abuse` and checks it closes with `expected`; then the
/// bystanders must still be served.
async fn closes_with(expected: u16, abuse: impl AsyncFnOnce(&mut RawWs)) {
    let server = chat().start().await;
    let mut bystanders = Bystanders::join(&server).await;
    let mallory = server.signup("mallory").await;
    let mut raw = RawWs::connect_authenticated(&server.endpoint, &mallory.token).await;
    abuse(&mut raw).await;
    assert_eq!(raw.ending().await, Ending::Closed(expected));
    bystanders.are_still_served(&server).await;
    // Mallory may come back with a well-behaved client.
    let mut again = mallory.connect().await;
    again.round_trip().await;
}

#[tokio::test]
async fn a_message_assembled_from_fragments_over_the_limit_closes_with_1009() {
    closes_with(close::TOO_LARGE, async |raw| {
        // Each fragment is well under the frame limit; together they are over it.
        let half = vec![b'x'; MAX_FRAME_BYTES / 2 + 1];
        let mut first = RawFrame::text(half.clone());
        first.fin = false;
        let mut rest = RawFrame::new(opcode::CONTINUATION, half);
        rest.fin = false;
        raw.send(&first).await;
        raw.send(&rest).await;
    })
    .await;
}

#[tokio::test]
async fn a_frame_announcing_16_mib_closes_with_1009_before_it_arrives() {
    closes_with(close::TOO_LARGE, async |raw| {
        // Only the header and a little of the payload: the length alone is refused.
        let header = RawFrame::text(Vec::new()).encode_header(16 * 1024 * 1024);
        raw.send_bytes(&header).await;
        raw.send_bytes(&[b'x'; 1024]).await;
    })
    .await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    closes_with(close::INVALID_UTF8, async |raw| {
        raw.send(&RawFrame::text(b"{\"type\":\"ping\xff\xfe\"}".to_vec()))
            .await;
    })
    .await;
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        let mut frame = RawFrame::text(&b"{\"type\":\"ping\"}"[..]);
        frame.masked = false;
        raw.send(&frame).await;
    })
    .await;
}

#[tokio::test]
async fn a_frame_with_reserved_bits_set_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        let mut frame = RawFrame::text(&b"{\"type\":\"ping\"}"[..]);
        frame.reserved_bits = 0b100; // RSV1: no extension was negotiated
        raw.send(&frame).await;
    })
    .await;
}

#[tokio::test]
async fn a_reserved_data_opcode_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        raw.send(&RawFrame::new(0x3, &b"data"[..])).await;
    })
    .await;
}

#[tokio::test]
async fn a_reserved_control_opcode_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        raw.send(&RawFrame::new(0xb, &b"ctl"[..])).await;
    })
    .await;
}

#[tokio::test]
async fn a_ping_over_125_bytes_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        raw.send(&RawFrame::new(opcode::PING, vec![b'p'; 126]))
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_fragmented_ping_closes_with_1002() {
    closes_with(close::PROTOCOL_ERROR, async |raw| {
        let mut ping = RawFrame::new(opcode::PING, &b"half"[..]);
        ping.fin = false;
        raw.send(&ping).await;
    })
    .await;
}

#[tokio::test]
async fn a_ping_flood_is_closed_with_4429_instead_of_answered_forever() {
    closes_with(close::TOO_MANY_FRAMES, async |raw| {
        // Far beyond the default burst of 200 frames; each ping alone is valid.
        let ping = RawFrame::new(opcode::PING, &b"are you there"[..]).encode();
        let flood: Vec<u8> = ping.repeat(5_000);
        // The server may stop reading once it has closed: that is the point.
        raw.try_send_bytes(&flood).await;
    })
    .await;
}

/// The `chat_slow_readers_disconnected_total` counter of the server's metrics.
async fn slow_readers_disconnected(server: &Server) -> f64 {
    let text = server.get_text("/metrics").await.1;
    text.lines()
        .find(|l| l.starts_with("chat_slow_readers_disconnected_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_slow_reader_loses_its_tcp_socket_within_two_seconds() {
    let server = slow_reader_server().await;
    let mut bystanders = Bystanders::join(&server).await;
    let sender = server.signup("sender").await;
    let reader = server.signup("reader").await;
    let conversation = sender.direct_with(&reader).await.id;
    // The reader's socket never reads; its kernel buffer is as small as it gets.
    let mut slow = Ws::connect_with_tiny_receive_buffer(&server.endpoint).await;
    slow.authenticate(&reader.token).await;

    let mut sender_ws = sender.connect().await;
    let flood = tokio::spawn(async move {
        let body = "b".repeat(3_900);
        loop {
            let mut pending = Vec::new();
            for _ in 0..50 {
                pending.push(sender_ws.send_message(conversation, &body).await);
            }
            for client_msg_id in pending {
                sender_ws.ack_of(client_msg_id).await;
            }
            sender_ws.clear_backlog();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow_readers_disconnected(&server).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the slow reader was never disconnected"
        );
        assert!(!flood.is_finished(), "the flood failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kicked = Instant::now();
    flood.abort();

    // Without reading (which would let the server's unsent data go), the reader's
    // socket sees the server let go: a reset, or the end of the stream.
    loop {
        if let Ok(Some(_reset)) = slow.tcp().take_error() {
            break;
        }
        let mut byte = [0u8; 1];
        if matches!(
            tokio::time::timeout(Duration::ZERO, slow.tcp().peek(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ) {
            break;
        }
        assert!(
            kicked.elapsed() < Duration::from_secs(2),
            "the server still holds the slow reader's socket {:?} after disconnecting it",
            kicked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bystanders.are_still_served(&server).await;
}
