//! Clients that hold HTTP connections instead of using them (slow-loris): a request
//! head or body trickled a byte at a time is cut off after its timeout, and one
//! address cannot hold more than its share of connections. Requests are written by
//! hand over TCP; afterwards the node must serve everyone else as before.

use std::time::Duration;

use chat_test_support::raw::{connect_from, read_to_end};
use chat_test_support::server::Server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{Bystanders, chat};

/// The timeouts these tests configure, short so that they run in seconds.
const TIMEOUT_MS: u64 = 1_000;

/// Writes `head` at once, then `trickle` one byte every 100 ms, until the server
/// closes the connection; returns what it answered and when it closed.
async fn trickle(server: &Server, head: &str, trickle: &[u8]) -> (String, Duration) {
    let tcp = TcpStream::connect(server.endpoint.addr())
        .await
        .expect("connect");
    let (mut read, mut write) = tcp.into_split();
    let started = Instant::now();
    write
        .write_all(head.as_bytes())
        .await
        .expect("write the head");
    let trickle = trickle.to_vec();
    let writer = tokio::spawn(async move {
        for byte in trickle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // All sent: hold the connection open, as a slow-loris client would.
        std::future::pending::<()>().await;
    });
    let answer = read_to_end(&mut read, Duration::from_millis(5 * TIMEOUT_MS)).await;
    let closed_after = started.elapsed();
    writer.abort();
    (String::from_utf8_lossy(&answer).into_owned(), closed_after)
}

/// Closed no sooner than the timeout allows, and not much later.
fn assert_cut_off_at_the_timeout(closed_after: Duration) {
    let timeout = Duration::from_millis(TIMEOUT_MS);
    assert!(
        closed_after >= timeout.mul_f64(0.9) && closed_after < timeout * 3,
        "the connection closed after {closed_after:?}, with a timeout of {timeout:?}"
    );
}

#[tokio::test]
async fn a_request_head_trickled_byte_by_byte_is_cut_off_after_the_head_timeout() {
    let server = chat()
        .env(&[("CHAT_HEAD_READ_TIMEOUT_MS", &TIMEOUT_MS.to_string())])
        .start()
        .await;
    let mut bystanders = Bystanders::join(&server).await;
    // Header lines that never end, a byte every 100 ms: 6 s of them at most.
    let (_, closed_after) = trickle(
        &server,
        "GET /healthz HTTP/1.1\r\nHost: chat\r\n",
        &b"X-Slow: loris\r\n".repeat(4),
    )
    .await;
    assert_cut_off_at_the_timeout(closed_after);
    bystanders.are_still_served(&server).await;
}

#[tokio::test]
async fn a_request_body_trickled_byte_by_byte_gets_408_after_the_body_timeout() {
    let server = chat()
        .env(&[("CHAT_BODY_READ_TIMEOUT_MS", &TIMEOUT_MS.to_string())])
        .start()
        .await;
    let mut bystanders = Bystanders::join(&server).await;
    let body = br#"{"username":"alice","password":"correct horse battery"}"#;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: chat\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let (answer, closed_after) = trickle(&server, &head, body).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected 408, got: {answer}"
    );
    assert!(
        answer.contains(r#""code":"request_timeout""#),
        "expected the request_timeout error body, got: {answer}"
    );
    assert_cut_off_at_the_timeout(closed_after);
    bystanders.are_still_served(&server).await;
}

/// A GET of `/healthz` on `tcp`; the status line of the answer, or `None` when the
/// server closed the connection without one.
async fn healthz_on(mut tcp: TcpStream) -> Option<String> {
    let request = "GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let answer = read_to_end(&mut tcp, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn one_address_cannot_hold_more_connections_than_its_cap() {
    // Room for the bystanders' HTTP clients and sockets once the held ones are gone.
    const CAP: usize = 8;
    let server = chat()
        .env(&[("CHAT_MAX_CONNECTIONS_PER_ADDRESS", &CAP.to_string())])
        .start()
        .await;
    let addr = server.endpoint.addr();
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect_from(addr, Some([127, 0, 0, 1])).await);
    }
    // Accepted in order, so this one is the first beyond the cap.
    let probe = connect_from(addr, Some([127, 0, 0, 1])).await;
    let started = Instant::now();
    assert_eq!(
        healthz_on(probe).await,
        None,
        "a connection beyond the cap was served"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused only after {:?}",
        started.elapsed()
    );
    // Another address is not affected by this one's cap.
    let other = connect_from(addr, Some([127, 0, 0, 2])).await;
    assert_eq!(healthz_on(other).await.as_deref(), Some("HTTP/1.1 200 OK"));

    // Once the held connections go, the address is served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let tcp = connect_from(addr, Some([127, 0, 0, 1])).await;
        if healthz_on(tcp).await.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the address stayed refused after its connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bystanders = Bystanders::join(&server).await;
    bystanders.are_still_served(&server).await;
}
