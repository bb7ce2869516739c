//! `search`: one conversation filled with `messages` messages whose bodies carry
//! words of a synthetic vocabulary (a few common, most rare, as in real text), then
//! `readers` concurrent searchers asking `GET /search` for the first page of a
//! query, again and again: a common word, a rare word, two words, a prefix or a
//! phrase. Every answer is checked: newest first, and every hit holds the query's
//! words.

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use chat_protocol::ConversationId;
use chat_protocol::http::SearchPage;
use tokio::time::Instant;

use super::history::{fill, report_fill, wait_until_readable};
use super::{Bench, Jitter};
use crate::api::{Api, Session};
use crate::body::now_us;
use crate::cli::SearchArgs;
use crate::report::{CostMeter, Report, round3};
use crate::stats::{self, Metric};

/// The vocabulary: `w0` … `w{VOCABULARY - 1}` spelled as pronounceable words, each
/// message taking [`WORDS_PER_MESSAGE`] of them with a skewed choice.
const VOCABULARY: u64 = 5_000;
const WORDS_PER_MESSAGE: usize = 6;
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ba", "de", "fu", "go", "hi", "ju", "pe", "zo",
];

/// The word numbered `n`: its base-16 digits as syllables (`w0` is "ka").
fn word(mut n: u64, out: &mut String) {
    loop {
        out.push_str(SYLLABLES[(n % 16) as usize]);
        n /= 16;
        if n == 0 {
            break;
        }
    }
}

/// A word number with a skew towards small numbers (the square of a uniform draw):
/// with six draws per message, word 0 is in about one message in twelve, word 4,999
/// in about one in 1,700.
fn skewed(jitter: &mut Jitter) -> u64 {
    let u = jitter.unit();
    ((u * u) * VOCABULARY as f64) as u64 % VOCABULARY
}

/// The words of message `seq`, deterministic so the bench could recompute them.
fn words_of(seq: u64, out: &mut String) {
    let mut jitter = Jitter::new(seq.wrapping_add(0x5EA2C));
    for _ in 0..WORDS_PER_MESSAGE {
        out.push(' ');
        word(skewed(&mut jitter), out);
    }
}

/// Posts a marker after the fill and waits until search finds it: the index follows
/// the log in order, so then it holds every filled message too.
async fn wait_until_indexed(
    api: &Api,
    users: &[Session],
    conversation: ConversationId,
) -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_secs(120);
    let marker = format!("zzmarker{}", now_us());
    let sent = api.send(&users[0], conversation, &marker).await?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let page = api
            .search(&users[1], &marker, Some(conversation), 1)
            .await?;
        if page
            .results
            .first()
            .is_some_and(|hit| hit.message.id == sent.id)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "search still lacks message {} after {TIMEOUT:?}",
            sent.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One query a searcher asks, and the words each hit must contain (as prefixes).
fn query(jitter: &mut Jitter) -> (String, Vec<String>) {
    let mut one = String::new();
    let mut two = String::new();
    match jitter.next_u64() % 5 {
        // A common word: many hits, only the newest page is read.
        0 => word(jitter.next_u64() % 8, &mut one),
        // A rare word: few hits spread over the whole history.
        1 => word(
            VOCABULARY / 2 + jitter.next_u64() % (VOCABULARY / 2),
            &mut one,
        ),
        // Two words, both required.
        2 => {
            word(skewed(jitter), &mut one);
            word(skewed(jitter), &mut two);
        }
        // A prefix of a common word.
        3 => {
            word(16 + jitter.next_u64() % 240, &mut one);
            one.truncate(3);
        }
        // A phrase of two words.
        _ => {
            word(skewed(jitter), &mut one);
            word(skewed(jitter), &mut two);
            let phrase = format!("\"{one} {two}\"");
            return (phrase, vec![one, two]);
        }
    }
    let words: Vec<String> = [one, two].into_iter().filter(|w| !w.is_empty()).collect();
    (words.join(" "), words)
}

pub async fn run(bench: &Bench, args: &SearchArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.messages >= 1 && args.readers >= 1,
        "--messages and --readers must be at least 1"
    );
    ensure!(
        (1..=100).contains(&args.limit),
        "--limit must be between 1 and 100"
    );
    let users = bench.signup("s", 2).await?;
    let conversation = bench
        .api
        .create_group(&users[0], "bench search", vec![users[1].user.id])
        .await?
        .id;
    let words: &(dyn Fn(u64, &mut String) + Sync) = &words_of;
    let filled = fill(
        bench,
        &users[0],
        conversation,
        args.messages,
        args.fill_window,
        Some(words),
    )
    .await?;
    report_fill(report, &filled);
    let lag_started = Instant::now();
    wait_until_readable(&bench.api, &users[1], conversation, filled.newest_id).await?;
    report.extra("persist_lag_ms", lag_started.elapsed().as_millis() as u64);
    wait_until_indexed(&bench.api, &users, conversation).await?;
    report.extra("index_lag_ms", lag_started.elapsed().as_millis() as u64);
    let fill_latencies = stats::take();

    let meter = CostMeter::start(bench.common.server_pid).with_services(&bench.common.service_pids);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let searchers: Vec<_> = (0..args.readers)
        .map(|index| {
            let api = bench.api.clone();
            let reader = Arc::new(users[index % users.len()].clone());
            let limit = args.limit;
            tokio::spawn(async move {
                search_until(&api, &reader, conversation, limit, index as u64, deadline).await
            })
        })
        .collect();
    let mut total = Searching::default();
    for searcher in searchers {
        total.add(searcher.await?);
    }
    let secs = started.elapsed().as_secs_f64();
    let (server, bench_cost) = meter.finish(total.searches);
    report.services = meter.services(total.searches);
    report.duration_s = round3(secs);
    let mut latencies = stats::take();
    latencies.merge_metric(&fill_latencies, Metric::Ack);
    latencies.merge_metric(&fill_latencies, Metric::Connect);
    report.set_latencies(&latencies);
    if let Some(server) = &server {
        report.extra(
            "server_cpu_us_per_search",
            round3(server.cpu_s * 1e6 / total.searches.max(1) as f64),
        );
    }
    report.server = server;
    report.bench = bench_cost;
    report.tally.out_of_order = total.misordered;
    report.tally.unreadable = total.wrong_hits;
    report.extra("history_messages", filled.outbox.acked());
    report.extra("readers", args.readers);
    report.extra("searches", total.searches);
    report.extra(
        "searches_per_sec",
        (total.searches as f64 / secs.max(1e-9)).round(),
    );
    report.extra(
        "mean_hits_per_page",
        round3(total.hits as f64 / total.searches.max(1) as f64),
    );
    report.extra("empty_pages", total.empty);
    for (code, count) in total.errors {
        *report.errors.entry(code).or_default() += count;
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Searching {
    searches: u64,
    hits: u64,
    empty: u64,
    /// Pages not newest first.
    misordered: u64,
    /// Hits without one of the query's words.
    wrong_hits: u64,
    errors: std::collections::BTreeMap<String, u64>,
}

impl Searching {
    fn add(&mut self, other: Searching) {
        self.searches += other.searches;
        self.hits += other.hits;
        self.empty += other.empty;
        self.misordered += other.misordered;
        self.wrong_hits += other.wrong_hits;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }

    fn check(&mut self, page: &SearchPage, words: &[String]) {
        self.searches += 1;
        self.hits += page.results.len() as u64;
        self.empty += u64::from(page.results.is_empty());
        let ids: Vec<_> = page.results.iter().map(|hit| hit.message.id).collect();
        self.misordered += u64::from(ids.windows(2).any(|pair| pair[0] <= pair[1]));
        for hit in &page.results {
            let body = hit.message.body.to_lowercase();
            let has_all = words
                .iter()
                .all(|w| body.split(' ').any(|token| token.starts_with(w.as_str())));
            self.wrong_hits += u64::from(!has_all);
        }
    }
}

async fn search_until(
    api: &Api,
    reader: &Session,
    conversation: ConversationId,
    limit: u32,
    seed: u64,
    deadline: Instant,
) -> Searching {
    let mut searching = Searching::default();
    let mut jitter = Jitter::new(seed.wrapping_mul(31).wrapping_add(7));
    while Instant::now() < deadline {
        let (query, words) = query(&mut jitter);
        let began_us = now_us();
        match api.search(reader, &query, Some(conversation), limit).await {
            Ok(page) => {
                stats::record(Metric::Request, now_us() - began_us);
                searching.check(&page, &words);
            }
            Err(error) => {
                *searching
                    .errors
                    .entry(format!("search: {error}"))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    searching
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letters_only_and_queries_name_their_words() {
        let mut body = String::new();
        words_of(42, &mut body);
        assert_eq!(body.split_whitespace().count(), WORDS_PER_MESSAGE);
        assert!(body.chars().all(|c| c == ' ' || c.is_ascii_lowercase()));
        let mut jitter = Jitter::new(1);
        for _ in 0..100 {
            let (query, words) = query(&mut jitter);
            assert!(!words.is_empty() && query.len() <= 200);
            for word in &words {
                assert!(query.contains(word.as_str()), "{query} / {word}");
            }
        }
    }
}
