// The hostile-input corpus: requests a careless or malicious client could send. Every one must
// be answered with a 4xx JSON error and change nothing. Each case is
// `{ name, method, path, body?, contentType?, headers? }`; a body that is a string or Buffer is
// sent as is, anything else as JSON. Requests are sent with the admin token unless `headers`
// says otherwise.

const STEP = "stp_00000000000000000000000000";
const TASK = "tsk_00000000000000000000000000";
const LEASE = "lse_00000000000000000000000000";

/** Routes that read a JSON body, with a valid-looking body to mutate. */
const BODY_ROUTES = [
  ["POST", "/v1/agents", { name: "hostile-agent", capabilities: ["x"] }],
  ["PUT", "/v1/agents/test-runner", { description: "d", capabilities: ["x"] }],
  ["POST", "/v1/agents/select", { requirements: ["d1"] }],
  ["POST", "/v1/workflows", { name: "hostile-flow", steps: [{ key: "1", name: "s", agent: "test-runner" }] }],
  ["POST", "/v1/analyze", { title: "Add a D1 table" }],
  ["POST", "/v1/tasks", { title: "Hostile task" }],
  ["POST", "/v1/messages", { from: "test-runner", to: "context-fetcher", type: "notify", payload: {}, correlation_id: "h" }],
  ["POST", "/v1/sessions", { token: "x" }],
  ["POST", `/v1/steps/${STEP}/complete`, { lease_id: LEASE, outcome: "succeeded" }],
  ["POST", `/v1/steps/${STEP}/heartbeat`, { lease_id: LEASE }],
  ["POST", "/v1/system/probes", { outcome: "ack" }],
];

/** Bodies that are not JSON a route can read, sent to every body route. */
const BROKEN_BODIES = [
  ["an unclosed object", "{"],
  ["a lone bracket", "]"],
  ["a trailing comma", '{"a": 1,}'],
  ["single quotes", "{'title': 'x'}"],
  ["a bare word", "nul"],
  ["a comment", '{"title": "x" /* hi */}'],
  ["an unescaped control character in a string", '{"title": "a\u0001b"}'],
  ["invalid UTF-8 inside a string", Buffer.concat([Buffer.from('{"title": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
  ["a lone surrogate escape followed by garbage", '{"title": "\\ud800\\u0041"'],
  ["arrays nested 10,000 deep", `${"[".repeat(10_000)}${"]".repeat(10_000)}`],
  ["objects nested 5,000 deep", `${'{"a":'.repeat(5_000)}1${"}".repeat(5_000)}`],
  ["a JSON array instead of an object", "[1, 2, 3]"],
  ["a JSON string instead of an object", '"just a string"'],
  ["a JSON number instead of an object", "12345678901234567890"],
  ["null instead of an object", "null"],
];

/** Field-level attacks on specific routes, each with the body that carries it. */
const FIELD_CASES = [
  // Wrong types.
  ["POST", "/v1/tasks", "a number as the title", { title: 5 }],
  ["POST", "/v1/tasks", "an object as the title", { title: { $gt: "" } }],
  ["POST", "/v1/tasks", "a string as the requirements", { title: "t", requirements: "all of them" }],
  ["POST", "/v1/tasks", "numbers in the requirements", { title: "t", requirements: [1, 2] }],
  ["POST", "/v1/tasks", "a boolean as the workflow", { title: "t", workflow: true }],
  ["POST", "/v1/agents", "a string as max_concurrency", { name: "typed-agent", max_concurrency: "8" }],
  ["POST", "/v1/agents", "a float as max_concurrency", { name: "typed-agent", max_concurrency: 1.5 }],
  ["POST", "/v1/agents", "capabilities as an object", { name: "typed-agent", capabilities: { a: 1 } }],
  ["POST", "/v1/workflows", "steps as a string", { name: "typed-flow", steps: "1,2,3" }],
  ["POST", "/v1/messages", "a payload that is an array", { from: "test-runner", to: "context-fetcher", type: "notify", payload: [], correlation_id: "h" }],
  ["POST", `/v1/steps/${STEP}/complete`, "an outcome that is not one", { lease_id: LEASE, outcome: "maybe" }],
  ["POST", `/v1/steps/${STEP}/complete`, "lines_added as a string", { lease_id: LEASE, report: { lines_added: "many" } }],
  // Huge numbers.
  ["POST", "/v1/agents", "max_concurrency beyond u64", { name: "huge-agent", max_concurrency: 18446744073709551616 }],
  ["POST", "/v1/agents", "a negative max_concurrency", { name: "huge-agent", max_concurrency: -1 }],
  ["POST", "/v1/agents", "lease_ms of 1e300", { name: "huge-agent", lease_ms: 1e300 }],
  ["POST", "/v1/agents", "a zero max_concurrency", { name: "huge-agent", max_concurrency: 0 }],
  ["POST", "/v1/agents", "a zero schedule_timeout_ms", { name: "huge-agent", schedule_timeout_ms: 0 }],
  ["POST", "/v1/agents", "a step_timeout_ms over a week", { name: "huge-agent", step_timeout_ms: 604_800_001 }],
  ["POST", "/v1/agents", "a step_timeout_ms as a duration string", { name: "huge-agent", step_timeout_ms: "30m" }],
  // Timeout attributes that are not durations within their bounds.
  ["POST", "/v1/workflows", "a timeout that is not a duration", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { timeout: "soon" } }] }],
  ["POST", "/v1/workflows", "a timeout without a unit", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { timeout: "30" } }] }],
  ["POST", "/v1/workflows", "a fractional heartbeat", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { heartbeat: "1.5m" } }] }],
  ["POST", "/v1/workflows", "a heartbeat under a second", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { heartbeat: "500ms" } }] }],
  ["POST", "/v1/workflows", "a schedule_timeout over 30 days", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { schedule_timeout: "31d" } }] }],
  ["POST", "/v1/workflows", "a negative timeout", { name: "timed-flow", steps: [{ key: "1", name: "s", agent: "test-runner", attributes: { timeout: "-5m" } }] }],
  ["POST", `/v1/steps/${STEP}/complete`, "lines_added of 1e20", { lease_id: LEASE, report: { lines_added: 1e20 } }],
  ["POST", `/v1/steps/${STEP}/complete`, "a negative test count", { lease_id: LEASE, report: { tests: { unit: { passed: -3 } } } }],
  ["POST", `/v1/steps/${STEP}/complete`, "an infinite performance figure", '{"lease_id": "lse_00000000000000000000000000", "report": {"performance": {"cold_start_ms": 1e400}}}'],
  // Huge strings.
  ["POST", "/v1/tasks", "a 100 KB title", { title: "t".repeat(100_000) }],
  ["POST", "/v1/tasks", "a 60 KB title", { title: "t".repeat(60_000) }],
  ["POST", "/v1/agents", "a 10 KB agent name", { name: "a".repeat(10_000) }],
  ["POST", "/v1/agents", "a 40 KB description", { name: "long-agent", description: "d".repeat(40_000) }],
  ["POST", "/v1/messages", "a 50 KB payload", { from: "test-runner", to: "context-fetcher", type: "notify", payload: { t: "x".repeat(50_000) }, correlation_id: "h" }],
  ["POST", "/v1/sessions", "a 100 KB token", { token: "x".repeat(100_000) }],
  ["POST", `/v1/steps/${STEP}/complete`, "a 2 MB log", { lease_id: LEASE, log: "l".repeat(2_000_000) }],
  ["POST", "/v1/tasks", "5,000 requirements", { title: "t", requirements: Array(5_000).fill("r") }],
  // NUL bytes and control characters.
  ["POST", "/v1/tasks", "a NUL byte in the title", { title: "before\u0000after" }],
  ["POST", "/v1/tasks", "an escape sequence in the title", { title: "\u001b[2Jcleared" }],
  ["POST", "/v1/tasks", "a line break in the title", { title: "two\nlines" }],
  ["POST", "/v1/tasks", "a NUL byte in the description", { title: "t", description: "a\u0000b" }],
  ["POST", "/v1/tasks", "a NUL byte in a requirement", { title: "t", requirements: ["a\u0000b"] }],
  ["POST", "/v1/agents", "a NUL byte in the agent name", { name: "nul\u0000agent" }],
  ["POST", "/v1/agents", "a NUL byte in the description", { name: "nul-agent", description: "a\u0000b" }],
  ["POST", "/v1/messages", "a NUL byte in the correlation id", { from: "test-runner", to: "context-fetcher", type: "notify", payload: {}, correlation_id: "a\u0000b" }],
  ["POST", "/v1/workflows", "a NUL byte in the workflow name", { name: "flow\u0000x", steps: [{ key: "1", name: "s", agent: "test-runner" }] }],
  // SQL metacharacters where they cannot belong.
  ["POST", "/v1/agents", "SQL in the agent name", { name: "x'; DROP TABLE agents;--" }],
  ["POST", "/v1/agents", "a quote in the agent name", { name: "o'brien" }],
  ["POST", "/v1/workflows", "SQL in the workflow name", { name: "flow\" OR 1=1 --", steps: [{ key: "1", name: "s", agent: "test-runner" }] }],
  ["POST", "/v1/workflows", "SQL in a step key", { name: "sql-flow", steps: [{ key: "1; DELETE FROM steps", name: "s", agent: "test-runner" }] }],
  ["POST", "/v1/tasks", "SQL in the workflow reference", { title: "t", workflow: "x' UNION SELECT * FROM agents --" }],
  ["POST", "/v1/messages", "SQL in the recipient", { from: "test-runner", to: "a' OR '1'='1", type: "notify", payload: {}, correlation_id: "h" }],
  ["POST", "/v1/messages", "SQL in the correlation id", { from: "test-runner", to: "context-fetcher", type: "notify", payload: {}, correlation_id: "1' OR '1'='1" }],
  // HTML in fields that are shown in summaries and lists.
  ["POST", "/v1/agents", "a script tag as the agent name", { name: "<script>alert(1)</script>" }],
  ["POST", "/v1/agents", "an image tag as a capability", { name: "html-agent", capabilities: ["<img src=x onerror=alert(1)>"] }],
  ["POST", "/v1/workflows", "HTML as a step name", { name: "html-flow", steps: [{ key: "1", name: "<b>bold</b>", agent: "test-runner" }] }],
  ["POST", "/v1/workflows", "HTML as a step agent", { name: "html-flow", steps: [{ key: "1", name: "s", agent: "<i>x</i>" }] }],
  ["POST", "/v1/workflows", "HTML as the workflow name", { name: "<svg onload=alert(1)>", steps: [{ key: "1", name: "s", agent: "test-runner" }] }],
  ["POST", "/v1/messages", "HTML as the sender", { from: "<script>", to: "context-fetcher", type: "notify", payload: {}, correlation_id: "h" }],
  ["POST", "/v1/tasks", "HTML as the workflow", { title: "t", workflow: "<a href=javascript:alert(1)>" }],
  ["POST", `/v1/steps/${STEP}/complete`, "a script tag as a metric name", { lease_id: LEASE, report: { performance: { "<script>": 1 } } }],
  // Duplicate keys.
  ["POST", "/v1/tasks", "the title twice", '{"title": "a", "title": "b"}'],
  ["POST", "/v1/agents", "the name twice", '{"name": "dup-agent", "name": "other-agent"}'],
  ["POST", "/v1/sessions", "the token twice", '{"token": "a", "token": "b"}'],
  ["POST", `/v1/steps/${STEP}/complete`, "the outcome twice", '{"lease_id": "lse_00000000000000000000000000", "outcome": "succeeded", "outcome": "failed"}'],
  // Unknown and missing fields.
  ["POST", "/v1/tasks", "an unknown field", { title: "t", admin: true }],
  ["POST", "/v1/tasks", "no title", { description: "no title" }],
  ["POST", "/v1/tasks", "a blank title", { title: "   " }],
  ["POST", "/v1/agents", "no name", { capabilities: ["x"] }],
  ["POST", "/v1/agents", "an unknown mode", { name: "mode-agent", mode: "push" }],
  ["POST", "/v1/agents", "a webhook agent without a URL", { name: "hookless", mode: "webhook" }],
  ["POST", "/v1/agents", "a webhook URL that is not a URL", { name: "bad-hook", mode: "webhook", webhook_url: "not a url" }],
  ["POST", "/v1/agents", "a reserved agent name", { name: "auto-select" }],
  ["POST", "/v1/workflows", "no steps", { name: "empty-flow", steps: [] }],
  ["POST", "/v1/workflows", "a step key used twice", { name: "twice-flow", steps: [{ key: "1", name: "a", agent: "test-runner" }, { key: "1", name: "b", agent: "test-runner" }] }],
  ["POST", "/v1/workflows", "a workflow naming an unknown tag", "---\nname: x\n---\n<process_flow><step number=\"1\"></process_flow>"],
  ["POST", "/v1/messages", "a response to nothing", { from: "test-runner", to: "context-fetcher", type: "response", payload: {}, correlation_id: "nothing-asked" }],
  ["POST", "/v1/messages", "a message to oneself", { from: "test-runner", to: "test-runner", type: "notify", payload: {}, correlation_id: "h" }],
  ["POST", `/v1/steps/${STEP}/complete`, "no lease id", { outcome: "succeeded" }],
  ["POST", `/v1/steps/${STEP}/complete`, "an error on a success", { lease_id: LEASE, outcome: "succeeded", error: "but" }],
  ["POST", `/v1/tasks/${TASK}/cancel`, "a body with fields on cancel", { force: true }],
  ["POST", "/v1/agents/test-runner/lease", "a body with fields on lease", { steps: 100 }],
  ["POST", "/v1/agents/test-runner/token", "a body with fields on token rotation", { token: "mine" }],
  ["POST", "/v1/agents/import", "a subagent file without front matter", "just some text"],
  ["POST", "/v1/agents/import", "a subagent file with an unclosed front matter", "---\nname: x\n"],
];

/** Requests whose path or query is the attack. */
const PATH_CASES = [
  ["GET", "/v1/agents/..%2F..%2Fetc%2Fpasswd", "an encoded traversal in an agent name"],
  ["GET", "/v1/agents/%2e%2e", "an encoded dot-dot as an agent name"],
  ["GET", "/v1/agents/a%2Fb", "an encoded slash in an agent name"],
  ["GET", "/v1/agents/a%00b", "an encoded NUL in an agent name"],
  ["GET", "/v1/agents/%3Cscript%3E", "an encoded script tag as an agent name"],
  ["GET", "/v1/agents/x'%20OR%20'1'='1", "SQL in an agent name"],
  ["DELETE", "/v1/agents/..%2Fworkflows", "a traversal in a delete"],
  ["GET", "/v1/workflows/..%2F..%2Fv1%2Fagents", "a traversal in a workflow name"],
  ["GET", "/v1/workflows/enhanced-multi-agent/versions/-1", "a negative version"],
  ["GET", "/v1/workflows/enhanced-multi-agent/versions/99999999999999999999", "a version beyond u64"],
  ["GET", "/v1/workflows/enhanced-multi-agent/versions/1e3", "a version in exponent notation"],
  ["GET", "/v1/tasks/..%2F..%2Fagents", "a traversal as a task id"],
  ["GET", "/v1/tasks/tsk_'%20OR%201=1", "SQL as a task id"],
  ["GET", `/v1/tasks/${TASK}/logs/..%2F..%2Fsecrets`, "a traversal as a log's agent"],
  ["GET", `/v1/tasks/${TASK}/logs/a%2Fb`, "an encoded slash as a log's agent"],
  ["GET", "/v1/tasks/%00/events", "a NUL as a task id"],
  ["POST", "/v1/steps/..%2Fsteps/complete", "a traversal as a step id"],
  ["GET", "/v1/tasks?status=running'%20OR%20'1'='1", "SQL in a status filter"],
  ["GET", "/v1/tasks?status=%3Cscript%3E", "HTML in a status filter"],
  ["GET", "/v1/tasks?limit=-1", "a negative limit"],
  ["GET", "/v1/tasks?limit=100000", "a limit over the maximum"],
  ["GET", "/v1/tasks?limit=1e2", "a limit in exponent notation"],
  ["GET", "/v1/tasks?cursor=1;DROP%20TABLE%20tasks", "SQL in a cursor"],
  ["GET", `/v1/tasks?cursor=${"c".repeat(5_000)}`, "a 5 KB cursor"],
  ["GET", `/v1/tasks/${TASK}/events?after=-5`, "a negative after"],
  ["GET", "/v1/agents/test-runner/inbox?wait=99999", "a wait beyond the maximum"],
  ["GET", "/v1/agents/test-runner/inbox?wait=-1", "a negative wait"],
  ["POST", "/v1/agents/test-runner/lease?wait=1e9", "a lease wait in exponent notation"],
  ["GET", "/v1/messages?correlation_id=%00", "a NUL as the correlation id"],
  ["GET", "/v1/messages?correlation_id=%zz", "a broken escape as the correlation id"],
  ["GET", "/v1/metrics/agents?since=1'%20OR%201=1", "SQL as a since time"],
  ["GET", "/v1/metrics/agents?since=99999-01-01T00:00:00Z", "a year beyond 9999"],
  ["GET", "/v1/system/events?cursor=%27", "a quote as a cursor"],
  ["GET", `/v1/tasks/${TASK}/summary`, "an Accept nobody can satisfy", { accept: "image/png" }],
  ["GET", "/v1/no-such-route", "an unknown route"],
  ["PATCH", "/v1/tasks", "an unsupported method"],
  ["GET", "/v1/whoami", "no credentials", { authorization: "" }],
  ["GET", "/v1/whoami", "a Basic header", { authorization: "Basic YWRtaW46YWRtaW4=" }],
  ["GET", "/v1/whoami", "a bearer without a token", { authorization: "Bearer" }],
  ["GET", "/v1/whoami", "a bearer token with a NUL", { authorization: "Bearer abc%00def" }],
  ["GET", "/v1/whoami", "an 8 KB bearer token", { authorization: `Bearer ${"t".repeat(8_000)}` }],
  ["GET", "/v1/agents", "a forged session id", { authorization: `Bearer sys_${"A".repeat(43)}` }],
];

/** Bodies sent with content types the routes do not read. */
const CONTENT_TYPE_CASES = [
  ["text/plain", '{"title": "t"}'],
  ["application/x-www-form-urlencoded", "title=t"],
  ["multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="title"\r\n\r\nt\r\n--x--'],
  ["application/xml", "<task><title>t</title></task>"],
  [undefined, '{"title": "t"}'],
];

export function hostileCases() {
  const cases = [];
  for (const [method, path] of BODY_ROUTES) {
    for (const [what, body] of BROKEN_BODIES) cases.push({ name: `${method} ${path}: ${what}`, method, path, body });
    cases.push({ name: `${method} ${path}: an empty body`, method, path, body: "" });
  }
  for (const [method, path, what, body] of FIELD_CASES) cases.push({ name: `${method} ${path}: ${what}`, method, path, body });
  for (const [method, path, what, headers] of PATH_CASES) {
    cases.push({ name: `${method} ${path.slice(0, 80)}: ${what}`, method, path, headers });
  }
  for (const [contentType, body] of CONTENT_TYPE_CASES) {
    for (const path of ["/v1/tasks", "/v1/agents", "/v1/messages"]) {
      cases.push({ name: `POST ${path}: a body sent as ${contentType ?? "no content type"}`, method: "POST", path, body, contentType: contentType ?? null });
    }
  }
  cases.push({ name: "POST /v1/tasks: a 2 MB body", method: "POST", path: "/v1/tasks", body: JSON.stringify({ title: "x".repeat(2_000_000) }) });
  cases.push({
    name: "POST /v1/workflows: an instruction file whose step timeout is not a duration",
    method: "POST",
    path: "/v1/workflows",
    body: '# Timed\n<process_flow>\n<step number="1" subagent="test-runner" name="s" timeout="an hour">Do it.</step>\n</process_flow>\n',
    contentType: "text/markdown",
  });
  cases.push({ name: "POST /v1/workflows: a 5 MB instruction file", method: "POST", path: "/v1/workflows", body: "x".repeat(5_000_000), contentType: "text/markdown" });
  return cases;
}
