//! The one JSON line a run prints, and the server-cost meter that fills part of it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::procfs::{self, ProcSample};
use crate::stats::{LatencySet, LatencySummary, Metric};
use crate::tracker::Tally;

/// Everything a run measured. Latencies are in microseconds.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When the run finished, in seconds since the Unix epoch.
    pub unix_time: u64,
    /// The scenario's options.
    pub params: serde_json::Value,
    pub bench_threads: u16,
    /// Seconds from the first send (or read) to the last delivery (or read).
    pub duration_s: f64,
    #[serde(flatten)]
    pub tally: Tally,
    /// Deliveries (distinct messages received by a connection) per second of
    /// `duration_s`; for `history`, messages read per second.
    pub deliveries_per_sec: f64,
    pub ack_latency_us: LatencySummary,
    pub delivery_latency_us: LatencySummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_latency_us: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_latency_us: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerCost>,
    /// The processes given with `--service-pid`, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServerCost>,
    pub bench: ProcSample,
    /// Error frames and failures, by code.
    pub errors: BTreeMap<String, u64>,
    /// Figures only some scenarios have.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn set_latencies(&mut self, latencies: &LatencySet) {
        self.ack_latency_us = latencies.summary(Metric::Ack);
        self.delivery_latency_us = latencies.summary(Metric::Delivery);
        let present = |metric| Some(latencies.summary(metric)).filter(|s| s.count > 0);
        self.connect_latency_us = present(Metric::Connect);
        self.request_latency_us = present(Metric::Request);
    }

    pub fn extra(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.extra.insert(key.to_owned(), value.into());
    }
}

/// What the server spent during the measured part of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ServerCost {
    pub pid: u32,
    /// CPU seconds (user + system) between the start and the end of the measurement.
    pub cpu_s: f64,
    /// CPU seconds per wall-clock second: 2.0 is both cores of this machine.
    pub cpu_cores: f64,
    /// `cpu_s` per delivered message, in microseconds: stable on a noisy machine.
    pub cpu_us_per_delivery: Option<f64>,
    pub rss_before_kib: u64,
    pub rss_kib: u64,
    pub rss_peak_kib: u64,
    pub threads: u64,
}

/// Samples the server (and the bench itself) at the start of the measured part and
/// again at its end.
pub struct CostMeter {
    server_pid: Option<u32>,
    server_start: Option<ProcSample>,
    services: Vec<(String, u32, ProcSample)>,
    bench_start: ProcSample,
    started_us: u64,
}

impl CostMeter {
    pub fn start(server_pid: Option<u32>) -> Self {
        let server_start = server_pid.and_then(|pid| match procfs::sample(pid) {
            Ok(sample) => Some(sample),
            Err(error) => {
                crate::progress!("cannot read /proc/{pid} ({error}): no server figures");
                None
            }
        });
        Self {
            server_pid,
            server_start,
            services: Vec::new(),
            bench_start: procfs::sample(std::process::id()).unwrap_or_default(),
            started_us: crate::body::now_us(),
        }
    }

    /// Also measures these processes (name, pid), e.g. the broker the server uses.
    pub fn with_services(mut self, services: &[(String, u32)]) -> Self {
        self.services = services
            .iter()
            .filter_map(|(name, pid)| match procfs::sample(*pid) {
                Ok(sample) => Some((name.clone(), *pid, sample)),
                Err(error) => {
                    crate::progress!("cannot read /proc/{pid} of {name} ({error})");
                    None
                }
            })
            .collect();
        self
    }

    /// The cost of the `--service-pid` processes since [`CostMeter::start`].
    pub fn services(&self, delivered: u64) -> BTreeMap<String, ServerCost> {
        let wall_s = (crate::body::now_us() - self.started_us) as f64 / 1e6;
        self.services
            .iter()
            .filter_map(|(name, pid, start)| {
                let end = procfs::sample(*pid).ok()?;
                Some((name.clone(), cost(*pid, start, &end, wall_s, delivered)))
            })
            .collect()
    }

    /// The server's resident memory at the start, in KiB.
    pub fn server_rss_at_start_kib(&self) -> Option<u64> {
        self.server_start.map(|s| s.rss_kib)
    }

    /// The server's cost and the bench's own since [`CostMeter::start`].
    pub fn finish(&self, delivered: u64) -> (Option<ServerCost>, ProcSample) {
        let wall_s = (crate::body::now_us() - self.started_us) as f64 / 1e6;
        let server = self
            .server_pid
            .zip(self.server_start)
            .and_then(|(pid, start)| {
                let end = procfs::sample(pid).ok()?;
                Some(cost(pid, &start, &end, wall_s, delivered))
            });
        let mut bench = procfs::sample(std::process::id()).unwrap_or_default();
        bench.cpu_s = round3(bench.cpu_s - self.bench_start.cpu_s);
        (server, bench)
    }
}

fn cost(pid: u32, start: &ProcSample, end: &ProcSample, wall_s: f64, delivered: u64) -> ServerCost {
    let cpu_s = round3(end.cpu_s - start.cpu_s);
    ServerCost {
        pid,
        cpu_s,
        cpu_cores: round3(cpu_s / wall_s.max(1e-9)),
        cpu_us_per_delivery: (delivered > 0).then(|| round3(cpu_s * 1e6 / delivered as f64)),
        rss_before_kib: start.rss_kib,
        rss_kib: end.rss_kib,
        rss_peak_kib: end.rss_peak_kib,
        threads: end.threads,
    }
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_has_the_promised_fields() {
        let mut report = Report {
            scenario: "group",
            ..Report::default()
        };
        report.tally.lost = 3;
        report.extra("groups", 4);
        let json = serde_json::to_value(&report).unwrap();
        for field in [
            "scenario",
            "params",
            "sent",
            "acknowledged",
            "delivered",
            "expected",
            "lost",
            "duplicates",
            "deliveries_per_sec",
            "ack_latency_us",
            "delivery_latency_us",
            "bench",
            "errors",
            "groups",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["lost"], 3);
        for percentile in ["p50", "p90", "p99", "p999", "max"] {
            assert!(json["delivery_latency_us"].get(percentile).is_some());
        }
        assert!(json.get("server").is_none());
    }

    #[test]
    fn a_meter_without_a_server_pid_reports_only_the_bench() {
        let meter = CostMeter::start(None);
        let (server, bench) = meter.finish(10);
        assert!(server.is_none());
        assert!(bench.rss_kib > 0);
    }

    #[test]
    fn a_meter_on_a_live_process_reports_its_cost() {
        let meter = CostMeter::start(Some(std::process::id()));
        let (server, _) = meter.finish(1_000);
        let server = server.expect("this process is alive");
        assert!(server.cpu_s >= 0.0);
        assert!(server.rss_kib > 0);
        assert!(server.cpu_us_per_delivery.is_some());
    }

    #[test]
    fn a_meter_reports_its_services_by_name() {
        let me = std::process::id();
        let meter = CostMeter::start(None).with_services(&[("broker".into(), me)]);
        let services = meter.services(100);
        assert_eq!(services["broker"].pid, me);
        assert!(services["broker"].cpu_us_per_delivery.is_some());
    }
}
