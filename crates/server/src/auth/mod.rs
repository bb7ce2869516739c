//! Authentication primitives (DESIGN.md §7): Argon2id password hashes (on their own
//! bounded pool of threads, [`passwords`]), short-lived
//! HS256 access tokens with the algorithm pinned, and opaque refresh tokens that are
//! stored only as SHA-256 hashes. The HTTP endpoints that use them are in
//! `http/auth.rs`; the refresh-token families live behind [`crate::sessions::Sessions`].

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_protocol::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod passwords;

pub use passwords::{HashError, PasswordHasher, PoolSize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// A verified access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessGrant {
    pub user: UserId,
    /// Unix seconds at which the token expires.
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid or expired access token")]
pub struct InvalidToken;

/// Issues and checks access tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user: UserId) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<AccessGrant, InvalidToken> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| InvalidToken)?;
        let user = data.claims.sub.parse().map_err(|_| InvalidToken)?;
        Ok(AccessGrant {
            user,
            expires_at: data.claims.exp,
        })
    }
}

/// A new refresh token: 256 random bits, URL-safe base64.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps instead of the token itself.
pub fn refresh_token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shortest signing secret accepted, in bytes: HS256's own key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why the signing secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading or writing the secret file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the secret file is not base64: {0}")]
    Encoding(#[from] base64::DecodeError),
    #[error(
        "the secret file {path} holds {bytes} bytes, fewer than {MIN_SECRET_BYTES}; \
         delete it to have a new one generated (which signs out everyone)"
    )]
    TooShort { path: String, bytes: usize },
}

/// Loads the signing secret from `data_dir/jwt_secret`, creating it (owner-only) on
/// first start so tokens stay valid across restarts. It is written to a temporary
/// file (mode 0600), synced, then renamed into place, so a crash while writing leaves
/// either no file (a new secret next start) or the whole one, never an empty or
/// partial secret. A file that holds fewer than [`MIN_SECRET_BYTES`] is refused.
pub fn load_or_create_secret(data_dir: &std::path::Path) -> Result<Vec<u8>, SecretError> {
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            let secret = URL_SAFE_NO_PAD.decode(existing.trim())?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort {
                    path: path.display().to_string(),
                    bytes: secret.len(),
                });
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let mut secret = [0u8; MIN_SECRET_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            write_atomically(data_dir, &path, URL_SAFE_NO_PAD.encode(secret).as_bytes())?;
            Ok(secret.to_vec())
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `contents` to `path` through a fresh owner-only temporary file in `dir`,
/// synced before the rename and the directory synced after it.
fn write_atomically(
    dir: &std::path::Path,
    path: &std::path::Path,
    contents: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = dir.join(format!(".jwt_secret.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(900),
        )
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let tokens = tokens();
        let grant = tokens.verify(&tokens.issue(UserId(42)).unwrap()).unwrap();
        assert_eq!(grant.user, UserId(42));
        assert!(grant.expires_at > jsonwebtoken::get_current_timestamp());
    }

    #[test]
    fn tampered_foreign_expired_and_unsigned_tokens_are_refused() {
        let tokens = tokens();
        let token = tokens.issue(UserId(1)).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&tampered).is_err());

        let other = Tokens::new(
            b"another secret of at least 32 bytes!",
            Duration::from_secs(900),
        );
        assert!(tokens.verify(&other.issue(UserId(1)).unwrap()).is_err());

        let now = jsonwebtoken::get_current_timestamp();
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "1".into(),
                iat: now - 100,
                exp: now - 10,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(tokens.verify(&expired).is_err());

        // alg=none: header {"alg":"none"} with the same claims and no signature.
        let claims = token.split('.').nth(1).unwrap();
        let unsigned = format!(
            "{}.{claims}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(tokens.verify(&unsigned).is_err());
        assert!(tokens.verify("garbage").is_err());
    }

    #[test]
    fn a_generated_secret_is_owner_only_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create_secret(&data).unwrap();
        assert_eq!(first.len(), MIN_SECRET_BYTES);
        assert_eq!(load_or_create_secret(&data).unwrap(), first);
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["jwt_secret"], "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("jwt_secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_empty_or_short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for contents in [
            "",
            "\n",
            &URL_SAFE_NO_PAD.encode([7u8; MIN_SECRET_BYTES - 1]),
        ] {
            std::fs::write(dir.path().join("jwt_secret"), contents).unwrap();
            let error = load_or_create_secret(dir.path()).unwrap_err();
            assert!(
                matches!(error, SecretError::TooShort { .. }),
                "{contents:?}: {error}"
            );
        }
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(refresh_token_hash(&a).len(), 64);
        assert_ne!(refresh_token_hash(&a), refresh_token_hash(&b));
    }
}
