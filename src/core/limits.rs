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

// Task analysis and agent selection (core::analysis) read their inputs only up to these bounds;
// the HTTP routes refuse inputs beyond them instead of reading them in part.

/// Bytes of a title or description that are read. The opening 8 KiB (over a thousand words) says
/// what kind of work a task is; a longer description is a spec, and reading all of it would only
/// spend the request's CPU budget on the same answer.
pub const ANALYSIS_TEXT_BYTES_MAX: usize = 8 * 1024;

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

/// Capabilities read per agent: the defaults have at most 25, and a capability list is meant to
/// be read by people too.
pub const AGENT_CAPABILITIES_MAX: usize = 32;

/// Bytes of one capability that are read: capabilities are keywords.
pub const AGENT_CAPABILITY_BYTES_MAX: usize = 64;

/// Bytes of an agent's description that are read for the weakest kind of match: one or two
/// sentences.
pub const SELECT_DESCRIPTION_BYTES_MAX: usize = 1024;

// How the limits relate, checked at compile time: a change that breaks one does not build.
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
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_cursor_holds_any_sequence_number() {
        assert!(i64::MAX.to_string().len() <= CURSOR_BYTES_MAX);
    }

    #[test]
    fn system_events_are_kept_for_a_week() {
        assert_eq!(SYSTEM_EVENT_RETENTION_MS, 7 * 86_400_000);
    }
}
