//! The web client's static files at `/`, with `index.html` for every other path so
//! the single-page app can route. When the client has not been built, a short page
//! says how to build it (checked per request, so building it needs no restart).

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// Where the built web client is.
#[derive(Clone, Debug)]
pub struct WebDir(pub PathBuf);

pub async fn serve(State(WebDir(dir)): State<WebDir>, request: Request<Body>) -> Response {
    let index = dir.join("index.html");
    if !index.is_file() {
        return (StatusCode::OK, Html(missing_page(&dir))).into_response();
    }
    let files = ServeDir::new(&dir).fallback(ServeFile::new(index));
    match files.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(error) => match error {},
    }
}

fn missing_page(dir: &std::path::Path) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>chat</title>\
         <h1>The web client is not built</h1>\
         <p>The server is running and its API is at <code>/api/v1</code>, but no client was found in \
         <code>{}</code>.</p><p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code> \
         (or run <code>./scripts/run</code>, which does both), then reload this page.</p>",
        html_escape(&dir.display().to_string())
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
