//! The dataset pipeline (DESIGN.md §10): from the conversation log to consented,
//! pseudonymous training data. Its building blocks so far: [`pseudonym`] (the HMAC
//! pseudonyms of users and conversations) and [`scrub`] (PII placeholders in bodies).

pub mod pseudonym;
pub mod scrub;
