//! The server's OpenAPI document as a contract every test checks: each reply a test
//! gets through [`crate::api::Api`] must have a status its operation documents, and
//! an error reply's `error.code` must be one that status's description names. So the
//! whole integration suite, with its error paths (bad input, outsiders, conflicts,
//! rate limits, a dependency down), fails when a handler answers something its
//! operation does not document.
//!
//! The document is read from the server under test (`GET /api/v1/openapi.json`),
//! once per server, so the check sees exactly what clients are told.

use std::collections::BTreeMap;

use serde_json::Value;

/// The operations of an OpenAPI document, by method and path template.
#[derive(Debug)]
pub struct Contract {
    operations: Vec<Operation>,
}

#[derive(Debug)]
struct Operation {
    method: String,
    /// The path's segments; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    template: String,
    /// Status (`"404"`, `"4XX"`, `"default"`) → the response's description.
    responses: BTreeMap<String, String>,
}

impl Contract {
    /// Reads the operations of a document; paths are prefixed with the first
    /// server's URL (`/api/v1`), as requests see them.
    pub fn from_document(doc: &Value) -> Contract {
        let base = doc
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_end_matches('/');
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let template = format!("{base}{path}");
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                operations.push(Operation {
                    method: method.to_uppercase(),
                    segments: segments(&template)
                        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                        .collect(),
                    template: template.clone(),
                    responses: responses
                        .iter()
                        .map(|(status, response)| {
                            let description = response["description"].as_str().unwrap_or_default();
                            (status.clone(), description.to_owned())
                        })
                        .collect(),
                });
            }
        }
        Contract { operations }
    }

    /// Whether this reply keeps the contract. A request that names no operation
    /// (an unknown path, a wrong method) is not an operation's to document.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &str) -> Result<(), String> {
        let Some(operation) = self.operation(method, path) else {
            return Ok(());
        };
        let status_text = status.to_string();
        let class = format!("{}XX", status / 100);
        let description = [status_text.as_str(), class.as_str(), "default"]
            .into_iter()
            .find_map(|key| operation.responses.get(key))
            .ok_or_else(|| {
                format!(
                    "{method} {path} answered {status}, which `{method} {}` does not document (it documents {:?}); body: {body}",
                    operation.template,
                    operation.responses.keys().collect::<Vec<_>>()
                )
            })?;
        if status >= 400 {
            let code = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.pointer("/error/code")?.as_str().map(str::to_owned));
            if let Some(code) = code
                && !description.contains(&format!("`{code}`"))
            {
                return Err(format!(
                    "{method} {path} answered {status} `{code}`, which the description of {status} of `{method} {}` does not name: {description:?}",
                    operation.template
                ));
            }
        }
        Ok(())
    }

    /// The operation a request is for: the template that matches with the most
    /// literal segments (`/messages/{id}` before `/{a}/{b}`).
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let method = if method == "HEAD" { "GET" } else { method };
        let wanted: Vec<&str> = segments(path).collect();
        self.operations
            .iter()
            .filter(|op| op.method == method && op.segments.len() == wanted.len())
            .filter(|op| {
                op.segments
                    .iter()
                    .zip(&wanted)
                    .all(|(template, have)| template.as_deref().is_none_or(|t| t == *have))
            })
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::from_document(&serde_json::json!({
            "servers": [{"url": "/api/v1"}],
            "paths": {
                "/things/{id}": {
                    "get": {"responses": {
                        "200": {"description": "the thing"},
                        "404": {"description": "- `not_found`: no such thing"}
                    }}
                },
                "/things/mine": {
                    "get": {"responses": {"200": {"description": "mine"}}}
                }
            }
        }))
    }

    #[test]
    fn a_documented_status_and_code_keep_the_contract() {
        let c = contract();
        assert_eq!(c.check("GET", "/api/v1/things/5", 200, "{}"), Ok(()));
        assert_eq!(
            c.check(
                "GET",
                "/api/v1/things/5?x=1",
                404,
                r#"{"error":{"code":"not_found","message":"x"}}"#
            ),
            Ok(())
        );
    }

    #[test]
    fn an_undocumented_status_or_code_breaks_it() {
        let c = contract();
        let status = c.check("GET", "/api/v1/things/5", 500, "oops").unwrap_err();
        assert!(status.contains("does not document"), "{status}");
        let code = c
            .check(
                "GET",
                "/api/v1/things/5",
                404,
                r#"{"error":{"code":"gone","message":"x"}}"#,
            )
            .unwrap_err();
        assert!(code.contains("`gone`"), "{code}");
        // The literal path wins over the template.
        assert!(c.check("GET", "/api/v1/things/mine", 404, "").is_err());
    }

    #[test]
    fn requests_for_no_operation_are_not_its_business() {
        let c = contract();
        assert_eq!(c.check("DELETE", "/api/v1/things/5", 405, ""), Ok(()));
        assert_eq!(c.check("GET", "/api/v1/nothing", 404, ""), Ok(()));
    }
}
