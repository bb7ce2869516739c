//! `idle`: many authenticated connections held open and doing nothing, to measure the
//! server's resident memory per connection and how many it holds. At the end every
//! connection sends an application `ping` and must get its `pong`, so a connection the
//! server silently dropped is not counted as held.

use std::time::Duration;

use anyhow::ensure;
use chat_protocol::ws::ClientFrame;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{Bench, Jitter};
use crate::body::now_us;
use crate::cli::IdleArgs;
use crate::report::{CostMeter, Report, round3};
use crate::stats::{self, Metric};
use crate::ws::{self, Event, Socket};

/// How long a connection waits for its final `pong`.
const PONG_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a held connection sends an application `ping` to stay alive.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// Time for the server's memory to settle after the last handshake.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn run(bench: &Bench, args: &IdleArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.connections >= 1 && args.users >= 1,
        "--connections and --users must be at least 1"
    );
    let users = bench.signup("i", args.users).await?;
    let meter = CostMeter::start(bench.common.server_pid).with_services(&bench.common.service_pids);
    let bench_before = crate::procfs::sample(std::process::id()).ok();
    let tokens: Vec<&str> = (0..args.connections)
        .map(|i| users[i % users.len()].token.as_str())
        .collect();
    let started = Instant::now();
    let results = bench.connect_all(&tokens).await;
    let connect_s = started.elapsed().as_secs_f64();

    let (ping, pinged) = watch::channel(false);
    let mut holders = Vec::with_capacity(results.len());
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(socket) => holders.push(tokio::spawn(hold(socket, index as u64, pinged.clone()))),
            Err(error) => {
                *report
                    .errors
                    .entry(error_kind(&error.to_string()))
                    .or_default() += 1
            }
        }
    }
    let connected = holders.len();
    tokio::time::sleep(SETTLE).await;
    let server_connected = bench
        .common
        .server_pid
        .and_then(|pid| crate::procfs::sample(pid).ok());
    let bench_connected = crate::procfs::sample(std::process::id()).ok();
    crate::progress!("holding {connected} connections for {} s", args.hold_secs);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;

    let _ = ping.send(true);
    let mut alive = 0usize;
    for holder in holders {
        alive += usize::from(holder.await?);
    }
    let (server, bench_cost) = meter.finish(0);
    report.services = meter.services(0);

    report.duration_s = round3(started.elapsed().as_secs_f64());
    report.set_latencies(&stats::take());
    report.server = server;
    report.bench = bench_cost;
    report.extra("connections", args.connections);
    report.extra("connected", connected);
    report.extra("alive_at_end", alive);
    report.extra("connect_secs", round3(connect_s));
    report.extra(
        "connects_per_sec",
        (connected as f64 / connect_s.max(1e-9)).round(),
    );
    if let (Some(before), Some(after)) = (meter.server_rss_at_start_kib(), server_connected) {
        report.extra("server_rss_connected_kib", after.rss_kib);
        let per_connection =
            (after.rss_kib.saturating_sub(before) * 1024) as f64 / connected.max(1) as f64;
        report.extra("server_bytes_per_connection", per_connection.round());
    }
    if let (Some(before), Some(after)) = (bench_before, bench_connected) {
        let per_connection =
            (after.rss_kib.saturating_sub(before.rss_kib) * 1024) as f64 / connected.max(1) as f64;
        report.extra("bench_bytes_per_connection", per_connection.round());
    }
    Ok(())
}

/// Holds one socket until told to ping; true if it was still open and answered.
async fn hold(mut socket: Socket, index: u64, mut pinged: watch::Receiver<bool>) -> bool {
    let mut jitter = Jitter::new(index);
    let mut keepalive = tokio::time::interval_at(
        Instant::now() + KEEPALIVE.mul_f64(0.5 + jitter.unit()),
        KEEPALIVE,
    );
    loop {
        tokio::select! {
            _ = pinged.changed() => break,
            frame = socket.next() => match frame {
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
            _ = keepalive.tick() => {
                if ws::send(&mut socket, &ClientFrame::Ping).await.is_err() {
                    return false;
                }
            }
        }
    }
    let began_us = now_us();
    if ws::send(&mut socket, &ClientFrame::Ping).await.is_err() {
        return false;
    }
    let answered = tokio::time::timeout(PONG_TIMEOUT, async {
        while let Some(Ok(frame)) = socket.next().await {
            if let WsMessage::Text(text) = frame
                && ws::parse(&text) == Some(Event::Pong)
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if answered {
        stats::record(Metric::Request, now_us() - began_us);
    }
    answered
}

/// The first words of a connect error, so thousands of failures group into a few keys.
fn error_kind(error: &str) -> String {
    let kind: String = error.chars().take(80).collect();
    format!("connect: {kind}")
}
