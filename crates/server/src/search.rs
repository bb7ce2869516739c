//! Search queries (`GET /search`), read once here and turned into each engine's
//! syntax, so no user text ever reaches an FTS parser.
//!
//! A query is words and `"quoted phrases"`. A word is a run of letters and digits
//! (any script); everything else separates words, so FTS operators (`AND`, `NEAR`,
//! `*`, `^`, `:`, parentheses…) are only more words or separators. Every word
//! matches as a prefix, a phrase as consecutive words; all of them must match.
//! The engines: SQLite FTS5 ([`SearchTerms::fts5`]) and PostgreSQL `tsquery` with the
//! `simple` configuration ([`SearchTerms::tsquery`]); the matched terms are marked
//! here, the same way for both ([`SearchTerms::mark`]).

use chat_protocol::MAX_SEARCH_CHARS;
use chat_protocol::http::Marked;

/// The most words a query may hold.
const MAX_WORDS: usize = 16;

/// A query that was read: each entry is one word (a prefix) or a phrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchTerms {
    terms: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is empty: give at least one word to search for")]
    Empty,
    #[error("the query is longer than {MAX_SEARCH_CHARS} characters")]
    TooLong,
    #[error("the query has more than {MAX_WORDS} words")]
    TooManyWords,
    #[error("the query contains a NUL character")]
    Nul,
    #[error("a quote in the query is not closed")]
    UnclosedQuote,
}

/// The words of `text`, lowercased: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl SearchTerms {
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        if query.contains('\0') {
            return Err(QueryError::Nul);
        }
        if query.chars().count() > MAX_SEARCH_CHARS {
            return Err(QueryError::TooLong);
        }
        if query.matches('"').count() % 2 == 1 {
            return Err(QueryError::UnclosedQuote);
        }
        let mut terms = Vec::new();
        // Between quotes (odd pieces) is a phrase; outside, separate words.
        for (i, piece) in query.split('"').enumerate() {
            if i % 2 == 1 {
                let phrase: Vec<String> = words(piece).collect();
                if !phrase.is_empty() {
                    terms.push(phrase);
                }
            } else {
                terms.extend(words(piece).map(|w| vec![w]));
            }
        }
        let count: usize = terms.iter().map(Vec::len).sum();
        if count == 0 {
            return Err(QueryError::Empty);
        }
        if count > MAX_WORDS {
            return Err(QueryError::TooManyWords);
        }
        Ok(Self { terms })
    }

    /// An FTS5 MATCH expression: each word a quoted prefix (`"wor"*`), each phrase a
    /// quoted string, all of them required. Words hold no quotes, so quoting is safe.
    pub fn fts5(&self) -> String {
        self.terms
            .iter()
            .map(|term| match term.as_slice() {
                [word] => format!("\"{word}\"*"),
                phrase => format!("\"{}\"", phrase.join(" ")),
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// A `to_tsquery('simple', …)` text: `'wor':*` for a word, `'a' <-> 'b'` for a
    /// phrase, joined by `&`. Words hold no quotes or operators.
    pub fn tsquery(&self) -> String {
        self.terms
            .iter()
            .map(|term| match term.as_slice() {
                [word] => format!("'{word}':*"),
                phrase => format!(
                    "({})",
                    phrase
                        .iter()
                        .map(|w| format!("'{w}'"))
                        .collect::<Vec<_>>()
                        .join(" <-> ")
                ),
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }

    /// `body` cut into pieces, the words that match a term marked: a word matches a
    /// single-word term it starts with, or a word of a phrase it equals.
    pub fn mark(&self, body: &str) -> Vec<Marked> {
        let mut out: Vec<Marked> = Vec::new();
        let mut push = |text: &str, matched: bool| {
            if text.is_empty() {
                return;
            }
            match out.last_mut() {
                Some(last) if last.matched == matched => last.text.push_str(text),
                _ => out.push(Marked {
                    text: text.to_owned(),
                    matched,
                }),
            }
        };
        let mut rest = body;
        while !rest.is_empty() {
            let start = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
            push(&rest[..start], false);
            rest = &rest[start..];
            let end = rest
                .find(|c: char| !c.is_alphanumeric())
                .unwrap_or(rest.len());
            let word = &rest[..end];
            push(word, self.matches(&word.to_lowercase()));
            rest = &rest[end..];
        }
        out
    }

    fn matches(&self, word: &str) -> bool {
        self.terms.iter().any(|term| match term.as_slice() {
            [prefix] => word.starts_with(prefix.as_str()),
            phrase => phrase.iter().any(|w| w == word),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_phrases_become_quoted_terms_of_each_engine() {
        let terms = SearchTerms::parse(r#"Deploy "release notes" v2"#).unwrap();
        assert_eq!(terms.fts5(), r#""deploy"* AND "release notes" AND "v2"*"#);
        assert_eq!(
            terms.tsquery(),
            "'deploy':* & ('release' <-> 'notes') & 'v2':*"
        );
    }

    #[test]
    fn operators_and_punctuation_are_only_separators_or_words() {
        for hostile in [
            "a AND b",
            "NEAR(a b)",
            "a* ^b c:d",
            "'; DROP TABLE messages; --",
            "(a OR b) NOT c",
            "a & b | !c <-> d",
        ] {
            let terms = SearchTerms::parse(hostile).unwrap();
            for expression in [terms.fts5(), terms.tsquery()] {
                // Every word sits inside quotes: nothing the engine could take as syntax.
                assert!(!expression.contains(';'), "{hostile}: {expression}");
            }
        }
        assert_eq!(
            SearchTerms::parse("NEAR(a b)").unwrap().fts5(),
            r#""near"* AND "a"* AND "b"*"#
        );
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        assert_eq!(SearchTerms::parse(""), Err(QueryError::Empty));
        assert_eq!(SearchTerms::parse(" *:^ () "), Err(QueryError::Empty));
        assert_eq!(SearchTerms::parse(r#""""#), Err(QueryError::Empty));
        assert_eq!(SearchTerms::parse("a\0b"), Err(QueryError::Nul));
        assert_eq!(
            SearchTerms::parse(r#"say "hi"#),
            Err(QueryError::UnclosedQuote)
        );
        assert_eq!(
            SearchTerms::parse(&"a".repeat(MAX_SEARCH_CHARS + 1)),
            Err(QueryError::TooLong)
        );
        assert!(SearchTerms::parse(&"é".repeat(MAX_SEARCH_CHARS)).is_ok());
        assert_eq!(
            SearchTerms::parse(&"a ".repeat(MAX_WORDS + 1)),
            Err(QueryError::TooManyWords)
        );
    }

    #[test]
    fn matched_words_are_marked_and_the_pieces_are_the_body() {
        let terms = SearchTerms::parse("dep \"green build\"").unwrap();
        let body = "Deployed the GREEN build, then dependencies.";
        let marked = terms.mark(body);
        let text: String = marked.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(text, body);
        let hits: Vec<&str> = marked
            .iter()
            .filter(|m| m.matched)
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(hits, ["Deployed", "GREEN", "build", "dependencies"]);
        // Other scripts are words too.
        let cyrillic = SearchTerms::parse("прив").unwrap().mark("Привет, мир");
        assert_eq!(cyrillic[0].text, "Привет");
        assert!(cyrillic[0].matched);
    }
}
