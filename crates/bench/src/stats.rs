//! Latency histograms, recorded on the hot path without contention.
//!
//! Each runtime thread records into its own [`LatencySet`] (a thread-local registered
//! once in a global list), so recording a latency is an uncontended lock and an HDR
//! histogram increment whether the bench runs on one thread or several. At the end of
//! a run [`take`] merges every thread's set and resets them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency recorded exactly; longer ones are clamped to it.
const HIGHEST_US: u64 = 600_000_000;

/// What a latency measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// A `send` frame written → its `ack` read.
    Ack,
    /// A `send` frame written → the `message` frame read by one recipient.
    Delivery,
    /// An HTTP request (a history page) sent → its body read.
    Request,
    /// TCP connect → WebSocket upgraded → `ready` read.
    Connect,
}

const METRICS: usize = 4;

/// One histogram of microseconds per [`Metric`].
#[derive(Clone, Debug)]
pub struct LatencySet {
    histograms: [Histogram<u64>; METRICS],
}

impl Default for LatencySet {
    fn default() -> Self {
        Self {
            histograms: std::array::from_fn(|_| new_histogram()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 3 significant figures from 1 µs to 10 minutes: fixed bounds, so this cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_US, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

impl LatencySet {
    pub fn record(&mut self, metric: Metric, micros: u64) {
        self.histograms[metric as usize].saturating_record(micros.min(HIGHEST_US));
    }

    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric as usize]
    }

    pub fn summary(&self, metric: Metric) -> LatencySummary {
        LatencySummary::of(self.histogram(metric))
    }

    /// Adds `other`'s recordings of `metric` to this set's.
    pub fn merge_metric(&mut self, other: &LatencySet, metric: Metric) {
        let _ = self.histograms[metric as usize].add(&other.histograms[metric as usize]);
    }

    fn merge_from(&mut self, other: &LatencySet) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            // Same bounds on both sides, and clamped values: adding cannot fail.
            let _ = mine.add(theirs);
        }
    }

    fn reset(&mut self) {
        self.histograms.iter_mut().for_each(Histogram::reset);
    }
}

/// Percentiles of one histogram, in microseconds, as they appear in the JSON line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let mean = (histogram.mean() * 10.0).round() / 10.0;
        Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean,
        }
    }
}

static THREADS: Mutex<Vec<Arc<Mutex<LatencySet>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Arc<Mutex<LatencySet>> = {
        let set = Arc::new(Mutex::new(LatencySet::default()));
        lock(&THREADS).push(Arc::clone(&set));
        set
    };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while recording leaves a histogram that is still valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records one latency in this thread's set.
pub fn record(metric: Metric, micros: u64) {
    LOCAL.with(|set| lock(set).record(metric, micros));
}

/// Merges what every thread recorded since the last call, and starts them afresh.
pub fn take() -> LatencySet {
    let mut merged = LatencySet::default();
    for set in lock(&THREADS).iter() {
        let mut set = lock(set);
        merged.merge_from(&set);
        set.reset();
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut set = LatencySet::default();
        for micros in 1..=10_000 {
            set.record(Metric::Delivery, micros);
        }
        let summary = set.summary(Metric::Delivery);
        assert_eq!(summary.count, 10_000);
        // HDR keeps 3 significant figures: within 0.1 %.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(summary.p50, 5_000), "{summary:?}");
        assert!(near(summary.p90, 9_000), "{summary:?}");
        assert!(near(summary.p99, 9_900), "{summary:?}");
        assert!(near(summary.p999, 9_990), "{summary:?}");
        assert!(near(summary.max, 10_000), "{summary:?}");
        assert!((summary.mean - 5_000.5).abs() < 10.0, "{summary:?}");
    }

    #[test]
    fn an_empty_histogram_summarizes_to_zeros() {
        assert_eq!(
            LatencySet::default().summary(Metric::Ack),
            LatencySummary::default()
        );
    }

    #[test]
    fn absurd_latencies_are_clamped_not_lost() {
        let mut set = LatencySet::default();
        set.record(Metric::Ack, u64::MAX);
        set.record(Metric::Ack, 0);
        let summary = set.summary(Metric::Ack);
        assert_eq!(summary.count, 2);
        assert!(summary.max >= HIGHEST_US);
    }

    #[test]
    fn every_threads_recordings_are_merged_and_then_reset() {
        let _ = take();
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for micros in [100, 200, 300] {
                        record(Metric::Connect, micros);
                    }
                });
            }
        });
        record(Metric::Connect, 400);
        // Other tests may record concurrently, but only into other metrics.
        let merged = take();
        assert_eq!(merged.histogram(Metric::Connect).len(), 10);
        assert_eq!(merged.summary(Metric::Connect).max, 400);
        assert_eq!(take().histogram(Metric::Connect).len(), 0);
    }
}
