//! The route table: every path the Worker answers, its methods, and who may call it.
//!
//! This table is the single list of routes. The shell dispatches on [`RouteId`]; a test checks
//! that every entry is described in `openapi.json` and that the document describes nothing else.

use crate::core::edge::error::ApiError;
use crate::core::edge::response::Method;

/// What a route needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials: health checks and the API description.
    Public,
    /// An admin bearer token.
    Admin,
    /// An admin token or an agent's own token; the handler checks what the agent may touch.
    Agent,
}

/// The handler a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Health,
    OpenApi,
    Whoami,
    ListSystemEvents,
    CreateProbe,
    ListAgents,
    CreateAgent,
    ImportAgent,
    SelectAgent,
    GetAgent,
    UpdateAgent,
    DeleteAgent,
    RotateAgentToken,
    RotateWebhookSecret,
    ListWorkflows,
    CreateWorkflow,
    GetWorkflow,
    GetWorkflowVersion,
    Analyze,
    SubmitTask,
    ListTasks,
    GetTask,
    ListTaskEvents,
    ListTaskLogs,
    GetTaskLog,
    GetTaskSummary,
    CreateSession,
    DeleteSession,
    SendMessage,
    ListMessages,
    Inbox,
    GetTaskMetrics,
    AgentMetrics,
    CancelTask,
    LeaseStep,
    HeartbeatStep,
    CompleteStep,
    RetryStep,
    GetStepPart,
    GetStepLog,
    Counters,
    /// Exists only when the `TEST_FAULTS` var is `"enabled"`; see ARCHITECTURE.md.
    TestPanic,
    /// Sends a step message as the queue would redeliver it (duplicates on demand); test-only.
    TestStepMessage,
    /// Row counts of every table, so tests can show a refused request changed nothing; test-only.
    TestRowCounts,
    /// A digest of every table's rows (so a test sees a change that keeps the counts); test-only.
    TestRowDigests,
    /// Arms a fault point of the shell (see `shell/faults.rs`), or reads them; test-only.
    TestArmFault,
    TestFaults,
    /// Every statement the store has prepared, with where and its query plan; test-only.
    TestStatements,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// Literal segments, or `{name}` for a path parameter that matches one segment.
    pub pattern: &'static str,
    pub id: RouteId,
    pub access: Access,
}

const fn route(method: Method, pattern: &'static str, id: RouteId, access: Access) -> Route {
    Route { method, pattern, id, access }
}

/// Every route of the public API, in the order of the OpenAPI document.
pub const ROUTES: &[Route] = &[
    route(Method::Get, "/health", RouteId::Health, Access::Public),
    route(Method::Get, "/openapi.json", RouteId::OpenApi, Access::Public),
    route(Method::Get, "/v1/whoami", RouteId::Whoami, Access::Agent),
    route(Method::Get, "/v1/system/events", RouteId::ListSystemEvents, Access::Admin),
    route(Method::Get, "/v1/system/counters", RouteId::Counters, Access::Admin),
    route(Method::Post, "/v1/system/probes", RouteId::CreateProbe, Access::Admin),
    route(Method::Get, "/v1/agents", RouteId::ListAgents, Access::Admin),
    route(Method::Post, "/v1/agents", RouteId::CreateAgent, Access::Admin),
    route(Method::Post, "/v1/agents/import", RouteId::ImportAgent, Access::Admin),
    route(Method::Post, "/v1/agents/select", RouteId::SelectAgent, Access::Admin),
    route(Method::Get, "/v1/agents/{name}", RouteId::GetAgent, Access::Admin),
    route(Method::Put, "/v1/agents/{name}", RouteId::UpdateAgent, Access::Admin),
    route(Method::Delete, "/v1/agents/{name}", RouteId::DeleteAgent, Access::Admin),
    route(Method::Post, "/v1/agents/{name}/token", RouteId::RotateAgentToken, Access::Admin),
    route(Method::Post, "/v1/agents/{name}/webhook-secret", RouteId::RotateWebhookSecret, Access::Admin),
    route(Method::Post, "/v1/agents/{name}/lease", RouteId::LeaseStep, Access::Agent),
    route(Method::Get, "/v1/agents/{name}/inbox", RouteId::Inbox, Access::Agent),
    route(Method::Post, "/v1/messages", RouteId::SendMessage, Access::Agent),
    route(Method::Get, "/v1/messages", RouteId::ListMessages, Access::Agent),
    route(Method::Get, "/v1/workflows", RouteId::ListWorkflows, Access::Admin),
    route(Method::Post, "/v1/workflows", RouteId::CreateWorkflow, Access::Admin),
    route(Method::Get, "/v1/workflows/{name}", RouteId::GetWorkflow, Access::Admin),
    route(Method::Get, "/v1/workflows/{name}/versions/{version}", RouteId::GetWorkflowVersion, Access::Admin),
    route(Method::Post, "/v1/analyze", RouteId::Analyze, Access::Admin),
    route(Method::Get, "/v1/tasks", RouteId::ListTasks, Access::Admin),
    route(Method::Post, "/v1/tasks", RouteId::SubmitTask, Access::Admin),
    route(Method::Get, "/v1/tasks/{id}", RouteId::GetTask, Access::Agent),
    route(Method::Get, "/v1/tasks/{id}/events", RouteId::ListTaskEvents, Access::Agent),
    route(Method::Get, "/v1/tasks/{id}/logs", RouteId::ListTaskLogs, Access::Agent),
    route(Method::Get, "/v1/tasks/{id}/logs/{agent}", RouteId::GetTaskLog, Access::Agent),
    route(Method::Get, "/v1/tasks/{id}/summary", RouteId::GetTaskSummary, Access::Agent),
    route(Method::Get, "/v1/tasks/{id}/metrics", RouteId::GetTaskMetrics, Access::Agent),
    route(Method::Get, "/v1/metrics/agents", RouteId::AgentMetrics, Access::Admin),
    route(Method::Post, "/v1/sessions", RouteId::CreateSession, Access::Public),
    route(Method::Delete, "/v1/sessions/current", RouteId::DeleteSession, Access::Agent),
    route(Method::Post, "/v1/tasks/{id}/cancel", RouteId::CancelTask, Access::Admin),
    route(Method::Post, "/v1/steps/{id}/heartbeat", RouteId::HeartbeatStep, Access::Agent),
    route(Method::Post, "/v1/steps/{id}/complete", RouteId::CompleteStep, Access::Agent),
    route(Method::Post, "/v1/steps/{id}/retry", RouteId::RetryStep, Access::Admin),
    route(Method::Get, "/v1/steps/{id}/attempts/{attempt}/parts/{part}", RouteId::GetStepPart, Access::Agent),
    route(Method::Get, "/v1/steps/{id}/log", RouteId::GetStepLog, Access::Agent),
];

/// Routes that exist only for the integration tests, switched on by a var. Kept out of
/// [`ROUTES`] (and so out of the OpenAPI document) because they are not part of the API.
pub const TEST_ROUTES: &[Route] = &[
    route(Method::Post, "/__test/panic", RouteId::TestPanic, Access::Public),
    route(Method::Post, "/__test/step-messages", RouteId::TestStepMessage, Access::Admin),
    route(Method::Get, "/__test/row-counts", RouteId::TestRowCounts, Access::Admin),
    route(Method::Get, "/__test/row-digests", RouteId::TestRowDigests, Access::Admin),
    route(Method::Post, "/__test/faults", RouteId::TestArmFault, Access::Admin),
    route(Method::Get, "/__test/faults", RouteId::TestFaults, Access::Admin),
    route(Method::Get, "/__test/statements", RouteId::TestStatements, Access::Admin),
];

/// A request matched to its route, with the path parameters in pattern order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    pub params: Vec<(&'static str, String)>,
}

impl Matched {
    /// The raw (still percent-encoded) value of a path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// The result of looking up a path: a route, or (for `OPTIONS`) the methods the path has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Route(Matched),
    Options { allow: Vec<Method> },
}

/// Finds the route for `method` and `path`.
///
/// `HEAD` is served by the `GET` route of the same path. A known path with another method is
/// 405 with the methods it has; an unknown path is 404. `method` is `None` for a verb switchyard
/// does not know at all, which is 405 on a known path too.
pub fn resolve(method: Option<Method>, path: &str, test_routes: bool) -> Result<Resolution, ApiError> {
    let table = ROUTES.iter().chain(if test_routes { TEST_ROUTES } else { &[] });
    let mut allow: Vec<Method> = Vec::new();
    let mut found: Option<Matched> = None;
    for route in table {
        let Some(params) = match_pattern(route.pattern, path) else { continue };
        allow.push(route.method);
        if route.method == Method::Get {
            allow.push(Method::Head);
        }
        let wanted = if method == Some(Method::Head) { Some(Method::Get) } else { method };
        if found.is_none() && Some(route.method) == wanted {
            found = Some(Matched { route: *route, params });
        }
    }
    if allow.is_empty() {
        return Err(ApiError::not_found_route());
    }
    allow.sort();
    allow.dedup();
    match (found, method) {
        (Some(matched), _) => Ok(Resolution::Route(matched)),
        (None, Some(Method::Options)) => Ok(Resolution::Options { allow }),
        (None, _) => Err(ApiError::MethodNotAllowed { allow }),
    }
}

/// Matches a path against a pattern segment by segment. Parameters match exactly one non-empty
/// segment; a trailing slash is a different path.
fn match_pattern(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if s.is_empty() {
                        return None;
                    }
                    params.push((name, s.to_string()));
                } else if p != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(method: Method, path: &str) -> Result<RouteId, u16> {
        match resolve(Some(method), path, false) {
            Ok(Resolution::Route(m)) => Ok(m.route.id),
            Ok(Resolution::Options { .. }) => Err(204),
            Err(e) => Err(e.status()),
        }
    }

    #[test]
    fn known_paths_resolve_to_their_routes() {
        assert_eq!(id_of(Method::Get, "/health"), Ok(RouteId::Health));
        assert_eq!(id_of(Method::Head, "/health"), Ok(RouteId::Health));
        assert_eq!(id_of(Method::Get, "/openapi.json"), Ok(RouteId::OpenApi));
        assert_eq!(id_of(Method::Get, "/v1/whoami"), Ok(RouteId::Whoami));
        assert_eq!(id_of(Method::Post, "/v1/system/probes"), Ok(RouteId::CreateProbe));
    }

    #[test]
    fn unknown_paths_are_404() {
        assert_eq!(id_of(Method::Get, "/"), Err(404));
        assert_eq!(id_of(Method::Get, "/health/"), Err(404));
        assert_eq!(id_of(Method::Get, "/v1"), Err(404));
        assert_eq!(id_of(Method::Get, "/v1/whoami/extra"), Err(404));
        assert_eq!(id_of(Method::Get, "/V1/WHOAMI"), Err(404));
        assert_eq!(id_of(Method::Get, "//health"), Err(404));
    }

    #[test]
    fn a_known_path_with_the_wrong_method_is_405_listing_the_right_ones() {
        match resolve(Some(Method::Delete), "/health", false) {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, vec![Method::Get, Method::Head]),
            other => panic!("{other:?}"),
        }
        match resolve(None, "/v1/system/probes", false) {
            Err(ApiError::MethodNotAllowed { allow }) => assert_eq!(allow, vec![Method::Post]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_on_a_known_path_lists_its_methods() {
        assert_eq!(
            resolve(Some(Method::Options), "/v1/system/events", false),
            Ok(Resolution::Options { allow: vec![Method::Get, Method::Head] })
        );
        assert_eq!(id_of(Method::Options, "/nowhere"), Err(404));
    }

    #[test]
    fn test_routes_exist_only_when_switched_on() {
        assert_eq!(id_of(Method::Post, "/__test/panic"), Err(404));
        match resolve(Some(Method::Post), "/__test/panic", true) {
            Ok(Resolution::Route(m)) => assert_eq!(m.route.id, RouteId::TestPanic),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literal_routes_win_over_parameters_and_parameters_are_captured() {
        assert_eq!(id_of(Method::Post, "/v1/agents/import"), Ok(RouteId::ImportAgent));
        assert_eq!(id_of(Method::Post, "/v1/agents/select"), Ok(RouteId::SelectAgent));
        assert_eq!(id_of(Method::Get, "/v1/agents/import"), Ok(RouteId::GetAgent));
        assert_eq!(id_of(Method::Post, "/v1/agents/someone"), Err(405));
        match resolve(Some(Method::Get), "/v1/workflows/default/versions/3", false) {
            Ok(Resolution::Route(m)) => {
                assert_eq!(m.route.id, RouteId::GetWorkflowVersion);
                assert_eq!(m.params, vec![("name", "default".to_string()), ("version", "3".to_string())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parameters_match_one_non_empty_segment() {
        assert_eq!(match_pattern("/v1/tasks/{id}", "/v1/tasks/tsk_1"), Some(vec![("id", "tsk_1".to_string())]));
        assert_eq!(match_pattern("/v1/tasks/{id}", "/v1/tasks/"), None);
        assert_eq!(match_pattern("/v1/tasks/{id}", "/v1/tasks/a/b"), None);
        assert_eq!(
            match_pattern("/v1/tasks/{id}/logs/{agent}", "/v1/tasks/t/logs/a%2Fb"),
            Some(vec![("id", "t".to_string()), ("agent", "a%2Fb".to_string())])
        );
    }

    #[test]
    fn every_admin_route_is_under_v1_and_every_v1_route_but_sign_in_needs_credentials() {
        for route in ROUTES {
            // Signing in is how credentials are obtained: it takes a token in its body instead.
            let sign_in = route.id == RouteId::CreateSession;
            assert_eq!(route.pattern.starts_with("/v1/") && !sign_in, route.access != Access::Public, "{route:?}");
        }
    }
}
