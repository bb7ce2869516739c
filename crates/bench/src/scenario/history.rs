//! `history`: one conversation filled with `messages` messages (sent over the
//! WebSocket as fast as the server acknowledges them, `fill_window` in flight), then
//! `readers` concurrent readers each walking the whole history newest-first, page by
//! page with the `before` cursor, again and again. Every complete walk is checked: each
//! message exactly once (`lost`, `duplicates`) and ids strictly decreasing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chat_protocol::ws::ClientFrame;
use chat_protocol::{ConversationId, MessageId};
use futures::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::Bench;
use crate::api::{Api, Session};
use crate::body::{self, Stamp, now_us};
use crate::cli::HistoryArgs;
use crate::report::{CostMeter, Report, round3};
use crate::stats::{self, Metric};
use crate::tracker::Outbox;
use crate::ws::{self, Event, Socket};

/// How long the fill may take before the run fails.
const FILL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long history may lag the last acknowledged message (eventual consistency).
const PERSIST_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(bench: &Bench, args: &HistoryArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.messages >= 1 && args.readers >= 1,
        "--messages and --readers must be at least 1"
    );
    ensure!(
        (1..=100).contains(&args.page_size),
        "--page-size must be between 1 and 100"
    );
    let users = bench.signup("h", 2).await?;
    let conversation = bench
        .api
        .create_group(&users[0], "bench history", vec![users[1].user.id])
        .await?
        .id;

    let fill = fill(
        bench,
        &users[0],
        conversation,
        args.messages,
        args.fill_window,
        None,
    )
    .await?;
    report_fill(report, &fill);

    let lag_started = Instant::now();
    wait_until_readable(&bench.api, &users[1], conversation, fill.newest_id).await?;
    report.extra("persist_lag_ms", lag_started.elapsed().as_millis() as u64);
    let fill_latencies = stats::take();

    let meter = CostMeter::start(bench.common.server_pid).with_services(&bench.common.service_pids);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let readers = spawn_readers(bench, &users, conversation, args, &fill.outbox, deadline);
    let mut total = Reading::default();
    for reader in readers {
        total.add(&reader.await?);
    }
    let secs = started.elapsed().as_secs_f64();
    let (server, bench_cost) = meter.finish(total.messages);
    report.services = meter.services(total.messages);

    report.duration_s = round3(secs);
    report_reading(report, &total, fill.outbox.acked(), secs);
    let mut latencies = stats::take();
    latencies.merge_metric(&fill_latencies, Metric::Ack);
    latencies.merge_metric(&fill_latencies, Metric::Connect);
    report.set_latencies(&latencies);
    if let Some(server) = &server {
        report.extra(
            "server_cpu_us_per_page",
            round3(server.cpu_s * 1e6 / total.pages.max(1) as f64),
        );
    }
    report.server = server;
    report.bench = bench_cost;
    report.extra("readers", args.readers);
    report.extra("pages", total.pages);
    report.extra(
        "pages_per_sec",
        (total.pages as f64 / secs.max(1e-9)).round(),
    );
    report.extra("walks", total.walks);
    report.extra("messages_read", total.messages);
    for (code, count) in total.errors {
        *report.errors.entry(code).or_default() += count;
    }
    Ok(())
}

/// What the fill sent, acknowledged and how fast.
pub(super) fn report_fill(report: &mut Report, fill: &Fill) {
    report.tally.sent = fill.outbox.sent();
    report.tally.acknowledged = fill.outbox.acked();
    report.extra("fill_secs", round3(fill.secs));
    report.extra(
        "fill_messages_per_sec",
        (fill.outbox.acked() as f64 / fill.secs.max(1e-9)).round(),
    );
    for (code, count) in &fill.errors {
        *report.errors.entry(code.clone()).or_default() += count;
    }
}

/// `args.readers` readers, taking turns over `users`, each walking the history
/// until `deadline`.
fn spawn_readers(
    bench: &Bench,
    users: &[Session],
    conversation: ConversationId,
    args: &HistoryArgs,
    filled: &Outbox,
    deadline: Instant,
) -> Vec<tokio::task::JoinHandle<Reading>> {
    let slots = filled.sent() as usize;
    let acked = filled.acked();
    (0..args.readers)
        .map(|index| {
            let api = bench.api.clone();
            let reader = Arc::new(users[index % users.len()].clone());
            let page_size = args.page_size;
            tokio::spawn(async move {
                read_until(
                    &api,
                    &reader,
                    conversation,
                    page_size,
                    (slots, acked),
                    deadline,
                )
                .await
            })
        })
        .collect()
}

/// The checks of every complete walk: each of the `acked` messages once, in order.
fn report_reading(report: &mut Report, total: &Reading, acked: u64, secs: f64) {
    report.tally.delivered = total.checked_messages;
    report.tally.expected = total.walks * acked;
    report.tally.lost = total.lost;
    report.tally.duplicates = total.duplicates;
    report.tally.out_of_order = total.misordered;
    report.tally.unreadable = total.unreadable;
    report.deliveries_per_sec = (total.messages as f64 / secs.max(1e-9)).round();
}

pub(super) struct Fill {
    pub(super) outbox: Outbox,
    pub(super) newest_id: MessageId,
    pub(super) secs: f64,
    pub(super) errors: std::collections::BTreeMap<String, u64>,
}

/// Words to append to each filled body (the `search` scenario's vocabulary): the
/// words of message `seq`, written into the buffer.
pub(super) type Words<'a> = &'a (dyn Fn(u64, &mut String) + Sync);

/// The state of a fill in progress.
struct Filling {
    outbox: Outbox,
    errors: std::collections::BTreeMap<String, u64>,
    newest_id: MessageId,
    refused: u64,
    /// The body buffer, reused for every send.
    body: String,
}

impl Filling {
    fn in_flight(&self) -> u64 {
        self.outbox.sent() - self.outbox.acked() - self.refused
    }

    /// Writes the next message.
    async fn send_next(
        &mut self,
        socket: &mut Socket,
        conversation: ConversationId,
        words: Option<Words<'_>>,
    ) -> anyhow::Result<()> {
        let sent_us = now_us();
        let seq = self.outbox.record_send(sent_us);
        body::encode(
            Stamp {
                slot: 0,
                seq,
                sent_us,
            },
            0,
            &mut self.body,
        );
        if let Some(words) = words {
            words(u64::from(seq), &mut self.body);
        }
        let frame = ClientFrame::Send {
            conversation_id: conversation,
            client_msg_id: body::client_msg_id(self.outbox.nonce, seq),
            body: self.body.clone(),
            reply_to: None,
        };
        ws::send(socket, &frame)
            .await
            .context("sending a fill message")
    }

    /// Notes an ack (and its latency) or an error frame.
    fn take(&mut self, text: &str) {
        match ws::parse(text) {
            Some(Event::Ack {
                client_msg_id,
                message_id,
            }) => {
                if let Some(sent_us) = body::seq_of(self.outbox.nonce, client_msg_id)
                    .and_then(|seq| self.outbox.record_ack(seq))
                {
                    stats::record(Metric::Ack, now_us().saturating_sub(sent_us));
                    self.newest_id = self.newest_id.max(message_id);
                }
            }
            Some(Event::Error {
                code,
                client_msg_id,
                ..
            }) => {
                *self.errors.entry(code.into_owned()).or_insert(0) += 1;
                self.refused += u64::from(client_msg_id.is_some());
            }
            _ => {}
        }
    }
}

/// Sends `messages` messages over one socket, keeping `fill_window` unacknowledged.
pub(super) async fn fill(
    bench: &Bench,
    sender: &Session,
    conversation: ConversationId,
    messages: usize,
    fill_window: usize,
    words: Option<Words<'_>>,
) -> anyhow::Result<Fill> {
    let mut socket = bench
        .connect_all_or_fail(&[sender.token.as_str()])
        .await?
        .remove(0);
    let mut filling = Filling {
        outbox: Outbox::new(0x4157_0000_0000_0001),
        errors: std::collections::BTreeMap::new(),
        newest_id: MessageId(0),
        refused: 0,
        body: String::new(),
    };
    let started = Instant::now();
    let total = messages as u64;
    let result = tokio::time::timeout(FILL_TIMEOUT, async {
        while filling.outbox.acked() + filling.refused < total {
            if filling.outbox.sent() < total && filling.in_flight() < fill_window as u64 {
                filling.send_next(&mut socket, conversation, words).await?;
                continue;
            }
            let Some(frame) = socket.next().await else {
                bail!("the server closed the fill socket")
            };
            if let WsMessage::Text(text) = frame.context("reading the fill socket")? {
                filling.take(&text);
            }
        }
        anyhow::Ok(())
    })
    .await;
    match result {
        Ok(outcome) => outcome?,
        Err(_) => bail!("filling {total} messages took longer than {FILL_TIMEOUT:?}"),
    }
    let secs = started.elapsed().as_secs_f64();
    crate::progress!(
        "filled {} messages in {secs:.1} s ({} refused)",
        filling.outbox.acked(),
        filling.refused
    );
    Ok(Fill {
        outbox: filling.outbox,
        newest_id: filling.newest_id,
        secs,
        errors: filling.errors,
    })
}

/// Waits until the newest page shows the newest acknowledged message.
pub(super) async fn wait_until_readable(
    api: &Api,
    reader: &Session,
    conversation: ConversationId,
    newest: MessageId,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PERSIST_TIMEOUT;
    loop {
        let page = api.history(reader, conversation, None, 1).await?;
        if page.messages.first().is_some_and(|m| m.id >= newest) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("history still lacks message {newest} after {PERSIST_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What readers read.
#[derive(Debug, Default)]
struct Reading {
    pages: u64,
    messages: u64,
    walks: u64,
    /// Messages in complete walks, counted once each.
    checked_messages: u64,
    lost: u64,
    duplicates: u64,
    misordered: u64,
    unreadable: u64,
    errors: std::collections::BTreeMap<String, u64>,
}

impl Reading {
    fn add(&mut self, other: &Reading) {
        self.pages += other.pages;
        self.messages += other.messages;
        self.walks += other.walks;
        self.checked_messages += other.checked_messages;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.misordered += other.misordered;
        self.unreadable += other.unreadable;
        for (code, count) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += count;
        }
    }
}

/// Walks the history from newest to oldest, again and again, until `deadline`.
async fn read_until(
    api: &Api,
    reader: &Session,
    conversation: ConversationId,
    page_size: u32,
    (slots, acked): (usize, u64),
    deadline: Instant,
) -> Reading {
    let mut reading = Reading::default();
    let mut seen = vec![false; slots];
    'walks: while Instant::now() < deadline {
        seen.fill(false);
        let (mut unique, mut duplicates, mut misordered, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
        let mut before: Option<MessageId> = None;
        loop {
            let began_us = now_us();
            let page = match api.history(reader, conversation, before, page_size).await {
                Ok(page) => page,
                Err(error) => {
                    *reading
                        .errors
                        .entry(format!("history: {error}"))
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'walks;
                }
            };
            stats::record(Metric::Request, now_us() - began_us);
            reading.pages += 1;
            reading.messages += page.messages.len() as u64;
            for message in &page.messages {
                if before.is_some_and(|previous| message.id >= previous) {
                    misordered += 1;
                }
                before = Some(message.id);
                match body::decode(&message.body).map(|stamp| stamp.seq as usize) {
                    Some(seq) if seq < slots => {
                        if std::mem::replace(&mut seen[seq], true) {
                            duplicates += 1;
                        } else {
                            unique += 1;
                        }
                    }
                    _ => unreadable += 1,
                }
            }
            if !page.has_more || page.messages.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                break 'walks; // a partial walk proves nothing about gaps
            }
        }
        reading.walks += 1;
        reading.checked_messages += unique;
        reading.lost += acked.saturating_sub(unique);
        reading.duplicates += duplicates;
        reading.misordered += misordered;
        reading.unreadable += unreadable;
    }
    reading
}
