//! What answers when no route does. Under `/api/` a client called something that is
//! not there (a typo, an endpoint of a newer server): it gets a JSON 404, or a 405
//! with `Allow` when only the method is wrong, never the web client's HTML page with
//! a 200, which would read as success. Every other path belongs to the single-page
//! app, which routes in the browser.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, Uri};
use axum::response::{IntoResponse, Response};

use super::web::{self, WebDir};
use crate::error::AppError;

/// The router's fallback: a JSON 404 under `/api/`, the web client elsewhere.
pub async fn not_found_or_web_client(state: State<WebDir>, request: Request<Body>) -> Response {
    if is_api_path(request.uri().path()) {
        return AppError::NoSuchEndpoint(request.uri().path().to_owned()).into_response();
    }
    web::serve(state, request).await
}

/// A known path with a method it does not have. axum adds the `Allow` header.
pub async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_those_under_api_only() {
        for api in ["/api", "/api/", "/api/v1/nope", "/api/v2/users"] {
            assert!(is_api_path(api), "{api}");
        }
        for web in ["/", "/apiary", "/conversations/5", "/assets/app.js"] {
            assert!(!is_api_path(web), "{web}");
        }
    }
}
