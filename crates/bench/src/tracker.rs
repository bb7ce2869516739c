//! Bookkeeping of who sent what and who received what, to count losses and duplicates.
//!
//! A sender keeps an [`Outbox`]: the send time and ack state of each sequence number.
//! A receiving connection keeps an [`Inbox`]: for each sender slot of its conversation
//! and each sequence number, the message id it got (or nothing). With both, after the
//! run, [`Tally`] says exactly which acknowledged messages never arrived where they
//! should have (lost), which arrived twice under the same id (redelivered: allowed by
//! at-least-once, e.g. a `sync` replay overlapping live traffic) and which arrived
//! under two different ids (duplicates: the server created a second message for one
//! send, which must never happen).

use serde::Serialize;

use crate::body::Stamp;

/// What one sender connection sent.
#[derive(Debug)]
pub struct Outbox {
    /// The sender's `client_msg_id` nonce (see [`crate::body::client_msg_id`]).
    pub nonce: u64,
    /// Per sequence number: when it was (last) sent, in bench microseconds.
    sent_us: Vec<u64>,
    acked: Vec<bool>,
    acked_count: u64,
    /// Sends written again after a reconnect because their ack never came.
    pub resent: u64,
}

impl Outbox {
    pub fn new(nonce: u64) -> Self {
        Self {
            nonce,
            sent_us: Vec::new(),
            acked: Vec::new(),
            acked_count: 0,
            resent: 0,
        }
    }

    /// The sequence number of the next new message.
    pub fn next_seq(&self) -> u32 {
        u32::try_from(self.sent_us.len()).unwrap_or(u32::MAX)
    }

    /// Notes that a new message went out at `sent_us`; returns its sequence number.
    pub fn record_send(&mut self, sent_us: u64) -> u32 {
        let seq = self.next_seq();
        self.sent_us.push(sent_us);
        self.acked.push(false);
        seq
    }

    /// Notes that an unacknowledged message is written again (same `client_msg_id`,
    /// same body); returns its first send time, which its body carries, so latency
    /// counts from the first attempt.
    pub fn record_resend(&mut self, seq: u32) -> Option<u64> {
        let sent_us = self.sent_us.get(seq as usize).copied()?;
        self.resent += 1;
        Some(sent_us)
    }

    /// Notes an ack; returns the send time for the latency, or `None` for an ack of a
    /// message already acknowledged or never sent (not counted twice).
    pub fn record_ack(&mut self, seq: u32) -> Option<u64> {
        let acked = self.acked.get_mut(seq as usize)?;
        if std::mem::replace(acked, true) {
            return None;
        }
        self.acked_count += 1;
        self.sent_us.get(seq as usize).copied()
    }

    pub fn sent(&self) -> u64 {
        self.sent_us.len() as u64
    }

    pub fn acked(&self) -> u64 {
        self.acked_count
    }

    pub fn is_acked(&self, seq: usize) -> bool {
        self.acked.get(seq).copied().unwrap_or(false)
    }

    /// Sequence numbers sent but not acknowledged yet, to resend after a reconnect.
    pub fn unacked(&self) -> impl Iterator<Item = u32> + '_ {
        self.acked
            .iter()
            .enumerate()
            .filter(|(_, acked)| !**acked)
            .map(|(seq, _)| seq as u32)
    }
}

/// How one delivery compares with what the receiver already had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// The first delivery of this message.
    New,
    /// The same message id again.
    Redelivered,
    /// The same sender and sequence number under a different message id.
    Duplicate,
    /// A slot the conversation does not have: not one of ours.
    Unknown,
}

/// What one receiving connection got from its conversation's senders.
#[derive(Debug, Default)]
pub struct Inbox {
    /// `[slot][seq]`: the message id + 1 (so 0 means "not received").
    ids: Vec<Vec<u64>>,
    pub unique: u64,
    pub redelivered: u64,
    pub duplicates: u64,
    /// New messages whose id was below the newest id already seen: the conversation's
    /// order was broken (DESIGN.md §3 promises ids increase in delivery order).
    pub out_of_order: u64,
    /// Bodies the bench could not read, or slots it does not know.
    pub unreadable: u64,
    /// The newest message id seen.
    pub newest_id: Option<i64>,
    /// Where the next `sync` starts: advanced by live messages and by `synced`, never
    /// by what arrives during a sync, which a dropped connection may cut short (the
    /// replay is in id order, and live messages interleave with it).
    pub resume_id: Option<i64>,
    /// Between asking for a `sync` and its `synced`.
    syncing: bool,
    /// The newest id that arrived during the current sync.
    syncing_high: Option<i64>,
}

impl Inbox {
    pub fn new(senders: usize) -> Self {
        Self {
            ids: vec![Vec::new(); senders],
            ..Self::default()
        }
    }

    /// Records one delivery. During a `sync` replay, older messages legitimately
    /// interleave with newer live ones, so order is not checked then.
    pub fn receive(&mut self, stamp: Stamp, message_id: i64) -> Receipt {
        let live = !self.syncing;
        let Some(seqs) = self.ids.get_mut(stamp.slot as usize) else {
            self.unreadable += 1;
            return Receipt::Unknown;
        };
        let seq = stamp.seq as usize;
        if seqs.len() <= seq {
            seqs.resize(seq + 1, 0);
        }
        let stored = message_id as u64 + 1;
        let receipt = match seqs[seq] {
            0 => {
                seqs[seq] = stored;
                self.unique += 1;
                if live && self.newest_id.is_some_and(|newest| message_id < newest) {
                    self.out_of_order += 1;
                }
                Receipt::New
            }
            seen if seen == stored => {
                self.redelivered += 1;
                Receipt::Redelivered
            }
            _ => {
                self.duplicates += 1;
                Receipt::Duplicate
            }
        };
        self.newest_id = self.newest_id.max(Some(message_id));
        if live {
            self.resume_id = self.resume_id.max(Some(message_id));
        } else {
            self.syncing_high = self.syncing_high.max(Some(message_id));
        }
        receipt
    }

    /// Whether a `sync` was asked for and its `synced` has not come yet.
    pub fn is_syncing(&self) -> bool {
        self.syncing
    }

    /// A `sync` was asked for (on a new connection).
    pub fn begin_sync(&mut self) {
        self.syncing = true;
        self.syncing_high = None;
    }

    /// The sync replay ended at `until`: everything up to it, and everything that
    /// arrived during it, is now complete.
    pub fn synced(&mut self, until: Option<i64>) {
        self.syncing = false;
        self.resume_id = self.resume_id.max(until).max(self.syncing_high.take());
    }

    /// Acknowledged messages of `slot`'s sender that never reached this inbox.
    pub fn missing_from(&self, slot: usize, outbox: &Outbox) -> u64 {
        let received = self.ids.get(slot).map(Vec::as_slice).unwrap_or(&[]);
        (0..outbox.sent_us.len())
            .filter(|&seq| outbox.is_acked(seq) && received.get(seq).is_none_or(|&id| id == 0))
            .count() as u64
    }
}

/// The loss and duplicate figures of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub sent: u64,
    pub acknowledged: u64,
    pub resent: u64,
    /// Distinct messages received, summed over receiving connections.
    pub delivered: u64,
    /// Acknowledged messages times the connections that should receive each.
    pub expected: u64,
    /// Acknowledged messages a connection that should have received them never got.
    pub lost: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub out_of_order: u64,
    pub unreadable: u64,
}

impl Tally {
    /// Adds one conversation: its senders' outboxes, by slot, and its members'
    /// connections' inboxes (every member connection receives every message).
    pub fn add_conversation(&mut self, outboxes: &[&Outbox], inboxes: &[&Inbox]) {
        for outbox in outboxes {
            self.sent += outbox.sent();
            self.acknowledged += outbox.acked();
            self.resent += outbox.resent;
            self.expected += outbox.acked() * inboxes.len() as u64;
        }
        for inbox in inboxes {
            self.delivered += inbox.unique;
            self.duplicates += inbox.duplicates;
            self.redelivered += inbox.redelivered;
            self.out_of_order += inbox.out_of_order;
            self.unreadable += inbox.unreadable;
            for (slot, outbox) in outboxes.iter().enumerate() {
                self.lost += inbox.missing_from(slot, outbox);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(slot: u32, seq: u32) -> Stamp {
        Stamp {
            slot,
            seq,
            sent_us: 0,
        }
    }

    #[test]
    fn acks_give_back_the_send_time_once() {
        let mut outbox = Outbox::new(1);
        assert_eq!(outbox.record_send(100), 0);
        assert_eq!(outbox.record_send(200), 1);
        assert_eq!(outbox.record_ack(1), Some(200));
        assert_eq!(
            outbox.record_ack(1),
            None,
            "a second ack is not a second message"
        );
        assert_eq!(outbox.record_ack(7), None, "never sent");
        assert_eq!((outbox.sent(), outbox.acked()), (2, 1));
        assert_eq!(outbox.unacked().collect::<Vec<_>>(), vec![0]);
        assert_eq!(outbox.record_resend(0), Some(100));
        assert_eq!(outbox.record_resend(9), None);
        assert_eq!(outbox.record_ack(0), Some(100));
        assert_eq!(outbox.resent, 1);
    }

    #[test]
    fn the_same_id_twice_is_a_redelivery_and_a_new_id_is_a_duplicate() {
        let mut inbox = Inbox::new(2);
        assert_eq!(inbox.receive(stamp(0, 0), 10), Receipt::New);
        assert_eq!(inbox.receive(stamp(0, 0), 10), Receipt::Redelivered);
        assert_eq!(inbox.receive(stamp(0, 0), 11), Receipt::Duplicate);
        assert_eq!(inbox.receive(stamp(5, 0), 12), Receipt::Unknown);
        assert_eq!(
            (
                inbox.unique,
                inbox.redelivered,
                inbox.duplicates,
                inbox.unreadable
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn a_sync_cut_short_does_not_move_the_resume_point() {
        let mut inbox = Inbox::new(1);
        inbox.receive(stamp(0, 0), 10);
        inbox.begin_sync();
        // Replayed 11 and a live 30 arrive; the connection drops before `synced`.
        inbox.receive(stamp(0, 1), 11);
        inbox.receive(stamp(0, 5), 30);
        assert_eq!(inbox.resume_id, Some(10));
        assert_eq!(inbox.newest_id, Some(30));
        // The next sync completes.
        inbox.begin_sync();
        inbox.receive(stamp(0, 2), 12);
        inbox.synced(Some(12));
        assert_eq!(inbox.resume_id, Some(12));
        inbox.begin_sync();
        inbox.receive(stamp(0, 6), 40);
        inbox.synced(Some(35));
        assert_eq!(inbox.resume_id, Some(40));
        inbox.receive(stamp(0, 7), 41);
        assert_eq!(inbox.resume_id, Some(41));
    }

    #[test]
    fn message_id_zero_is_still_a_received_message() {
        let mut inbox = Inbox::new(1);
        assert_eq!(inbox.receive(stamp(0, 0), 0), Receipt::New);
        assert_eq!(inbox.receive(stamp(0, 0), 0), Receipt::Redelivered);
    }

    #[test]
    fn an_older_id_after_a_newer_one_breaks_the_order() {
        let mut inbox = Inbox::new(2);
        inbox.receive(stamp(0, 0), 20);
        inbox.receive(stamp(1, 0), 30);
        inbox.receive(stamp(0, 1), 25);
        assert_eq!(inbox.out_of_order, 1);
        assert_eq!(inbox.newest_id, Some(30));
    }

    #[test]
    fn gaps_count_only_acknowledged_messages() {
        let mut sender_a = Outbox::new(1);
        let mut sender_b = Outbox::new(2);
        for _ in 0..4 {
            sender_a.record_send(0);
            sender_b.record_send(0);
        }
        for seq in 0..4 {
            sender_a.record_ack(seq);
        }
        sender_b.record_ack(0);
        sender_b.record_ack(1);
        // seq 3 of B was never acknowledged: not expected, and counted if delivered.

        let mut complete = Inbox::new(2);
        let mut gappy = Inbox::new(2);
        for seq in 0..4 {
            complete.receive(stamp(0, seq), i64::from(seq));
            complete.receive(stamp(1, seq), 100 + i64::from(seq));
        }
        gappy.receive(stamp(0, 0), 0);
        gappy.receive(stamp(0, 3), 3);
        gappy.receive(stamp(0, 3), 3);
        gappy.receive(stamp(1, 1), 101);

        let mut tally = Tally::default();
        tally.add_conversation(&[&sender_a, &sender_b], &[&complete, &gappy]);
        assert_eq!(tally.sent, 8);
        assert_eq!(tally.acknowledged, 6);
        assert_eq!(tally.expected, 12);
        assert_eq!(tally.delivered, 8 + 3);
        // gappy misses A's 1 and 2 and B's 0.
        assert_eq!(tally.lost, 3);
        assert_eq!(tally.redelivered, 1);
        assert_eq!(tally.duplicates, 0);
    }
}
