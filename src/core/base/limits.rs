//! Every bound switchyard enforces, each with the reason for its number.
//!
//! A limit lives here, not inline at its use, so that a reader can see at one glance what a
//! request can make the Worker do. Units are the last word of each name.

/// Largest JSON request body. The biggest JSON body any route reads is an agent's report, and a
/// report larger than this belongs in R2, not in a request; 64 KiB parses in well under a
/// millisecond and stays far below the isolate's 128 MB memory.
pub const JSON_BODY_BYTES_MAX: usize = 64 * 1024;

/// Longest `Authorization` header read. Tokens are at most [`TOKEN_BYTES_MAX`]; the rest is the
/// scheme and spaces. Anything longer is not a credential of ours and is not worth comparing.
pub const AUTHORIZATION_HEADER_BYTES_MAX: usize = 512;

/// Longest bearer token accepted. Generated tokens are 43 characters (256 bits, base64url);
/// 256 leaves room for tokens people generate themselves without letting a header grow unbounded.
pub const TOKEN_BYTES_MAX: usize = 256;

/// Shortest admin token honoured. A shorter one is guessable by brute force over the internet,
/// so it is ignored (and logged) rather than trusted: 16 characters of a random token is at least
/// 96 bits.
pub const ADMIN_TOKEN_BYTES_MIN: usize = 16;

/// How many admin tokens `ADMIN_TOKEN` may list at once. Rotation needs two (old and new); a few
/// more allow a token per operator. More than this is a misconfiguration, not a use case.
pub const ADMIN_TOKENS_MAX: usize = 8;

/// How many origins `CORS_ORIGINS` may list. The API is meant for a handful of front ends
/// (production, staging, local); each origin costs a comparison on every request.
pub const CORS_ORIGINS_MAX: usize = 32;

/// How long a browser may cache a CORS preflight answer. Ten minutes keeps a SvelteKit app from
/// preflighting every call while letting a changed `CORS_ORIGINS` take effect soon after deploy.
pub const CORS_MAX_AGE_SECONDS: u32 = 600;

/// Default page size of list routes: enough for one screen of the dashboard.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;

/// Largest page a list route returns. Each row is a D1 read; 200 rows keep a page under D1's
/// per-query response budget and a response under a few hundred KB.
pub const PAGE_LIMIT_MAX: u32 = 200;

/// How long system events (cron ticks, queue probes, dead letters) are kept. A week covers an
/// incident noticed after a weekend; with one cron tick a minute that is about 10,000 rows.
pub const SYSTEM_EVENT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// How long an `Idempotency-Key` of `POST /v1/tasks` is remembered: the same key and body
/// answer the first response again for at least this long, and the cron forgets the key after
/// it. A client retries within minutes and a job is rerun within hours; a day covers both and
/// keeps the table at one day of submissions instead of every one ever made.
pub const IDEMPOTENCY_KEY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Most expired idempotency keys one cron run deletes. D1 runs one query at a time, so a
/// delete must stay short; at one run a minute this still forgets 7 million keys a day, far
/// more than a day's submissions.
pub const IDEMPOTENCY_KEYS_PRUNED_PER_TICK_MAX: u32 = 5_000;

/// Most finished tasks one cron run archives, and how many at once. Each is a read, an R2 write
/// and a write; 100 a minute moves 144,000 tasks a day, more than one database finishes (see
/// docs/scaling.md), so a backlog after lowering the retention drains within days, while a run
/// stays far inside the cron handler's time and subrequests.
pub const TASKS_ARCHIVED_PER_TICK_MAX: u32 = 100;
pub const ARCHIVE_CONCURRENCY: usize = 10;

/// Longest cursor accepted by list routes. Cursors we issue are sequence numbers and names (at
/// most 64 bytes); anything longer is not one of ours.
pub const CURSOR_BYTES_MAX: usize = 64;

/// Seconds a `dead_letter` probe waits between its deliberate retries. Zero: the probe exists to
/// show the dead-letter path end to end, and waiting adds nothing to that.
pub const PROBE_RETRY_DELAY_SECONDS: u32 = 0;

/// Largest instruction file read. Agent OS files are a few KB (the reference file is 7.5 KB);
/// 256 KiB allows a very long workflow while keeping parsing well under a millisecond per KB.
pub const INSTRUCTION_FILE_BYTES_MAX: usize = 256 * 1024;

/// Most problems reported for one instruction file. A person fixes the first hundred and posts
/// again; listing every one of tens of thousands would only make a multi-megabyte error body.
pub const PROBLEMS_MAX: usize = 100;

/// Most steps in one workflow. Each step becomes a D1 row per task and a queue message; 64 is far
/// beyond any real process flow (the reference has 7) and keeps a task's creation one D1 batch.
pub const STEPS_MAX: usize = 64;

/// Most routing rules (`IF ...: ASSIGN: ...`) a workflow may have. Real `<agent_selection>`
/// blocks have three or four; one rule per step of the largest workflow is more than anyone
/// writes, and keeps routing a task (every rule against every piece of evidence) small.
pub const ROUTING_RULES_MAX: usize = STEPS_MAX;

/// How deep child runs may nest: a file that `EXECUTE`s a file that `EXECUTE`s one, three
/// levels down at most. Agent OS nests one level (`execute-tasks` runs `execute-task`); three
/// leave room for a team's own file around it while a task's steps stay few enough to be read
/// and written whole in one D1 batch.
pub const EXECUTE_DEPTH_MAX: usize = 3;

/// Most steps one task runs, its child runs' steps included: every transition reads and writes
/// the task's steps together, so their number bounds a transition's D1 work.
pub const TASK_STEPS_MAX: usize = 4 * STEPS_MAX;

/// Most items a `FOR each` loop runs its child run for (the list the step before it reports as
/// `report.items`). Agent OS loops over a spec's parent tasks, a handful; each item adds a copy
/// of the child run's steps, written in the batch of the completion that reported the items, and
/// [`TASK_STEPS_MAX`] still bounds the task as a whole.
pub const LOOP_ITEMS_MAX: usize = 16;

/// Most bytes of one loop item as JSON: a task's name, number and subtasks, not a document. Each
/// is copied into the instructions of every step of its child run.
pub const LOOP_ITEM_BYTES_MAX: usize = 2 * 1024;

// Task analysis and agent selection (core::analysis) read their inputs only up to these bounds;
// the HTTP routes refuse inputs beyond them instead of reading them in part.

/// Bytes of a title or description that are read. The opening 8 KiB (over a thousand words) says
/// what kind of work a task is; a longer description is a spec, and reading all of it would only
/// spend the request's CPU budget on the same answer.
pub const ANALYSIS_TEXT_BYTES_MAX: usize = 8 * 1024;

/// Longest task title: a line, not a paragraph.
pub const TASK_TITLE_BYTES_MAX: usize = 1024;

/// Requirements that are read. Requirements are keywords (`database,d1,migrations`); more than
/// 64 of them is a document pasted in the wrong field, and the first 64 already decide.
pub const TASK_REQUIREMENTS_MAX: usize = 64;

/// Bytes of one requirement that are read: a keyword or a short phrase, never a paragraph.
pub const TASK_REQUIREMENT_BYTES_MAX: usize = 256;

/// Paths that are read. A change touching more files than this is classified by its first 256,
/// which is plenty to see which areas it touches.
pub const TASK_PATHS_MAX: usize = 256;

/// Bytes of one path that are read. Real repository paths are far shorter; a longer "path" is not
/// one, and classifying it would only cost time.
pub const TASK_PATH_BYTES_MAX: usize = 512;

/// Evidence items listed in an analysis. The decision uses all of them; the list is for people,
/// and past 64 items it stops explaining and starts padding the response.
pub const EVIDENCE_MAX: usize = 64;

/// Requirements selection reads. An `auto-select` step lists a few (the seed's examples list
/// three); every one is compared with every capability of every agent, so this bound multiplies.
pub const SELECT_REQUIREMENTS_MAX: usize = 16;

/// Agents scored by selection. A deployment registers a handful of specialists (five by
/// default); scoring more than 64 for one step would spend the request's CPU on agents registered
/// by mistake.
pub const SELECT_AGENTS_MAX: usize = 64;

/// How long an isolate serves an agent, or the agent of a token, from memory before it reads
/// KV again. Every request of a runner looks its token up and most completions look an agent
/// up; short, because a write in another isolate reaches this one only when it expires.
pub const ISOLATE_MEMO_MS: i64 = 2_000;

/// How many of an agent's oldest ready steps a lease picks the task of among: workers of one
/// agent asking at the same moment then mostly look at different tasks instead of racing for
/// the oldest (within a task, `core::engine::lease_candidate` spreads them). Small, so that
/// work is still taken close to the order it became ready.
pub const LEASE_SPREAD: u32 = 4;

/// How long a transition's read ahead for an agent's next lease answers that lease (see
/// `READ_AHEAD_AGENTS_MAX`). A runner asks for its next step as soon as its completion is
/// answered, and a woken lease request looks at once; past this, the lease reads again, so that
/// the messages and steps it is given are never older than this.
pub const LEASE_READ_AHEAD_MS: i64 = 2_000;

/// Agents one transition's batch reads ahead for (see `LEASE_READ_AHEAD_MS`). Each adds seven
/// indexed reads to the batch; the default workflow's widest change wakes three agents, and a
/// wider fan-out's other agents read for themselves.
pub const READ_AHEAD_AGENTS_MAX: usize = 4;

/// Workflows an isolate remembers the executed files' names of (see `shell::registry`) before
/// it forgets them all: a deployment runs a handful of workflows, and a name costs a few bytes.
pub const EXECUTED_WORKFLOWS_MAX: usize = 64;

/// How long an isolate submits tasks of a workflow on what it last read for one (the workflow,
/// every agent, the files it executes) instead of reading all of it again (see
/// `shell::registry::submission_read`). The insert is guarded on everything that read found, so
/// a read overtaken by a post or an agent's change costs one write that loses its guard and a
/// fresh read, never a task planned on the old registry. A minute keeps a busy workflow's
/// submissions at one round trip; the registry rarely changes more often than that.
pub const SUBMISSION_READ_KEPT_MS: i64 = 60_000;

/// Workflows whose last submission read an isolate keeps. A read holds every agent (at most
/// `SELECT_AGENTS_MAX`) and the workflow's files, some tens of KiB; a deployment submits tasks
/// of a handful of workflows.
pub const SUBMISSION_READS_KEPT_MAX: usize = 16;

/// How long an isolate decides a task's next transition on the state it last read or wrote of
/// it instead of reading the task again (see `core::engine::recent`). A stale state costs one
/// write that loses its guard, never a wrong write; ten minutes covers a coding agent's step
/// between its lease and its completion.
pub const RECENT_STATE_MS: i64 = 600_000;

/// Task states an isolate keeps: a few times the tasks one isolate has in flight at once. A
/// default task's state is a few KiB, so this is about a megabyte.
pub const RECENT_STATES_MAX: usize = 256;

/// Entries each of an isolate's two memos (agents, and the agents of tokens) holds before it
/// forgets them all: twice a registry of [`SELECT_AGENTS_MAX`] agents, so that it stays
/// remembered.
pub const ISOLATE_MEMO_ENTRIES_MAX: usize = 2 * SELECT_AGENTS_MAX;

/// Capabilities read per agent: the defaults have at most 25, and a capability list is meant to
/// be read by people too.
pub const AGENT_CAPABILITIES_MAX: usize = 32;

/// Bytes of one capability that are read: capabilities are keywords.
pub const AGENT_CAPABILITY_BYTES_MAX: usize = 64;

/// Bytes of an agent's description that are read for the weakest kind of match: one or two
/// sentences.
pub const SELECT_DESCRIPTION_BYTES_MAX: usize = 1024;

// The execution engine (core::engine).

/// Attempts a step gets unless its workflow says otherwise (`max_attempts="5"` on the step): one
/// try and two retries ride out a flaky network or a restarted agent without hiding a real fault.
pub const STEP_ATTEMPTS_DEFAULT: u32 = 3;

/// Most attempts a workflow may give a step. With the backoff below, ten attempts span about
/// twenty minutes; past that a person should look at the step rather than the engine retry it.
pub const STEP_ATTEMPTS_MAX: u32 = 10;

/// Backoff before the first retry; it doubles with every further failure.
pub const RETRY_BACKOFF_BASE_SECONDS: u32 = 2;

/// Longest backoff between attempts: five minutes, so that an agent that recovers is used again
/// soon, and far below the twelve hours a queue message may be delayed.
pub const RETRY_BACKOFF_CAP_SECONDS: u32 = 300;

/// Longest `wait` of a lease request. A long poll holds a request (and its CPU-free wait) open;
/// twenty seconds is well inside every proxy's idle timeout and makes an idle agent poll three
/// times a minute.
pub const LEASE_WAIT_SECONDS_MAX: u32 = 20;

/// How often a waiting lease request looks for work again in D1 when the Worker has no
/// `AGENT_WAKE` binding, or its agent's object failed (each look is one read). With the object,
/// a waiting request looks in D1 only when one of its agent's steps was made ready. A waiting
/// inbox request also looks again this often, for messages stored by other isolates.
pub const LEASE_POLL_INTERVAL_MS: u32 = 1000;

/// How often a waiting inbox request checks whether its own isolate stored a message for its
/// agent: a memory read, cheap enough to do often; 10 ms keeps hand-over well under 50 ms.
pub const LEASE_WAKE_CHECK_MS: u32 = 10;

/// Largest completion request: a report plus an attempt's log. Agents' logs are text of a few
/// hundred KB at most; anything bigger belongs in the agent's own storage.
pub const COMPLETE_BODY_BYTES_MAX: usize = 1024 * 1024;

/// Largest report kept inline in D1. Larger reports go to R2 and D1 keeps the key: D1 rows stay
/// small, so reading a task's steps stays one cheap query.
pub const REPORT_INLINE_BYTES_MAX: usize = 8 * 1024;

/// Largest attempt log accepted in a completion.
pub const ATTEMPT_LOG_BYTES_MAX: usize = 512 * 1024;

/// How many times a transition is decided again after losing a race (another transition of the
/// same task applied first). Each retry reads fresh state after a jittered pause
/// ([`TRANSITION_RETRY_PAUSE_MS`]), so eight losses in a row take a task with dozens of steps
/// completing at once; the request is then answered 503 `busy` and may be sent again.
pub const TRANSITION_RETRIES_MAX: u32 = 8;
/// The pause before the n-th retry of a lost transition is random in [0, this << n) ms: racers
/// that lost together spread out instead of colliding again. 5 ms doubles to at most 640 ms.
pub const TRANSITION_RETRY_PAUSE_MS: u32 = 5;

/// Tasks one cron run sweeps per round (expired leases, overdue messages), and how many rounds
/// it runs while each round is full. Each task is a read and a write; the rounds' tasks are
/// swept `SWEEP_CONCURRENCY` at a time, so 20 rounds of 50 (1,000 tasks) stay well inside the
/// cron handler's time, and the next minute takes the rest.
pub const SWEEP_TASKS_MAX: u32 = 50;
pub const SWEEP_ROUNDS_MAX: u32 = 20;
/// No new round starts after a cron run has swept this long: well inside the 30 seconds of CPU
/// and the wall time a cron handler has, whatever the rounds cost.
pub const SWEEP_BUDGET_MS: i64 = 20_000;
pub const SWEEP_CONCURRENCY: usize = 10;

/// How long after its due time a queued step's message is considered lost and sent again. Queues
/// deliver within seconds; a minute (one cron period) avoids re-sending what is merely slow.
pub const REDISPATCH_AFTER_MS_DEFAULT: i64 = 60_000;

/// Longest a webhook agent may take to answer a delivery. Longer work answers 202 and completes
/// over the API later; a queue consumer should not hold a batch for minutes.
pub const WEBHOOK_TIMEOUT_MS: u32 = 15_000;
/// A webhook delivery's lease outlasts the longest answer by this much: the Worker is still
/// waiting for the answer until then, so the lease must not run out under it (the time to
/// build the delivery and write the answer fits in five seconds).
pub const DELIVERY_LEASE_MARGIN_MS: i64 = 5_000;

/// Delay before the queue delivers a message again whose handling failed (D1 or R2 failing,
/// a transition that stayed busy): the message's age, so that the delays double, between a
/// second and a minute. With the consumer's `max_retries` of 10 that rides out several minutes
/// of trouble; after that the sweep re-sends the message (a failure of the Worker never spends
/// an agent's attempt).
pub const QUEUE_RETRY_DELAY_SECONDS_MIN: u32 = 1;
pub const QUEUE_RETRY_DELAY_SECONDS_MAX: u32 = 60;

/// How long an attempt may run, in all (an agent's `step_timeout_ms`, a step's `timeout=`):
/// at least a second, at most a week. A coding agent's longest real tasks take hours; a week
/// means "until someone looks", and past that the step is held for nothing.
pub const STEP_TIMEOUT_MS_MIN: i64 = 1000;
pub const STEP_TIMEOUT_MS_MAX: i64 = 7 * 24 * 3600 * 1000;
/// How long a step may wait to be leased (an agent's `schedule_timeout_ms`, a step's
/// `schedule_timeout=`), by default a day: a step whose agent never comes fails then instead
/// of waiting forever, and a day covers an agent that runs only in working hours. At most 30
/// days, at least a second.
pub const SCHEDULE_TIMEOUT_MS_DEFAULT: i64 = 24 * 3600 * 1000;
pub const SCHEDULE_TIMEOUT_MS_MIN: i64 = 1000;
pub const SCHEDULE_TIMEOUT_MS_MAX: i64 = 30 * 24 * 3600 * 1000;

/// Longest lease an agent may ask for (`lease_ms`), and the shortest: leases are renewed by
/// heartbeats, so an hour without one means the agent is gone.
pub const LEASE_MS_MAX: i64 = 60 * 60 * 1000;
pub const LEASE_MS_MIN: i64 = 1000;

// How the limits relate, checked at compile time: a change that breaks one does not build.
/// How long a session lasts when `SESSION_TTL_SECONDS` is not set: a working day, so a person
/// signs in to the dashboard about once a day and a stolen cookie stops working by the next.
pub const SESSION_TTL_SECONDS_DEFAULT: i64 = 8 * 3600;
/// Longest session `SESSION_TTL_SECONDS` may ask for: 30 days. Longer-lived access is what
/// tokens are for.
pub const SESSION_TTL_SECONDS_MAX: i64 = 30 * 24 * 3600;
/// KV refuses an expiration TTL under 60 seconds; shorter sessions are kept that long in KV and
/// refused by their own `expires_at`.
pub const KV_TTL_SECONDS_MIN: i64 = 60;

/// `Retry-After` of a 429: the rate-limiting bindings count in windows of 10 seconds (see
/// wrangler.jsonc), and the binding does not say when the current one ends, so a client is told
/// to wait one whole window.
pub const RATE_LIMIT_RETRY_AFTER_SECONDS: u32 = 10;

/// Messages one agent may send in a minute: a question a second is an agent stuck in a loop,
/// not a conversation, and every message is a D1 row and maybe a webhook delivery.
pub const MESSAGES_PER_MINUTE_MAX: i64 = 60;
/// Tasks running at once: each holds steps, leases and queue messages; a thousand is far past
/// what a team of agents works through, and the bound keeps a runaway script from filling D1.
pub const TASKS_RUNNING_MAX: i64 = 1_000;

const _: () = {
    // The longest accepted token fits in the longest authorization header read.
    assert!("Bearer ".len() + TOKEN_BYTES_MAX <= AUTHORIZATION_HEADER_BYTES_MAX);
    // An admin token can be both long enough and short enough.
    assert!(ADMIN_TOKEN_BYTES_MIN < TOKEN_BYTES_MAX);
    // Rotation needs an old and a new token at once.
    assert!(ADMIN_TOKENS_MAX >= 2);
    // The default page is a valid page.
    assert!(PAGE_LIMIT_DEFAULT >= 1 && PAGE_LIMIT_DEFAULT <= PAGE_LIMIT_MAX);
    // Workers accept 100 MB request bodies; a JSON body of ours is a small fraction of that.
    assert!(JSON_BODY_BYTES_MAX <= 1024 * 1024);
    // The default attempts are allowed.
    assert!(STEP_ATTEMPTS_DEFAULT >= 1 && STEP_ATTEMPTS_DEFAULT <= STEP_ATTEMPTS_MAX);
    // Queues delay a message by at most 12 hours.
    assert!(RETRY_BACKOFF_BASE_SECONDS >= 1 && RETRY_BACKOFF_CAP_SECONDS <= 12 * 3600);
    // An inline report and a log fit in a completion.
    assert!(REPORT_INLINE_BYTES_MAX + ATTEMPT_LOG_BYTES_MAX <= COMPLETE_BODY_BYTES_MAX);
    assert!(LEASE_MS_MIN < LEASE_MS_MAX);
};

/// Largest `payload` (as JSON): a question or an answer with an example, not a file transfer.
/// Files and large results belong in a step's report, which goes to R2.
pub const MESSAGE_PAYLOAD_BYTES_MAX: usize = 16 * 1024;
/// Longest `correlation_id`: room for a task id plus a suffix, not a place to store data.
pub const CORRELATION_ID_BYTES_MAX: usize = 128;
/// Most messages a lease response carries (the newest of the step's task to the agent): enough
/// for a conversation, while a chatty task cannot make every lease response large. The inbox
/// has them all.
pub const MESSAGES_IN_LEASE_MAX: u32 = 20;

// The parts of a step's brief (core::engine::brief). A part over its bound is offloaded to R2
// whole, never cut; the bounds only keep a lease response and a webhook delivery small enough to
// read at a glance and to parse quickly, and send the rare large part by its own request.

/// The task: title (1 KiB), description and requirements fit with room to spare; a task
/// listing hundreds of long paths is the case that goes over.
pub const BRIEF_TASK_BYTES_MAX: usize = 32 * 1024;
/// The workflow: its overview and one short line per step (at most 64 steps).
pub const BRIEF_WORKFLOW_BYTES_MAX: usize = 16 * 1024;
/// The agent: a typical subagent file's system prompt is 1 to 10 KiB; imports may be 64 KiB.
pub const BRIEF_AGENT_BYTES_MAX: usize = 16 * 1024;
/// The step's own text and blocks: a long step of a real instruction file is a few KiB.
pub const BRIEF_INSTRUCTIONS_BYTES_MAX: usize = 32 * 1024;
/// The reports of the steps a step depends on: a fan-in over several specialists' reports.
pub const BRIEF_INPUTS_BYTES_MAX: usize = 64 * 1024;
/// The report contract: names of records, categories and checklist items of one step.
pub const BRIEF_CONTRACT_BYTES_MAX: usize = 8 * 1024;

// Live output (core::records::live): what a running attempt printed, sent with its heartbeats.

/// Most text one heartbeat carries: a busy command prints this in seconds, and the runner sends
/// the rest with the next heartbeats; the heartbeat body (with JSON escaping) stays well inside
/// the request limit.
pub const LIVE_CHUNK_BYTES_MAX: usize = 32 * 1024;
/// Most live output kept per attempt: beyond it heartbeats carry no more output (413), and the
/// completion's log (its last 512 KiB) still arrives. A command printing more is not being read
/// live by anyone.
pub const LIVE_OUTPUT_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest heartbeat body: a full chunk even if every byte of it needs JSON's six-byte escape.
pub const HEARTBEAT_BODY_BYTES_MAX: usize = LIVE_CHUNK_BYTES_MAX * 6 + 1024;
/// Longest `wait` of a live log read, for the same reason as the lease's.
pub const LOG_WAIT_SECONDS_MAX: u32 = 20;
/// How often a waiting live log read looks for new chunks.
pub const LOG_POLL_INTERVAL_MS: u32 = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_cursor_holds_any_sequence_number() {
        assert!(i64::MAX.to_string().len() <= CURSOR_BYTES_MAX);
    }

    #[test]
    fn idempotency_keys_are_remembered_for_a_day() {
        assert_eq!(IDEMPOTENCY_KEY_RETENTION_MS, 86_400_000);
    }

    #[test]
    fn system_events_are_kept_for_a_week() {
        assert_eq!(SYSTEM_EVENT_RETENTION_MS, 7 * 86_400_000);
    }
}
