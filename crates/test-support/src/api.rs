//! HTTP to the server as a browser or app would speak it: a client with its own
//! cookie jar (so refresh cookies work) and an optional bearer token, and replies kept
//! whole (status, headers, body) so a failing assertion can show what came back.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use serde::Serialize;
use serde::de::DeserializeOwned;

use chat_protocol::http::ErrorBody;

use crate::contract::Contract;
use crate::server::Endpoint;

/// An HTTP answer, kept whole so a failing assertion can show it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub what: String,
}

impl Reply {
    /// Asserts the status and decodes the body.
    #[track_caller]
    pub fn expect<T: DeserializeOwned>(&self, status: StatusCode) -> T {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {} with body {}",
            self.what, self.status, self.text
        );
        self.json()
    }

    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{}: cannot decode {} body as {}: {e}\n{}",
                self.what,
                self.status,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// Asserts a 2xx status.
    #[track_caller]
    pub fn expect_success(&self) {
        assert!(
            self.status.is_success(),
            "{}: expected success, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
    }

    /// Asserts an error reply with this status and `error.code`.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status, status,
            "{}: expected {status} `{code}`, got {} with body {}",
            self.what, self.status, self.text
        );
        let body: ErrorBody = self.json();
        assert_eq!(
            body.error.code.to_string(),
            code,
            "{}: wrong error code in {}",
            self.what,
            self.text
        );
        assert!(
            !body.error.message.is_empty(),
            "{}: the error should say what was wrong",
            self.what
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client with its own cookie jar and, optionally, a bearer token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    jar: Arc<Jar>,
    pub(crate) endpoint: Endpoint,
    token: Option<String>,
}

impl Api {
    pub(crate) fn new(endpoint: Endpoint, token: Option<String>) -> Api {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build the HTTP client");
        Api {
            http,
            jar,
            endpoint,
            token,
        }
    }

    /// The same client (same cookie jar) with another bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The value of the refresh cookie the jar would send to `/api/v1/auth/refresh`.
    pub fn refresh_cookie(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.endpoint.api("/auth/refresh")).unwrap();
        let header = self.jar.cookies(&url)?;
        let header = header.to_str().ok()?.to_owned();
        header.split("; ").find_map(|pair| {
            pair.strip_prefix(&format!("{}=", chat_protocol::REFRESH_COOKIE))
                .map(str::to_owned)
        })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.endpoint.api(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends the request and checks the reply against the server's OpenAPI
    /// document ([`crate::contract`]): a status or error code the operation does
    /// not document fails the test.
    pub async fn send(&self, what: String, builder: reqwest::RequestBuilder) -> Reply {
        let (client, request) = builder.build_split();
        let request = request.unwrap_or_else(|e| panic!("{what}: {e}"));
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let response = client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if let Some(contract) = self.contract().await
            && let Err(broken) = contract.check(&method, &path, status.as_u16(), &text)
        {
            panic!("{what}: the reply breaks the OpenAPI document: {broken}");
        }
        Reply {
            status,
            headers,
            text,
            what,
        }
    }

    /// The server's OpenAPI document, read once per server.
    async fn contract(&self) -> Option<Arc<Contract>> {
        if let Some(contract) = self.endpoint.contract.get() {
            return Some(contract.clone());
        }
        let url = self.endpoint.api("/openapi.json");
        let document = async {
            let response = self.http.get(&url).send().await.ok()?;
            response.json::<serde_json::Value>().await.ok()
        }
        .await;
        // A server that is down right now (a test killed it) is asked again later.
        let contract = Arc::new(Contract::from_document(&document?));
        Some(self.endpoint.contract.get_or_init(|| contract).clone())
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(
            format!("GET {path}"),
            self.request(reqwest::Method::GET, path),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(
            format!("POST {path}"),
            self.request(reqwest::Method::POST, path).json(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(
            format!("PATCH {path}"),
            self.request(reqwest::Method::PATCH, path).json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(
            format!("DELETE {path}"),
            self.request(reqwest::Method::DELETE, path),
        )
        .await
    }

    /// `POST /auth/refresh` with the CSRF header and this jar's cookie.
    pub async fn refresh(&self) -> Reply {
        self.send(
            "POST /auth/refresh".into(),
            self.request(reqwest::Method::POST, "/auth/refresh")
                .header(chat_protocol::CSRF_HEADER, "1"),
        )
        .await
    }

    /// `POST /auth/refresh` with exactly this refresh token and no jar.
    pub async fn refresh_with_cookie(&self, refresh_token: &str) -> Reply {
        let bare = reqwest::Client::new();
        self.send(
            "POST /auth/refresh (explicit cookie)".into(),
            bare.post(self.endpoint.api("/auth/refresh"))
                .header(chat_protocol::CSRF_HEADER, "1")
                .header(
                    reqwest::header::COOKIE,
                    format!("{}={refresh_token}", chat_protocol::REFRESH_COOKIE),
                ),
        )
        .await
    }
}
