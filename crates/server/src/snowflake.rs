//! Snowflake message ids (DESIGN.md §3): 41 bits of milliseconds since [`EPOCH_MS`],
//! 10 bits of node id, 12 bits of sequence. Ids from one generator strictly increase,
//! even if the wall clock steps back: the generator then keeps counting from the last
//! id it gave out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_protocol::MessageId;

/// 2024-01-01T00:00:00Z.
pub const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const SEQUENCE_MASK: i64 = (1 << SEQUENCE_BITS) - 1;

#[derive(Debug)]
pub struct Snowflake {
    node_id: i64,
    last: AtomicI64,
}

impl Snowflake {
    pub fn new(node_id: u16) -> Self {
        assert!(node_id < 1 << NODE_BITS, "node id out of range");
        Self {
            node_id: i64::from(node_id),
            last: AtomicI64::new(0),
        }
    }

    pub fn next_id(&self) -> MessageId {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let from_clock = self.compose(now_ms() - EPOCH_MS, 0);
            let after_last = if last & SEQUENCE_MASK == SEQUENCE_MASK {
                // Sequence exhausted in this millisecond: borrow the next one.
                self.compose((last >> (NODE_BITS + SEQUENCE_BITS)) + 1, 0)
            } else {
                last + 1
            };
            let next = from_clock.max(after_last);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return MessageId(next),
                Err(seen) => last = seen,
            }
        }
    }

    fn compose(&self, ms: i64, sequence: i64) -> i64 {
        (ms << (NODE_BITS + SEQUENCE_BITS)) | (self.node_id << SEQUENCE_BITS) | sequence
    }
}

/// The smallest id that could be minted at `unix_ms`: a cursor for "since then".
pub fn first_id_at(unix_ms: i64) -> MessageId {
    MessageId((unix_ms - EPOCH_MS).max(0) << (NODE_BITS + SEQUENCE_BITS))
}

/// When the id was minted, in Unix milliseconds.
pub fn unix_ms_of(id: MessageId) -> i64 {
    (id.0 >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn ids_strictly_increase_and_carry_time_and_node() {
        let ids = Snowflake::new(7);
        let mut previous = ids.next_id();
        for _ in 0..100_000 {
            let id = ids.next_id();
            assert!(id > previous);
            assert_eq!((id.0 >> SEQUENCE_BITS) & 0x3FF, 7);
            previous = id;
        }
        assert!((unix_ms_of(previous) - now_ms()).abs() < 5_000);
    }

    #[test]
    fn ids_are_unique_under_concurrency() {
        let ids = Arc::new(Snowflake::new(1));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..50_000).map(|_| ids.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            let batch = thread.join().unwrap();
            assert!(
                batch.windows(2).all(|w| w[0] < w[1]),
                "each thread sees increasing ids"
            );
            for id in batch {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 200_000);
    }

    #[test]
    fn a_clock_step_back_does_not_repeat_ids() {
        let ids = Snowflake::new(0);
        // Pretend an id far in the future was already handed out.
        let future = ids.compose(now_ms() - EPOCH_MS + 60_000, SEQUENCE_MASK);
        ids.last.store(future, Ordering::Relaxed);
        let next = ids.next_id();
        assert!(next.0 > future);
        assert_eq!(
            next.0 & SEQUENCE_MASK,
            0,
            "a full sequence rolls into the next millisecond"
        );
    }

    #[test]
    fn first_id_at_is_a_lower_bound_for_later_ids() {
        let cursor = first_id_at(now_ms() - 1);
        assert!(Snowflake::new(1023).next_id() > cursor);
    }
}
