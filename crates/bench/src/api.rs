//! The HTTP side of the bench: signing users up, creating conversations, posting and
//! reading history, exactly as a client of `/api/v1` does (DESIGN.md §4).

use std::net::SocketAddr;
use std::time::Duration;

use chat_protocol::http::{
    AuthResponse, Conversation, CreateConversation, ErrorBody, HistoryPage, LoginRequest, Message,
    SearchPage, SendMessage, SignupRequest, User,
};
use chat_protocol::{ConversationId, MessageId, UserId};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often a request refused with 429 is retried (after its `Retry-After`).
const RATE_LIMIT_RETRIES: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {path}: {status} {code}: {message}")]
    Refused {
        method: Method,
        path: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("{method} {path}: {error}")]
    Transport {
        method: Method,
        path: String,
        error: reqwest::Error,
    },
}

/// A signed-up user and the access token that speaks for them.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub token: String,
}

/// A client of one server's `/api/v1`.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: format!("http://{addr}/api/v1"),
        })
    }

    pub async fn signup(&self, username: &str, password: &str) -> Result<Session, ApiError> {
        let request = SignupRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
        };
        self.start_session("/auth/signup", &request).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session, ApiError> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.start_session("/auth/login", &request).await
    }

    /// Sign-up and login answer alike: the user and an access token.
    async fn start_session(
        &self,
        path: &str,
        request: &impl Serialize,
    ) -> Result<Session, ApiError> {
        let answer: AuthResponse = self.call(Method::POST, path, None, Some(request)).await?;
        Ok(Session {
            user: answer.user,
            token: answer.access_token,
        })
    }

    /// Signs up `count` users named `{prefix}{index}`, `concurrency` at a time.
    pub async fn signup_many(
        &self,
        prefix: &str,
        count: usize,
        concurrency: usize,
    ) -> Result<Vec<Session>, ApiError> {
        futures::stream::iter(0..count)
            .map(|index| async move {
                self.signup(&format!("{prefix}{index}"), BENCH_PASSWORD)
                    .await
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    pub async fn create_group(
        &self,
        owner: &Session,
        title: &str,
        member_ids: Vec<UserId>,
    ) -> Result<Conversation, ApiError> {
        let request = CreateConversation::Group {
            title: title.to_owned(),
            member_ids,
        };
        self.call(
            Method::POST,
            "/conversations",
            Some(&owner.token),
            Some(&request),
        )
        .await
    }

    pub async fn create_direct(
        &self,
        owner: &Session,
        user_id: UserId,
    ) -> Result<Conversation, ApiError> {
        let request = CreateConversation::Direct { user_id };
        self.call(
            Method::POST,
            "/conversations",
            Some(&owner.token),
            Some(&request),
        )
        .await
    }

    /// One page of history, newest first, older than `before` if given.
    pub async fn history(
        &self,
        reader: &Session,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<HistoryPage, ApiError> {
        let path = match before {
            Some(before) => {
                format!("/conversations/{conversation}/messages?before={before}&limit={limit}")
            }
            None => format!("/conversations/{conversation}/messages?limit={limit}"),
        };
        self.call::<(), _>(Method::GET, &path, Some(&reader.token), None)
            .await
    }

    /// Posts one message over HTTP.
    pub async fn send(
        &self,
        sender: &Session,
        conversation: ConversationId,
        body: &str,
    ) -> Result<Message, ApiError> {
        let request = SendMessage {
            client_msg_id: uuid::Uuid::new_v4(),
            body: body.to_owned(),
            reply_to: None,
        };
        let path = format!("/conversations/{conversation}/messages");
        self.call(Method::POST, &path, Some(&sender.token), Some(&request))
            .await
    }

    /// The first page of a full-text search, in one conversation if given.
    pub async fn search(
        &self,
        reader: &Session,
        query: &str,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> Result<SearchPage, ApiError> {
        let q: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let path = match conversation {
            Some(id) => format!("/search?q={q}&conversation_id={id}&limit={limit}"),
            None => format!("/search?q={q}&limit={limit}"),
        };
        self.call::<(), _>(Method::GET, &path, Some(&reader.token), None)
            .await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let transport = |error| ApiError::Transport {
            method: method.clone(),
            path: path.to_owned(),
            error,
        };
        let mut retries = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status.is_success() {
                return response.json().await.map_err(transport);
            }
            if status == StatusCode::TOO_MANY_REQUESTS && retries < RATE_LIMIT_RETRIES {
                retries += 1;
                let wait_s = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait_s.clamp(1, 60))).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
                Ok(body) => (body.error.code.to_string(), body.error.message),
                Err(_) => (
                    "unparsed_error".to_owned(),
                    text.chars().take(200).collect(),
                ),
            };
            return Err(ApiError::Refused {
                method,
                path: path.to_owned(),
                status,
                code,
                message,
            });
        }
    }
}

/// Every bench user's password.
pub const BENCH_PASSWORD: &str = "bench-password-not-secret";
