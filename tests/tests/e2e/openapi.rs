//! The OpenAPI document against the real server: it names every route of the route table
//! (`loyalty_core::api::paths`) with exactly the methods the server answers, is OpenAPI 3.1, and
//! is what `loyalty openapi` prints. (scripts/schemathesis.sh checks the answers against it.)

use std::collections::BTreeSet;

use loyalty_core::api::paths;
use loyalty_tests::{ServerProcess, loyalty_bin};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn fetch_document(url: &str) -> Value {
    let response = reqwest::get(format!("{url}{}", paths::OPENAPI))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "no credentials are needed");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// Whether the server serves `method` on `path`: anything but axum's `405` (a path it serves
/// under other methods) and our fallback's `404` (a path it does not serve at all).
async fn served(http: &reqwest::Client, url: &str, method: &str, path: &str) -> bool {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let response = http
        .request(method, format!("{url}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let fallback = status == 404 && body.contains("no such endpoint");
    status != 405 && !fallback
}

#[tokio::test]
async fn the_document_names_every_route_with_the_methods_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    // Probes go without credentials; unlimited failures keep them from turning into 429s.
    let server = ServerProcess::start_with_args(
        &dir.path().join("s.db"),
        "127.0.0.1:0",
        &["--auth-failures-per-minute", "0"],
    );
    let document = fetch_document(&server.url).await;
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "OpenAPI {version}");

    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let table: BTreeSet<&str> = paths::ALL.iter().copied().collect();
    assert_eq!(
        documented, table,
        "the document's paths are the route table"
    );

    let http = reqwest::Client::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        let holes = template.matches('{').count();
        let path = paths::fill(template, &vec!["x"; holes]);
        for method in METHODS {
            let in_document = item.get(method).is_some();
            assert_eq!(
                served(&http, &server.url, method, &path).await,
                in_document,
                "{method} {template}: served and documented disagree"
            );
        }
    }
    // The probe tells a path the server does not serve.
    assert!(!served(&http, &server.url, "get", "/v1/no-such-route").await);
}

#[tokio::test]
async fn every_operation_is_described_with_its_credentials_and_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("s.db"), "127.0.0.1:0");
    let document = fetch_document(&server.url).await;
    let schemes: BTreeSet<&str> = document["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        schemes,
        BTreeSet::from(["device", "metrics", "operator", "till"])
    );
    let codes = document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap();
    assert!(codes.contains(&Value::from("unauthorized")), "{codes:?}");

    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {template}");
            let scheme = operation["security"][0]
                .as_object()
                .and_then(|s| s.keys().next().cloned());
            let expected = if template.starts_with("/v1/admin/") {
                Some("operator")
            } else if template.starts_with("/v1/till/") {
                Some("till")
            } else if template.starts_with("/v1/members/") {
                Some("device")
            } else if template == paths::METRICS {
                Some("metrics")
            } else {
                None
            };
            assert_eq!(scheme.as_deref(), expected, "{at}: credentials");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success answer"
            );
            if expected.is_some() {
                let refused = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(refused, "#/components/schemas/ErrorBody", "{at}");
            }
            // The API's routes are under the request limits (`503 overloaded`); /metrics is not.
            if template.starts_with("/v1/") {
                assert!(
                    responses["503"]["headers"]["Retry-After"].is_object(),
                    "{at}"
                );
            }
        }
    }
}

#[tokio::test]
async fn loyalty_openapi_prints_the_served_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("s.db"), "127.0.0.1:0");
    let served = fetch_document(&server.url).await;
    let output = std::process::Command::new(loyalty_bin())
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, served);
}
