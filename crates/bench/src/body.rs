//! What the bench puts inside a message so the receiver can measure it.
//!
//! Every message body starts with `bench <slot> <seq> <sent_us>`: the sender's slot in
//! its conversation, the sender's sequence number and the send time in microseconds
//! since the bench process started (one monotonic clock for senders and receivers, as
//! both live in this process). The receiver needs nothing else to record send→deliver
//! latency and to find gaps and duplicates, so the hot path keeps no lookup table.
//!
//! The `client_msg_id` carries the sequence number too ([`client_msg_id`]), so an `ack`
//! — which has no body — leads straight back to the send it answers.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use uuid::Uuid;

const PREFIX: &str = "bench ";

/// The bench's clock: microseconds since the first call in this process.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The fields the bench reads back out of a delivered body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's index among its conversation's senders.
    pub slot: u32,
    /// The sender's sequence number, from 0.
    pub seq: u32,
    /// When the sender wrote the frame, in [`now_us`] microseconds.
    pub sent_us: u64,
}

/// Writes the body for `stamp` into `out` (cleared first), padded with `x` to at least
/// `min_bytes`, so one buffer is reused for every send.
pub fn encode(stamp: Stamp, min_bytes: usize, out: &mut String) {
    out.clear();
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{PREFIX}{} {} {}",
        stamp.slot, stamp.seq, stamp.sent_us
    );
    if out.len() < min_bytes {
        out.extend(std::iter::repeat_n('x', min_bytes - out.len()));
    }
}

/// Reads a body written by [`encode`]; `None` for anything else (a message the bench
/// did not send, or a mangled body — both are counted, not trusted).
pub fn decode(body: &str) -> Option<Stamp> {
    let mut fields = body.strip_prefix(PREFIX)?.splitn(4, ' ');
    let slot = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let sent_us = fields.next()?;
    // The padding, if any, follows the timestamp directly.
    let digits = sent_us
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(sent_us.len());
    let sent_us = sent_us[..digits].parse().ok()?;
    Some(Stamp { slot, seq, sent_us })
}

/// A `client_msg_id` that is unique per sender and carries `seq`: the high half is
/// the sender's random `nonce` (with the UUID version 4 bits), the low half is
/// `seq` behind the RFC 4122 variant bits. A resend after a reconnect reuses it, which
/// is what makes the server's idempotency observable.
pub fn client_msg_id(nonce: u64, seq: u32) -> Uuid {
    let high = (nonce & !0xF000) | 0x4000;
    let low = 0x8000_0000_0000_0000 | u64::from(seq);
    Uuid::from_u64_pair(high, low)
}

/// The sequence number inside an id made by [`client_msg_id`] with the same `nonce`.
pub fn seq_of(nonce: u64, id: Uuid) -> Option<u32> {
    let (high, low) = id.as_u64_pair();
    if high != (nonce & !0xF000) | 0x4000 || low >> 32 != 0x8000_0000 {
        return None;
    }
    u32::try_from(low & 0xFFFF_FFFF).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_carries_slot_sequence_and_send_time() {
        let stamp = Stamp {
            slot: 7,
            seq: 123_456,
            sent_us: 98_765_432_100,
        };
        let mut body = String::new();
        encode(stamp, 0, &mut body);
        assert_eq!(body, "bench 7 123456 98765432100");
        assert_eq!(decode(&body), Some(stamp));
    }

    #[test]
    fn padding_reaches_the_requested_size_and_still_decodes() {
        let stamp = Stamp {
            slot: 0,
            seq: 1,
            sent_us: 2,
        };
        let mut body = String::from("left over from the previous send");
        encode(stamp, 200, &mut body);
        assert_eq!(body.len(), 200);
        assert!(body.starts_with("bench 0 1 2x"));
        assert_eq!(decode(&body), Some(stamp));
    }

    #[test]
    fn foreign_or_mangled_bodies_are_not_trusted() {
        for body in [
            "hello",
            "bench",
            "bench 1 2",
            "bench a 2 3",
            "bench 1 2 x",
            "bench -1 2 3",
            "",
        ] {
            assert_eq!(decode(body), None, "{body:?}");
        }
    }

    #[test]
    fn client_msg_ids_are_version_4_and_give_back_their_sequence() {
        let nonce = 0xDEAD_BEEF_1234_5678;
        let id = client_msg_id(nonce, 42);
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(seq_of(nonce, id), Some(42));
        assert_eq!(seq_of(nonce ^ 1 << 40, id), None);
        assert_ne!(client_msg_id(nonce, 1), client_msg_id(nonce, 2));
        assert_eq!(
            seq_of(nonce, client_msg_id(nonce, u32::MAX)),
            Some(u32::MAX)
        );
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_us();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_us() >= a + 1_000);
    }
}
