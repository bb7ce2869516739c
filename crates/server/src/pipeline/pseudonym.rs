//! Pseudonyms for the dataset (DESIGN.md §10): HMAC-SHA256 of an id under a secret
//! key from configuration (`CHAT_DATASET_KEY`). The same id gets the same pseudonym in
//! every file written with the same key, so conversations and authors can be followed
//! across the table; without the key a pseudonym cannot be turned back into an id, nor
//! an id into its pseudonym. Each kind of id has its own domain, so a user and a
//! conversation with the same number get unrelated pseudonyms.
//!
//! The key's id (an HMAC of a fixed label, so it reveals nothing of the key) is stored
//! beside every pseudonym: a table written across a key rotation says which rows
//! belong together.
//!
//! Pseudonymous data is still personal data: whoever holds the key, or enough context,
//! can re-identify people. The key must be kept like a password.

use chat_protocol::{ConversationId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest key accepted: as long as the HMAC's output.
pub const MIN_KEY_BYTES: usize = 32;

/// Bytes of the HMAC kept in a pseudonym: 128 bits, far beyond any collision among
/// the users or conversations of one deployment.
const PSEUDONYM_BYTES: usize = 16;
/// Bytes of the HMAC kept in a key id.
const KEY_ID_BYTES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "CHAT_DATASET_KEY must be at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -base64 48`)"
    )]
    TooShort,
}

/// Makes the pseudonyms of one key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
    key_id: String,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pseudonymizer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| KeyError::TooShort)?;
        let key_id = hex(&digest(&mac, b"chat.dataset.key-id")[..KEY_ID_BYTES]);
        Ok(Self { mac, key_id })
    }

    /// Identifies the key without revealing it: 16 hex digits.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// An author's or a mentioned user's pseudonym: `u` and 32 hex digits.
    pub fn user(&self, id: UserId) -> String {
        self.pseudonym('u', b"user", id.0)
    }

    /// A conversation's pseudonym: `c` and 32 hex digits.
    pub fn conversation(&self, id: ConversationId) -> String {
        self.pseudonym('c', b"conversation", id.0)
    }

    fn pseudonym(&self, prefix: char, domain: &[u8], id: i64) -> String {
        let mut input = Vec::with_capacity(domain.len() + 9);
        input.extend_from_slice(domain);
        input.push(b':');
        input.extend_from_slice(&id.to_be_bytes());
        let mut out = String::with_capacity(1 + 2 * PSEUDONYM_BYTES);
        out.push(prefix);
        out.push_str(&hex(&digest(&self.mac, &input)[..PSEUDONYM_BYTES]));
        out
    }
}

fn digest(mac: &Hmac<Sha256>, input: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(input);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-test-key";

    #[test]
    fn a_pseudonym_is_stable_for_one_key_and_unrelated_under_another() {
        let a = Pseudonymizer::new(KEY).unwrap();
        let again = Pseudonymizer::new(KEY).unwrap();
        let other = Pseudonymizer::new(b"another key, long enough: 0123456789abcdef").unwrap();
        assert_eq!(a.user(UserId(7)), again.user(UserId(7)));
        assert_ne!(a.user(UserId(7)), other.user(UserId(7)));
        assert_ne!(a.user(UserId(7)), a.user(UserId(8)));
        assert_eq!(a.key_id(), again.key_id());
        assert_ne!(a.key_id(), other.key_id());
    }

    #[test]
    fn users_and_conversations_with_the_same_number_get_unrelated_pseudonyms() {
        let p = Pseudonymizer::new(KEY).unwrap();
        let user = p.user(UserId(42));
        let conversation = p.conversation(ConversationId(42));
        assert_ne!(user[1..], conversation[1..]);
        assert!(user.starts_with('u') && conversation.starts_with('c'));
        assert_eq!(user.len(), 33);
        assert!(user[1..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn neither_the_id_nor_the_key_shows_in_a_pseudonym_or_the_debug_output() {
        let p = Pseudonymizer::new(KEY).unwrap();
        let pseudonym = p.user(UserId(1_234_567));
        assert!(!pseudonym.contains("1234567"));
        let debug = format!("{p:?}");
        assert!(!debug.contains("0123456789abcdef0123456789abcdef"));
        assert!(debug.contains(p.key_id()));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert_eq!(
            Pseudonymizer::new(b"short").unwrap_err(),
            KeyError::TooShort
        );
        assert!(Pseudonymizer::new(&[0u8; MIN_KEY_BYTES]).is_ok());
        assert!(Pseudonymizer::new(&[0u8; MIN_KEY_BYTES - 1]).is_err());
    }

    #[test]
    fn the_pseudonym_is_hmac_sha256_of_the_domain_and_the_id() {
        // The documented format, so another tool holding the key can compute it:
        // HMAC-SHA256 of "user:" ‖ id (big-endian i64), first 16 bytes in hex.
        let p = Pseudonymizer::new(KEY).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
        mac.update(b"user:");
        mac.update(&5i64.to_be_bytes());
        let expected = format!("u{}", hex(&mac.finalize().into_bytes()[..16]));
        assert_eq!(p.user(UserId(5)), expected);
    }
}
