//! PII scrubbing of message bodies for the dataset (DESIGN.md §10): what identifies
//! or exposes a person becomes a typed placeholder, and the count of each kind is
//! reported.
//!
//! | kind | placeholder | what it takes |
//! |---|---|---|
//! | URL with credentials or a token | `<URL>` | `scheme://user:pass@…`, or a query parameter named like a secret (`token`, `key`, `sig`, `password`, …) |
//! | secret | `<SECRET>` | JWT-like `eyJ….….…`, and well-known API key shapes (`sk-…`, `ghp_…`, `xox?-…`, `AKIA…`) |
//! | e-mail address | `<EMAIL>` | `local@domain.tld` |
//! | IP address | `<IP>` | IPv4 (every octet ≤ 255) and IPv6 (whatever `std::net` parses) |
//! | card number | `<CARD>` | 13–19 digits, spaces or dashes between groups, passing the Luhn check |
//! | phone number | `<PHONE>` | 7–15 digits with a leading `+`, or grouped by spaces, dashes, dots or parentheses, or 10–15 digits in a row |
//!
//! Kinds are taken in that order, each on what the earlier ones left, so a token in a
//! URL is one `<URL>`, and a card number is never also a phone number. It errs towards
//! scrubbing: a long number that could be a phone number is one.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Url,
    Secret,
    Email,
    Ip,
    Card,
    Phone,
}

impl PiiKind {
    pub const ALL: [PiiKind; 6] = [
        PiiKind::Url,
        PiiKind::Secret,
        PiiKind::Email,
        PiiKind::Ip,
        PiiKind::Card,
        PiiKind::Phone,
    ];

    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Url => "<URL>",
            PiiKind::Secret => "<SECRET>",
            PiiKind::Email => "<EMAIL>",
            PiiKind::Ip => "<IP>",
            PiiKind::Card => "<CARD>",
            PiiKind::Phone => "<PHONE>",
        }
    }

    /// The name in reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Url => "url",
            PiiKind::Secret => "secret",
            PiiKind::Email => "email",
            PiiKind::Ip => "ip",
            PiiKind::Card => "card",
            PiiKind::Phone => "phone",
        }
    }
}

/// How many of each kind were replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PiiCounts([u64; 6]);

impl PiiCounts {
    pub fn get(&self, kind: PiiKind) -> u64 {
        self.0[kind as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn add(&mut self, other: &PiiCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    fn bump(&mut self, kind: PiiKind) {
        self.0[kind as usize] += 1;
    }
}

/// A scrubbed body and what was taken out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrubbed {
    pub text: String,
    pub counts: PiiCounts,
}

/// Replaces every piece of PII in `body` by its placeholder.
pub fn scrub(body: &str) -> Scrubbed {
    let mut counts = PiiCounts::default();
    let mut text = body.to_owned();
    for kind in PiiKind::ALL {
        text = replace_kind(&text, kind, &mut counts);
    }
    Scrubbed { text, counts }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid built-in pattern")
}

static URL: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s<>]+"));
/// Query or fragment parameters whose value is a credential.
static SECRET_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)[?&#;](?:access_token|refresh_token|id_token|token|api_?key|key|secret|client_secret|password|passwd|pwd|auth|sig|signature|session|sessionid|code|x-amz-signature|x-amz-credential)=[^&#\s]+",
    )
});
static SECRET: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        // A JWT: base64url header starting `{"`, a payload, an optional signature.
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        r"|\bsk-(?:proj-|live_|test_)?[A-Za-z0-9_-]{20,}",
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
        r"|\bAKIA[0-9A-Z]{16}\b",
    ))
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b[a-z0-9._%+-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}\b",
    )
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"));
/// Candidates only: `std::net` decides.
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%[0-9a-z]+)?"));
static CARD: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d(?:[ -]?\d){12,18}\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\+\d[\d\s().-]{5,20}\d",
        r"|\(\d{1,5}\)[\s.-]?\d[\d\s.-]{4,16}\d",
        r"|\b\d{2,5}(?:[\s.-]\d{2,6}){2,5}\b",
        r"|\b\d{10,15}\b",
    ))
});

/// Dates, which have a phone number's shape: 2026-12-03, 03.12.2026, 12/03/2026.
static DATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})$"));

fn replace_kind(text: &str, kind: PiiKind, counts: &mut PiiCounts) -> String {
    let replaced = match kind {
        PiiKind::Url => URL.replace_all(text, |c: &Captures| {
            let url = &c[0];
            if has_credentials(url) || SECRET_PARAM.is_match(url) {
                counts.bump(kind);
                kind.placeholder().to_owned()
            } else {
                url.to_owned()
            }
        }),
        PiiKind::Secret => replace_every(&SECRET, text, kind, counts, |_| true),
        PiiKind::Email => replace_every(&EMAIL, text, kind, counts, |_| true),
        PiiKind::Ip => {
            let v4 = replace_every(&IPV4, text, kind, counts, |s| s.parse::<Ipv4Addr>().is_ok());
            return replace_every(&IPV6, &v4, kind, counts, is_ipv6).into_owned();
        }
        PiiKind::Card => replace_every(&CARD, text, kind, counts, |s| {
            let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
            (13..=19).contains(&digits.len()) && luhn(&digits)
        }),
        PiiKind::Phone => replace_every(&PHONE, text, kind, counts, |s| {
            let digits = s.chars().filter(char::is_ascii_digit).count();
            (7..=15).contains(&digits) && !DATE.is_match(s)
        }),
    };
    replaced.into_owned()
}

fn replace_every<'t>(
    pattern: &Regex,
    text: &'t str,
    kind: PiiKind,
    counts: &mut PiiCounts,
    accept: impl Fn(&str) -> bool,
) -> std::borrow::Cow<'t, str> {
    pattern.replace_all(text, |c: &Captures| {
        let found = &c[0];
        if accept(found) {
            counts.bump(kind);
            kind.placeholder().to_owned()
        } else {
            found.to_owned()
        }
    })
}

/// `scheme://user:password@host…`, or a user alone before `@`.
fn has_credentials(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

fn is_ipv6(candidate: &str) -> bool {
    let address = candidate.split('%').next().unwrap_or_default();
    // Two colons alone (a time like 10:30:00 is not hex-rich, but `::` is valid).
    address.matches(':').count() >= 2 && address.len() > 2 && address.parse::<Ipv6Addr>().is_ok()
}

/// The Luhn checksum of card numbers.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubbed(body: &str) -> String {
        scrub(body).text
    }

    fn count(body: &str, kind: PiiKind) -> u64 {
        scrub(body).counts.get(kind)
    }

    #[test]
    fn e_mail_addresses_become_a_placeholder() {
        for email in [
            "alice@example.com",
            "a.b+tag@mail.example.co.uk",
            "X_Y%z@sub-domain.example.org",
        ] {
            assert_eq!(
                scrubbed(&format!("write to {email} today")),
                "write to <EMAIL> today"
            );
        }
        assert_eq!(count("a@b.io and c@d.io", PiiKind::Email), 2);
        // Not addresses: a mention, a bare @, a version.
        for text in ["@alice hi", "meet @ noon", "v1.2@beta"] {
            assert_eq!(scrubbed(text), text);
        }
    }

    #[test]
    fn phone_numbers_in_their_usual_shapes_become_a_placeholder() {
        for phone in [
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "(555) 123-4567",
            "555-123-4567",
            "030 1234 5678",
            "+33612345678",
            "06.12.34.56.78",
            "5551234567",
        ] {
            assert_eq!(
                scrubbed(&format!("call {phone}!")),
                "call <PHONE>!",
                "{phone}"
            );
        }
        // Not phone numbers: short numbers, years, prices, times, dates.
        for text in [
            "room 101",
            "in 2026",
            "costs 12.50",
            "at 10:30",
            "on 2026-12-03",
            "on 03.12.2026",
            "42",
        ] {
            assert_eq!(scrubbed(text), text);
        }
    }

    #[test]
    fn card_numbers_that_pass_luhn_become_a_placeholder_and_others_do_not() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "6011111111111117",
        ] {
            let s = scrub(&format!("my card {card} ok"));
            assert_eq!(s.text, "my card <CARD> ok", "{card}");
            assert_eq!(s.counts.get(PiiKind::Card), 1);
            assert_eq!(
                s.counts.get(PiiKind::Phone),
                0,
                "a card is not also a phone"
            );
        }
        // Fails Luhn: not a card, but a long number is scrubbed as a phone at most.
        let s = scrub("order 4111111111111112");
        assert_eq!(s.counts.get(PiiKind::Card), 0);
    }

    #[test]
    fn luhn_is_the_checksum_of_card_numbers() {
        let digits = |s: &str| -> Vec<u32> { s.chars().filter_map(|c| c.to_digit(10)).collect() };
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("79927398710")));
        assert!(luhn(&digits("4111111111111111")));
    }

    #[test]
    fn ip_addresses_of_both_families_become_a_placeholder() {
        for ip in [
            "192.168.1.20",
            "8.8.8.8",
            "2001:db8::1",
            "fe80::1%eth0",
            "::1",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        ] {
            assert_eq!(
                scrubbed(&format!("from {ip} today")),
                "from <IP> today",
                "{ip}"
            );
        }
        for text in ["version 1.2.3.4567", "999.1.1.1", "at 10:30", "ratio 3:2"] {
            assert_eq!(count(text, PiiKind::Ip), 0, "{text}");
        }
    }

    #[test]
    fn urls_with_credentials_or_tokens_become_a_placeholder_and_plain_links_stay() {
        for url in [
            "https://bob:hunter2@example.com/repo.git",
            "ftp://admin@files.example.com/",
            "https://api.example.com/v1?token=abc123",
            "https://example.com/cb?state=x&access_token=ya29.a0Af",
            "https://bucket.s3.amazonaws.com/f?X-Amz-Signature=deadbeef",
            "https://example.com/reset#code=778899",
        ] {
            let s = scrub(&format!("see {url} now"));
            assert_eq!(s.text, "see <URL> now", "{url}");
            assert_eq!(
                s.counts.total(),
                1,
                "one placeholder for the whole URL: {url}"
            );
        }
        let plain = "read https://example.com/docs?page=2#top please";
        assert_eq!(scrubbed(plain), plain);
    }

    #[test]
    fn jwt_like_and_api_key_shaped_secrets_become_a_placeholder() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl";
        for secret in [
            jwt,
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "xoxb-1234567890-abcdefghij",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert_eq!(
                scrubbed(&format!("key: {secret}")),
                "key: <SECRET>",
                "{secret}"
            );
        }
        assert_eq!(scrubbed("eyJ is not a token"), "eyJ is not a token");
    }

    #[test]
    fn counts_add_up_per_kind_over_a_mixed_body() {
        let body = "mail a@b.io or c@d.io, call +1 555 123 4567, card 4111 1111 1111 1111, \
                    host 10.0.0.1, https://u:p@h.io/x and eyJhbGciOi.eyJzdWIiOi.sig";
        let s = scrub(body);
        assert_eq!(s.counts.get(PiiKind::Email), 2);
        assert_eq!(s.counts.get(PiiKind::Phone), 1);
        assert_eq!(s.counts.get(PiiKind::Card), 1);
        assert_eq!(s.counts.get(PiiKind::Ip), 1);
        assert_eq!(s.counts.get(PiiKind::Url), 1);
        assert_eq!(s.counts.get(PiiKind::Secret), 1);
        assert_eq!(s.counts.total(), 7);
        for gone in ["a@b.io", "555", "4111", "10.0.0.1", "u:p@", "eyJ"] {
            assert!(!s.text.contains(gone), "{gone} left in {}", s.text);
        }
        let mut total = PiiCounts::default();
        total.add(&s.counts);
        total.add(&s.counts);
        assert_eq!(total.total(), 14);
    }

    #[test]
    fn text_without_pii_is_unchanged_in_any_script() {
        for text in [
            "",
            "hello there",
            "Привет, как дела?",
            "你好，世界 🌍👍🏽",
            "مرحبا بالعالم",
            "emoji only 🎉🎉🎉",
            "line one\nline two\ttabbed",
        ] {
            let s = scrub(text);
            assert_eq!(s.text, text);
            assert_eq!(s.counts.total(), 0);
        }
    }

    #[test]
    fn a_very_long_body_is_scrubbed_whole() {
        let body = "a@b.io ".repeat(10_000);
        let s = scrub(&body);
        assert_eq!(s.counts.get(PiiKind::Email), 10_000);
        assert!(!s.text.contains('@'));
    }
}
