//! What `GET /health` answers, given what happened when the shell touched each binding.
//!
//! The shell really uses every binding (a D1 query against the schema, a KV read, an R2 head, a
//! queue send); this module turns the outcomes into the response: 200 when all are fine, 503
//! naming each failing binding otherwise. Reasons are fixed phrases, never the runtime's error
//! text, because the route is public.

use serde_json::{json, Map, Value};

use crate::core::edge::response::ApiResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    D1,
    Kv,
    R2,
    Queue,
}

impl Check {
    pub const ALL: [Check; 4] = [Check::D1, Check::Kv, Check::R2, Check::Queue];

    /// The key of this check in the response.
    pub fn name(self) -> &'static str {
        match self {
            Check::D1 => "d1",
            Check::Kv => "kv",
            Check::R2 => "r2",
            Check::Queue => "queue",
        }
    }

    /// The binding this check touches, as named in wrangler.jsonc.
    pub fn binding(self) -> &'static str {
        match self {
            Check::D1 => crate::core::base::bindings::DB,
            Check::Kv => crate::core::base::bindings::CACHE,
            Check::R2 => crate::core::base::bindings::ARTIFACTS,
            Check::Queue => crate::core::base::bindings::STEPS,
        }
    }
}

/// Why a check failed, in words safe to show anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The binding is not in the Worker's environment (wrangler.jsonc or the dashboard).
    Missing,
    /// The binding exists but the operation failed.
    Failed,
    /// D1 answers but switchyard's tables are not there: migrations were not applied.
    NotMigrated,
}

impl Failure {
    fn phrase(self) -> &'static str {
        match self {
            Failure::Missing => "is not configured",
            Failure::Failed => "did not answer correctly",
            Failure::NotMigrated => "has no switchyard schema; apply the migrations",
        }
    }
}

/// The health response for the outcomes of the checks, in [`Check::ALL`] order.
pub fn report(version: &str, outcomes: &[(Check, Result<(), Failure>)]) -> ApiResponse {
    let mut checks = Map::new();
    let mut details = Vec::new();
    for (check, outcome) in outcomes {
        let verdict = match outcome {
            Ok(()) => "ok",
            Err(failure) => {
                details.push(json!({
                    "field": check.binding(),
                    "message": format!("{} binding {} {}", check.name(), check.binding(), failure.phrase()),
                }));
                "failed"
            }
        };
        checks.insert(check.name().to_string(), Value::from(verdict));
    }
    if details.is_empty() {
        return ApiResponse::json(200, &json!({"status": "ok", "version": version, "checks": checks}));
    }
    let failing: Vec<&str> = outcomes.iter().filter(|(_, o)| o.is_err()).map(|(c, _)| c.binding()).collect();
    ApiResponse::json(
        503,
        &json!({
            "status": "unavailable",
            "version": version,
            "checks": checks,
            "error": {
                "code": "binding_unavailable",
                "message": format!("failing bindings: {}", failing.join(", ")),
                "details": details,
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &ApiResponse) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn all_checks_passing_is_200_ok() {
        let outcomes: Vec<_> = Check::ALL.iter().map(|c| (*c, Ok(()))).collect();
        let response = report("1.2.3", &outcomes);
        assert_eq!(response.status, 200);
        assert_eq!(
            body(&response),
            json!({"status": "ok", "version": "1.2.3", "checks": {"d1": "ok", "kv": "ok", "r2": "ok", "queue": "ok"}})
        );
    }

    #[test]
    fn a_failing_binding_is_503_and_named() {
        let outcomes = [
            (Check::D1, Err(Failure::NotMigrated)),
            (Check::Kv, Err(Failure::Missing)),
            (Check::R2, Ok(())),
            (Check::Queue, Ok(())),
        ];
        let response = report("1.2.3", &outcomes);
        assert_eq!(response.status, 503);
        let body = body(&response);
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["checks"], json!({"d1": "failed", "kv": "failed", "r2": "ok", "queue": "ok"}));
        assert_eq!(body["error"]["code"], "binding_unavailable");
        assert_eq!(body["error"]["message"], "failing bindings: DB, CACHE");
        assert_eq!(body["error"]["details"][1]["message"], "kv binding CACHE is not configured");
    }
}
