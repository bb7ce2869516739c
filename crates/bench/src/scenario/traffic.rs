//! The traffic engine behind `group`, `direct` and `reconnect`: connected clients in
//! conversations, some of them sending at a fixed rate, every one of them receiving.
//!
//! Each client is one task that owns its socket (no locks on the hot path): it reads
//! frames, writes its sends on its own ticker, and, in `reconnect`, drops its socket
//! now and then, reconnects, asks for `sync` since the newest message it saw and
//! resends its unacknowledged messages with the same `client_msg_id`. Sends are
//! open-loop — on the clock, not after the previous ack — so a slow server shows up as
//! latency rather than as a politely lower load. When the sending time is over the
//! engine waits until every sent message is acknowledged and delivered (or the drain
//! time runs out), then stops the clients and counts from their inboxes and outboxes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_protocol::ws::ClientFrame;
use chat_protocol::{ConversationId, MessageId};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::idle::KEEPALIVE;
use super::{Bench, Jitter};
use crate::body::{self, Stamp, now_us};
use crate::cli::Traffic;
use crate::report::{CostMeter, Report, round3};
use crate::stats::{self, Metric};
use crate::tracker::{Inbox, Outbox, Receipt, Tally};
use crate::ws::{self, Event, Socket};

/// How long to wait before sending again a message the server said is in progress.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Reconnect attempts before a client gives up.
const RECONNECT_ATTEMPTS: u32 = 20;
/// The first wait before a refused `sync` goes again, and the longest.
const SYNC_RETRY_FIRST: Duration = Duration::from_millis(250);
const SYNC_RETRY_MAX: Duration = Duration::from_secs(10);

/// How long to wait before sending a `sync` that was refused `refusals` times in a
/// row already: doubling from [`SYNC_RETRY_FIRST`] up to [`SYNC_RETRY_MAX`], and never
/// sooner than the server asked.
fn sync_backoff(refusals: u32, server_asks: Option<Duration>) -> Duration {
    let doubled = SYNC_RETRY_FIRST
        .saturating_mul(1 << refusals.min(16))
        .min(SYNC_RETRY_MAX);
    doubled.max(server_asks.unwrap_or_default())
}

/// One conversation of the run.
#[derive(Clone, Debug)]
pub struct ConversationPlan {
    pub id: ConversationId,
    /// How many of its members send (slots 0..senders).
    pub senders: usize,
}

/// One client connection of the run.
#[derive(Clone, Debug)]
pub struct ClientPlan {
    /// Index into [`TrafficPlan::conversations`].
    pub conversation: usize,
    pub token: Arc<str>,
    /// This connection's sender slot in its conversation, if it sends.
    pub sender_slot: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct TrafficPlan {
    pub conversations: Vec<ConversationPlan>,
    pub clients: Vec<ClientPlan>,
    pub traffic: Traffic,
    /// Mean time between two drops of one connection, for `reconnect`.
    pub reconnect_every: Option<Duration>,
}

/// What every client task reads and counts into.
struct Shared {
    endpoint: ws::Endpoint,
    conns_per_source: usize,
    body_bytes: usize,
    start: Instant,
    end: Instant,
    reconnect_every: Option<Duration>,
    /// Member connections per conversation: deliveries expected per acked message.
    recipients: Vec<u64>,
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
    expected: AtomicU64,
    last_delivery_us: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn note_error(&self, code: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(code.to_owned()).or_default() += 1;
    }
}

/// One client task's state, handed back when it stops.
struct Client {
    index: usize,
    conversation: usize,
    conversation_id: ConversationId,
    token: Arc<str>,
    sender_slot: Option<u32>,
    inbox: Inbox,
    outbox: Option<Outbox>,
    /// The body buffer, reused for every send.
    body: String,
    /// Messages of conversations this client is not in (must stay 0).
    foreign: u64,
    reconnects: u64,
    /// Sockets the server closed or that failed, not dropped on purpose.
    disconnects: u64,
    gave_up: bool,
    /// Sends the server answered `send_in_progress` to, to send again shortly.
    retries: Vec<u32>,
    retry_at: Option<Instant>,
    /// Refused `sync`s in a row (history catching up); reset by `synced`.
    sync_refusals: u32,
    /// The wait before the refused `sync` goes again, until it is scheduled.
    sync_retry_in: Option<Duration>,
    sync_retry_at: Option<Instant>,
}

pub async fn run(bench: &Bench, plan: TrafficPlan, report: &mut Report) -> anyhow::Result<()> {
    let tokens: Vec<&str> = plan.clients.iter().map(|c| &*c.token).collect();
    let sockets = bench.connect_all_or_fail(&tokens).await?;
    let connect_latencies = stats::take();

    // A moment for every task to be polled once before the first send.
    let lead = Duration::from_millis(200);
    let start = Instant::now() + lead;
    let start_us = now_us() + lead.as_micros() as u64;
    let shared = Arc::new(Shared::new(bench, &plan, start, start_us));

    let meter = CostMeter::start(bench.common.server_pid).with_services(&bench.common.service_pids);
    let (stop, stopped) = watch::channel(false);
    let tasks = spawn_clients(&plan, sockets, &shared, &stopped);

    wait_for_drain(&shared, Duration::from_secs_f64(plan.traffic.drain_secs)).await;
    let delivered = shared.delivered.load(Relaxed);
    let (server, bench_cost) = meter.finish(delivered);
    report.services = meter.services(delivered);
    let _ = stop.send(true);
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        clients.push(task.await?);
    }

    report.tally = tally(&plan, &clients);
    let duration_s = (shared
        .last_delivery_us
        .load(Relaxed)
        .saturating_sub(start_us)) as f64
        / 1e6;
    report.duration_s = round3(duration_s);
    report.deliveries_per_sec = if duration_s > 0.0 {
        (report.tally.delivered as f64 / duration_s).round()
    } else {
        0.0
    };
    let mut latencies = stats::take();
    latencies.merge_metric(&connect_latencies, Metric::Connect);
    report.set_latencies(&latencies);
    report.server = server;
    report.bench = bench_cost;
    report.errors = shared
        .errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    report_client_counts(report, &plan, &shared, &clients);
    Ok(())
}

/// How many of the run's clients send (at least 1, to divide by).
fn senders_total(plan: &TrafficPlan) -> usize {
    plan.clients
        .iter()
        .filter(|c| c.sender_slot.is_some())
        .count()
        .max(1)
}

/// The time between two sends of one sender.
fn send_period(traffic: &Traffic) -> Duration {
    Duration::from_secs_f64(1.0 / traffic.rate.max(1e-3))
}

impl Shared {
    /// Nothing counted yet; sending runs from `start` for the plan's duration.
    fn new(bench: &Bench, plan: &TrafficPlan, start: Instant, start_us: u64) -> Shared {
        let mut recipients = vec![0u64; plan.conversations.len()];
        for client in &plan.clients {
            recipients[client.conversation] += 1;
        }
        Shared {
            endpoint: bench.endpoint.clone(),
            conns_per_source: bench.common.conns_per_source,
            body_bytes: plan.traffic.body_bytes,
            start,
            end: start + Duration::from_secs_f64(plan.traffic.duration_secs),
            reconnect_every: plan.reconnect_every,
            recipients,
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(start_us),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

/// One task per client on its socket; senders get a ticker, their phases spread
/// evenly over one send period.
fn spawn_clients(
    plan: &TrafficPlan,
    sockets: Vec<Socket>,
    shared: &Arc<Shared>,
    stopped: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Client>> {
    let senders_total = senders_total(plan);
    let period = send_period(&plan.traffic);
    let mut sender_index = 0;
    plan.clients
        .iter()
        .zip(sockets)
        .enumerate()
        .map(|(index, (client_plan, socket))| {
            let conversation = &plan.conversations[client_plan.conversation];
            let mut client = Client::new(index, client_plan, conversation);
            let mut ticker = None;
            if client.sender_slot.is_some() {
                client.outbox = Some(Outbox::new(Jitter::new(index as u64 ^ 0x5EED).next_u64()));
                // Spread the senders evenly over one period.
                let phase = period.mul_f64(sender_index as f64 / senders_total as f64);
                sender_index += 1;
                let mut interval = tokio::time::interval_at(shared.start + phase, period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
                ticker = Some(interval);
            }
            tokio::spawn(drive(
                client,
                socket,
                ticker,
                Arc::clone(shared),
                stopped.clone(),
            ))
        })
        .collect()
}

/// Counts every conversation from its senders' outboxes (in slot order) and its
/// members' inboxes.
fn tally(plan: &TrafficPlan, clients: &[Client]) -> Tally {
    let mut tally = Tally::default();
    for (index, conversation) in plan.conversations.iter().enumerate() {
        let members: Vec<&Client> = clients.iter().filter(|c| c.conversation == index).collect();
        let mut outboxes: Vec<(u32, &Outbox)> = members
            .iter()
            .filter_map(|c| Some((c.sender_slot?, c.outbox.as_ref()?)))
            .collect();
        outboxes.sort_by_key(|(slot, _)| *slot);
        debug_assert_eq!(outboxes.len(), conversation.senders);
        let outboxes: Vec<&Outbox> = outboxes.into_iter().map(|(_, outbox)| outbox).collect();
        let inboxes: Vec<&Inbox> = members.iter().map(|c| &c.inbox).collect();
        tally.add_conversation(&outboxes, &inboxes);
    }
    tally
}

/// The run's shape and what happened to its clients, as extra figures.
fn report_client_counts(
    report: &mut Report,
    plan: &TrafficPlan,
    shared: &Shared,
    clients: &[Client],
) {
    report.extra("conversations", plan.conversations.len());
    report.extra("connections", clients.len());
    report.extra("senders", senders_total(plan));
    report.extra("refused", shared.refused.load(Relaxed));
    report.extra("foreign", clients.iter().map(|c| c.foreign).sum::<u64>());
    report.extra(
        "reconnects",
        clients.iter().map(|c| c.reconnects).sum::<u64>(),
    );
    report.extra(
        "disconnects",
        clients.iter().map(|c| c.disconnects).sum::<u64>(),
    );
    report.extra(
        "clients_gave_up",
        clients.iter().filter(|c| c.gave_up).count(),
    );
}

/// Waits for the end of sending, then until every sent message was acknowledged (or
/// refused) and every acknowledged one delivered everywhere, or `drain` ran out.
async fn wait_for_drain(shared: &Shared, drain: Duration) {
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    let report_progress = |shared: &Shared| {
        crate::progress!(
            "sent {} acked {} delivered {}/{}",
            shared.sent.load(Relaxed),
            shared.acked.load(Relaxed),
            shared.delivered.load(Relaxed),
            shared.expected.load(Relaxed)
        );
    };
    loop {
        let now = Instant::now();
        if now >= next_progress {
            report_progress(shared);
            next_progress = now + Duration::from_secs(5);
        }
        if now >= shared.end {
            let settled = shared.sent.load(Relaxed)
                == shared.acked.load(Relaxed) + shared.refused.load(Relaxed)
                && shared.delivered.load(Relaxed) >= shared.expected.load(Relaxed);
            if settled || now >= shared.end + drain {
                report_progress(shared);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn drive(
    mut client: Client,
    socket: Socket,
    mut ticker: Option<Interval>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Client {
    let mut socket = Some(socket);
    let mut jitter = Jitter::new(client.index as u64);
    let mut next_drop = shared
        .reconnect_every
        .map(|mean| shared.start + mean.mul_f64(0.5 + jitter.unit()));
    let mut sending = ticker.is_some();
    let mut keepalive = tokio::time::interval_at(
        Instant::now() + KEEPALIVE.mul_f64(0.5 + jitter.unit()),
        KEEPALIVE,
    );
    loop {
        let Some(ws) = socket.as_mut() else {
            socket = client.reconnect(&shared).await;
            if socket.is_none() {
                client.gave_up = true;
                return client;
            }
            continue;
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return client,
            // Sends before reads: under heavy inbound traffic the socket is always
            // readable, and sends must still leave on time.
            _ = tick(&mut ticker), if sending => {
                if Instant::now() >= shared.end {
                    sending = false;
                } else if client.send_next(ws, &shared).await.is_err() {
                    client.disconnects += 1;
                    socket = None;
                }
            },
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    client.handle(&text, &shared);
                    if let Some(wait) = client.sync_retry_in.take() {
                        // Spread out, so clients refused together do not all come back at once.
                        client.sync_retry_at = Some(Instant::now() + wait.mul_f64(1.0 + 0.5 * jitter.unit()));
                    }
                }
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                    client.disconnects += 1;
                    socket = None;
                }
                Some(Ok(_)) => {}
            },
            _ = sleep_until(client.sync_retry_at), if client.sync_retry_at.is_some() => {
                client.sync_retry_at = None;
                if client.sync(ws).await.is_err() {
                    client.disconnects += 1;
                    socket = None;
                }
            },
            _ = sleep_until(client.retry_at), if client.retry_at.is_some() => {
                client.retry_at = None;
                let retries = std::mem::take(&mut client.retries);
                if client.resend(ws, retries, &shared).await.is_err() {
                    client.disconnects += 1;
                    socket = None;
                }
            },
            _ = keepalive.tick() => {
                if ws::send(ws, &ClientFrame::Ping).await.is_err() {
                    client.disconnects += 1;
                    socket = None;
                }
            },
            _ = sleep_until(next_drop), if next_drop.is_some_and(|at| at < shared.end) => {
                // Drop without a close handshake, as a lost network does.
                socket = None;
                next_drop = shared.reconnect_every.map(|mean| Instant::now() + mean.mul_f64(0.5 + jitter.unit()));
            },
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Client {
    /// A client that has received and sent nothing yet (a sender's outbox is added
    /// by [`spawn_clients`]).
    fn new(index: usize, plan: &ClientPlan, conversation: &ConversationPlan) -> Client {
        Client {
            index,
            conversation: plan.conversation,
            conversation_id: conversation.id,
            token: Arc::clone(&plan.token),
            sender_slot: plan.sender_slot,
            inbox: Inbox::new(conversation.senders),
            outbox: None,
            body: String::new(),
            foreign: 0,
            reconnects: 0,
            disconnects: 0,
            gave_up: false,
            retries: Vec::new(),
            retry_at: None,
            sync_refusals: 0,
            sync_retry_in: None,
            sync_retry_at: None,
        }
    }

    fn handle(&mut self, text: &str, shared: &Shared) {
        match ws::parse(text) {
            Some(Event::Message {
                id,
                conversation_id,
                body,
            }) => {
                if conversation_id != self.conversation_id {
                    self.foreign += 1;
                    return;
                }
                let Some(stamp) = body::decode(&body) else {
                    self.inbox.unreadable += 1;
                    return;
                };
                if self.inbox.receive(stamp, id.0) == Receipt::New {
                    let now = now_us();
                    stats::record(Metric::Delivery, now.saturating_sub(stamp.sent_us));
                    shared.delivered.fetch_add(1, Relaxed);
                    shared.last_delivery_us.fetch_max(now, Relaxed);
                }
            }
            Some(Event::Ack { client_msg_id, .. }) => {
                let Some(outbox) = self.outbox.as_mut() else {
                    return;
                };
                let Some(seq) = body::seq_of(outbox.nonce, client_msg_id) else {
                    shared.note_error("ack_for_unknown_client_msg_id");
                    return;
                };
                if let Some(sent_us) = outbox.record_ack(seq) {
                    stats::record(Metric::Ack, now_us().saturating_sub(sent_us));
                    shared.acked.fetch_add(1, Relaxed);
                    shared
                        .expected
                        .fetch_add(shared.recipients[self.conversation], Relaxed);
                }
            }
            Some(Event::Error {
                code,
                client_msg_id: None,
                retry_after,
            }) if self.inbox.is_syncing() && code == "unavailable" => {
                // History is catching up (a persister rebalance after a node died):
                // ask again later, as a real client must.
                shared.note_error("sync_refused");
                self.sync_retry_in = Some(sync_backoff(self.sync_refusals, retry_after));
                self.sync_refusals += 1;
            }
            Some(Event::Error {
                code,
                client_msg_id,
                ..
            }) => {
                shared.note_error(&code);
                let ours = self
                    .outbox
                    .as_ref()
                    .zip(client_msg_id)
                    .and_then(|(outbox, id)| body::seq_of(outbox.nonce, id));
                match ours {
                    // The first attempt (from a dropped socket) is still being
                    // written: the server asks to retry shortly.
                    Some(seq) if code == "send_in_progress" => {
                        self.retries.push(seq);
                        self.retry_at.get_or_insert(Instant::now() + RETRY_DELAY);
                    }
                    Some(_) => {
                        shared.refused.fetch_add(1, Relaxed);
                    }
                    None => {}
                }
            }
            Some(Event::Synced { until }) => {
                self.sync_refusals = 0;
                self.inbox.synced(until.map(|id| id.0));
            }
            Some(Event::Pong | Event::Other) => {}
            None => shared.note_error("unparsable_frame"),
        }
    }

    /// Writes the next new message of this sender.
    async fn send_next(
        &mut self,
        ws: &mut Socket,
        shared: &Shared,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let (Some(outbox), Some(slot)) = (self.outbox.as_mut(), self.sender_slot) else {
            return Ok(());
        };
        let sent_us = now_us();
        let seq = outbox.record_send(sent_us);
        shared.sent.fetch_add(1, Relaxed);
        let client_msg_id = body::client_msg_id(outbox.nonce, seq);
        self.write_send(
            ws,
            Stamp { slot, seq, sent_us },
            client_msg_id,
            shared.body_bytes,
        )
        .await
    }

    async fn write_send(
        &mut self,
        ws: &mut Socket,
        stamp: Stamp,
        client_msg_id: uuid::Uuid,
        body_bytes: usize,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        body::encode(stamp, body_bytes, &mut self.body);
        let frame = ClientFrame::Send {
            conversation_id: self.conversation_id,
            client_msg_id,
            body: std::mem::take(&mut self.body),
            reply_to: None,
        };
        let result = ws::send(ws, &frame).await;
        if let ClientFrame::Send { body, .. } = frame {
            self.body = body;
        }
        result
    }

    /// Connects again, asks for what was missed and resends what was not acknowledged.
    async fn reconnect(&mut self, shared: &Shared) -> Option<Socket> {
        let source = ws::source_ip(self.index, shared.conns_per_source);
        for attempt in 0..RECONNECT_ATTEMPTS {
            let began_us = now_us();
            let mut socket = match ws::connect(&shared.endpoint, source, &self.token).await {
                Ok(socket) => socket,
                Err(error) => {
                    shared.note_error(&format!("reconnect: {error}"));
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
                    continue;
                }
            };
            stats::record(Metric::Connect, now_us() - began_us);
            self.reconnects += 1;
            self.sync_retry_at = None;
            if self.sync(&mut socket).await.is_err() {
                continue;
            }
            let unacked: Vec<u32> = self.outbox.iter().flat_map(Outbox::unacked).collect();
            if self.resend(&mut socket, unacked, shared).await.is_err() {
                continue;
            }
            return Some(socket);
        }
        None
    }

    /// Asks for everything missed since the last complete replay.
    async fn sync(&mut self, ws: &mut Socket) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let sync = ClientFrame::Sync {
            // With nothing seen yet, everything in the conversation is missed.
            since: Some(MessageId(self.inbox.resume_id.unwrap_or(0))),
        };
        ws::send(ws, &sync).await?;
        self.inbox.begin_sync();
        Ok(())
    }

    /// Writes again, with the same `client_msg_id` and body, those of `seqs` that
    /// are still unacknowledged.
    async fn resend(
        &mut self,
        ws: &mut Socket,
        seqs: Vec<u32>,
        shared: &Shared,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let (Some(outbox), Some(slot)) = (self.outbox.as_mut(), self.sender_slot) else {
            return Ok(());
        };
        let nonce = outbox.nonce;
        let resends: Vec<Stamp> = seqs
            .into_iter()
            .filter_map(|seq| {
                if outbox.is_acked(seq as usize) {
                    return None;
                }
                Some(Stamp {
                    slot,
                    seq,
                    sent_us: outbox.record_resend(seq)?,
                })
            })
            .collect();
        for stamp in resends {
            self.write_send(
                ws,
                stamp,
                body::client_msg_id(nonce, stamp.seq),
                shared.body_bytes,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_sync_backs_off_doubling_up_to_a_ceiling_never_sooner_than_asked() {
        let ms = Duration::from_millis;
        let waits: Vec<Duration> = (0..8).map(|n| sync_backoff(n, None)).collect();
        assert_eq!(waits[..4], [ms(250), ms(500), ms(1000), ms(2000)]);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(sync_backoff(7, None), SYNC_RETRY_MAX);
        assert_eq!(sync_backoff(u32::MAX, None), SYNC_RETRY_MAX);
        // The server's word is a floor.
        assert_eq!(sync_backoff(0, Some(ms(1000))), ms(1000));
        assert_eq!(sync_backoff(3, Some(ms(1000))), ms(2000));
    }
}
