//! The OpenAPI 3.1 document, `openapi.json` at the repository root, compiled into the Worker
//! and served as is at `GET /openapi.json`.
//!
//! The document is written by hand, next to the code; the tests below keep it and the route
//! table describing the same API.

/// The document, byte for byte as in the repository.
pub const DOCUMENT: &str = include_str!("../../../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::edge::routes::{Access, ROUTES};
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON")
    }

    const OPERATIONS: [&str; 8] = ["get", "head", "post", "put", "patch", "delete", "options", "trace"];

    #[test]
    fn the_document_is_openapi_3_1_with_the_crate_version() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_routed_path_and_method_is_in_the_document() {
        let doc = document();
        for route in ROUTES {
            let operation = &doc["paths"][route.pattern][route.method.openapi_key()];
            assert!(
                operation.is_object(),
                "{} {} is routed but missing from openapi.json",
                route.method.as_str(),
                route.pattern
            );
            let public = operation["security"].as_array().is_some_and(|s| s.is_empty());
            assert_eq!(
                public,
                route.access == Access::Public,
                "{} {}: security in the document disagrees with the route table",
                route.method.as_str(),
                route.pattern
            );
        }
    }

    #[test]
    fn the_document_describes_no_route_that_does_not_exist() {
        let doc = document();
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().map(|r| (r.pattern.to_string(), r.method.openapi_key().to_string())).collect();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for key in item.as_object().expect("path item").keys().filter(|k| OPERATIONS.contains(&k.as_str())) {
                assert!(routed.contains(&(path.clone(), key.clone())), "{key} {path} is documented but not routed");
            }
        }
    }

    #[test]
    fn every_reference_points_at_something_that_exists() {
        fn walk(doc: &Value, node: &Value) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.strip_prefix('#').expect("local references only");
                        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                    }
                    map.values().for_each(|v| walk(doc, v));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, &doc);
    }

    #[test]
    fn every_error_code_the_api_can_send_is_listed() {
        use crate::core::edge::error::ApiError;
        use crate::core::edge::response::Method;
        let doc = document();
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"]
            .as_array()
            .expect("code enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let samples = [
            ApiError::MalformedJson { line: 1, column: 1, message: String::new() },
            ApiError::BadRequest { message: String::new(), details: vec![] },
            ApiError::Unauthorized { message: String::new() },
            ApiError::OriginNotAllowed { origin: String::new() },
            ApiError::not_found_route(),
            ApiError::MethodNotAllowed { allow: vec![Method::Get] },
            ApiError::PayloadTooLarge { limit_bytes: 1 },
            ApiError::UnsupportedMediaType { expected: "application/json" },
            ApiError::NotAcceptable { offered: vec!["text/markdown"] },
            ApiError::Conflict { message: String::new() },
            ApiError::Forbidden { message: String::new() },
            ApiError::StaleLease { message: String::new() },
            ApiError::Cancelled { message: String::new() },
            ApiError::Invalid { details: vec![] },
            ApiError::InvalidWorkflow { details: vec![] },
            ApiError::Busy { retry_after_seconds: 1 },
            ApiError::TooManyRequests { message: String::new(), retry_after_seconds: 10 },
            ApiError::Internal { request_id: String::new() },
        ];
        for error in samples {
            assert!(listed.contains(&error.code()), "{} is not in the document's error codes", error.code());
        }
        assert!(listed.contains(&"binding_unavailable"));
    }
}
