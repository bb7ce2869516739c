//! The accept loop: every TCP connection the server takes, and the limits that keep
//! a slow or greedy client from holding the node's sockets. `axum::serve` has no
//! timeout on reading a request head, no cap on connections per client and no way
//! to end a socket with a reset, so the loop is written here, small, after it:
//!
//! - a request head must arrive within the head timeout (hyper's
//!   `header_read_timeout`), and a body within the body timeout of its head
//!   ([`DeadlineBody`]; the JSON extractor answers 408 `request_timeout`): a
//!   slow-loris client cannot hold a connection by trickling bytes;
//! - one peer address holds at most so many connections (WebSockets included, since
//!   the count lives with the socket, [`ClientStream`]); beyond it a new connection
//!   is reset at once;
//! - a connection the gateway gives up on (a slow reader) can be told to end with a
//!   reset ([`SocketReset`]): a plain close would leave the kernel retrying the
//!   unread data against the client's zero window for minutes.
//!
//! Each request gets [`ConnectInfo`] with the peer address, as
//! `into_make_service_with_connect_info` gave it, and its connection's [`SocketReset`].
//! Shutdown stops accepting, lets each connection finish its request, and returns
//! when they have (upgraded sockets are the gateway's to close).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The limits the accept loop enforces, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a client may take to send a whole request head.
    pub head_read_timeout: Duration,
    /// How long a request body may take to arrive, counted from its head.
    pub body_read_timeout: Duration,
    /// Connections one peer address may hold at once; `None`: no cap (behind a
    /// trusted proxy every client shares the proxy's address).
    pub max_connections_per_address: Option<usize>,
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and
/// returns once every connection's last request is answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let addresses = AddressCounts::default();
    let (stopping_tx, stopping) = watch::channel(false);
    // Each connection task holds a receiver; all dropped means all finished.
    let (finished_tx, finished) = watch::channel(());
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    wait_after_accept_error(&error).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(slot) = addresses.admit(peer.ip(), limits.max_connections_per_address) else {
            metrics::counter!("chat_connections_refused_total").increment(1);
            tracing::debug!(%peer, "refused: too many connections from this address");
            // A reset, not a close: nothing to say, and no TIME_WAIT kept for it.
            let _ = tcp.set_zero_linger();
            continue;
        };
        // TCP_NODELAY on every accepted socket. Without it Nagle's algorithm holds a
        // small write (an ack, a message frame) while an earlier one is
        // unacknowledged, and the client's delayed ACK makes that a 40 ms stall: the
        // bench measured it as a p99 of 40-50 ms at light load. Frames are already
        // batched per flush.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let stream = ClientStream {
            tcp,
            reset: SocketReset::default(),
            _slot: slot,
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            stopping.clone(),
            finished.clone(),
        ));
    }
    drop(listener);
    stopping_tx.send_replace(true);
    drop(finished);
    finished_tx.closed().await;
}

/// Serves one connection's requests (and hands an upgrade to its handler).
async fn serve_connection(
    stream: ClientStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    stopping: watch::Receiver<bool>,
    _finished: watch::Receiver<()>,
) {
    let reset = stream.reset.clone();
    let body_read_timeout = limits.body_read_timeout;
    let service = router.map_request(move |request: Request<Incoming>| {
        let deadline = Instant::now() + body_read_timeout;
        let mut request = request.map(|body| DeadlineBody::new(body, deadline));
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(reset.clone());
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(stopping) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Resolves once the server starts shutting down.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// Out of file descriptors or memory, accepting again at once would spin: wait a
/// little. A connection that failed before it was accepted is just skipped.
async fn wait_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// How many connections each peer address holds now.
#[derive(Clone, Default)]
struct AddressCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl AddressCounts {
    /// A slot for one more connection from `address`, unless it has `cap` already.
    fn admit(&self, address: IpAddr, cap: Option<usize>) -> Option<AddressSlot> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(address).or_default();
        if cap.is_some_and(|cap| *count >= cap) {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            address,
        })
    }
}

/// One connection's place in its address's count, given back when it is dropped.
struct AddressSlot {
    counts: AddressCounts,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Asks for a connection to end with a reset (RST) instead of a close (FIN) when its
/// socket is dropped: the data still queued for the client is thrown away and the
/// socket is released at once. Handed to each request as an extension.
#[derive(Clone, Debug, Default)]
pub struct SocketReset(Arc<AtomicBool>);

impl SocketReset {
    pub fn reset_when_dropped(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An accepted TCP stream with what must go when it goes: its address slot, and a
/// reset if one was asked for.
struct ClientStream {
    tcp: TcpStream,
    reset: SocketReset,
    _slot: AddressSlot,
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if self.reset.0.load(Ordering::Relaxed) {
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The body took longer than the body timeout to arrive.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyReadTimeout;

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed the first time the body is not ready, so a body read at once costs no
    /// timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: Instant) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or any error under it, is a [`BodyReadTimeout`].
pub fn is_body_read_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyReadTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_cap_and_a_slot_back_when_a_connection_ends() {
        let counts = AddressCounts::default();
        let address = IpAddr::from([192, 0, 2, 1]);
        let first = counts.admit(address, Some(2));
        let second = counts.admit(address, Some(2));
        assert!(first.is_some() && second.is_some());
        assert!(counts.admit(address, Some(2)).is_none());
        // Another address is not affected.
        assert!(
            counts
                .admit(IpAddr::from([192, 0, 2, 2]), Some(2))
                .is_some()
        );
        drop(first);
        assert!(counts.admit(address, Some(2)).is_some());
        assert!(counts.admit(address, None).is_some());
    }
}
