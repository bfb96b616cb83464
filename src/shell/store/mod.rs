//! All SQL switchyard runs, each statement next to the function that runs it, with bound
//! parameters only. Times are INTEGER milliseconds since the epoch.
//!
//! Functions here translate between rows and core values and nothing else: no decisions, no
//! HTTP. A multi-statement change is one `batch`, which D1 runs as one transaction.
//!
//! One file per aggregate; this one holds the helpers they share and re-exports every
//! function and row type, so callers name them `store::...` wherever the SQL lives. Every
//! statement is prepared with `Statement::statement`, so that the tests can check the query
//! plan of each one (`tests/checks/query-plans.mjs`): none may scan a table that grows.

mod agents;
mod archive;
mod messages;
mod records;
mod system;
mod tasks;
mod workflows;

pub use agents::*;
pub use archive::*;
pub use messages::*;
pub use records::*;
pub use system::*;
pub use tasks::*;
pub use workflows::*;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Result};

use crate::core::base::time::Timestamp;

/// Every statement on a request path is prepared through this, so that the test-only
/// `GET /__test/statements` can list each one with where it was prepared and its query plan.
trait Statement {
    fn statement(&self, sql: impl AsRef<str>) -> D1PreparedStatement;
}

impl Statement for D1Database {
    #[track_caller]
    fn statement(&self, sql: impl AsRef<str>) -> D1PreparedStatement {
        let sql = sql.as_ref();
        let site = Location::caller();
        RECORDED.with(|recorded| {
            if let Some(recorded) = recorded.borrow_mut().as_mut() {
                recorded.insert((format!("{}:{}", site.file(), site.line()), sql.to_string()));
            }
        });
        self.prepare(sql)
    }
}

thread_local! {
    /// Each place in the store (`file:line`) with each distinct text it prepared since
    /// recording was switched on. `None` (and nothing kept) unless the test routes are enabled.
    static RECORDED: RefCell<Option<BTreeSet<(String, String)>>> = const { RefCell::new(None) };
}

/// Starts recording the statements this isolate prepares (test-only; the caller checks that
/// the test routes are enabled). Idempotent: what was recorded is kept.
pub fn record_statements() {
    RECORDED.with(|recorded| {
        recorded.borrow_mut().get_or_insert_with(BTreeSet::new);
    });
}

/// How many parameters `sql` takes: the highest `?N`, or the count of bare `?`.
fn parameter_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut bare = 0;
    let mut numbered = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if *byte != b'?' {
            continue;
        }
        let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
        match digits.parse::<usize>() {
            Ok(n) => numbered = numbered.max(n),
            Err(_) => bare += 1,
        }
    }
    numbered.max(bare)
}

/// Each recorded statement with where it was prepared and SQLite's plan for it, read with
/// `EXPLAIN QUERY PLAN` in one batch, every parameter bound to NULL (the plan does not depend
/// on the values). Test-only.
pub async fn statement_plans(db: &D1Database) -> Result<Vec<serde_json::Value>> {
    #[derive(Deserialize)]
    struct PlanRow {
        detail: String,
    }
    let recorded = RECORDED.with(|recorded| recorded.borrow().clone().unwrap_or_default());
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let explains = recorded
        .iter()
        .map(|(_, sql)| {
            db.prepare(format!("EXPLAIN QUERY PLAN {sql}")).bind(&vec![JsValue::NULL; parameter_count(sql)])
        })
        .collect::<Result<Vec<_>>>()?;
    trip()?;
    let results = db.batch(explains).await?;
    recorded
        .into_iter()
        .zip(results)
        .map(|((site, sql), result)| {
            let plan: Vec<PlanRow> = result.results()?;
            let plan = plan.into_iter().map(|row| row.detail).collect::<Vec<_>>();
            Ok(serde_json::json!({"site": site, "sql": sql, "plan": plan}))
        })
        .collect()
}

fn int(value: i64) -> JsValue {
    // Exact: every integer we store (times, sequence numbers) is far below 2^53.
    JsValue::from_f64(value as f64)
}

/// A cheap query that fails unless switchyard's schema is in place; used by `GET /health`.
pub async fn check_schema(db: &D1Database) -> Result<()> {
    trip()?;
    // A lookup by key, not `LIMIT 1`: the plan check forbids scans of growing tables.
    db.statement("SELECT seq FROM events WHERE seq = 0").all().await?;
    Ok(())
}

/// A count from a report: bounded far below 2^53 by the report's limits.
fn report_count(value: u64) -> JsValue {
    int(i64::try_from(value).unwrap_or(i64::MAX))
}

fn text_or_null(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from)
}

// ---------------------------------------------------------------------------------------------
// Tasks, steps and attempts: the execution engine's state.
// ---------------------------------------------------------------------------------------------

/// D1 round trips made by this isolate since it started (a query or a batch is one), for the
/// benchmark's "round trips per transition".
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Counts a D1 round trip about to be made, and fails it if a test armed a fault there.
fn trip() -> Result<()> {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
    super::faults::check(super::faults::Point::D1)
}

/// [`trip`] for the batch that writes a change of a task, which a test can also fail or hold
/// (make it wait for its release) as `change_write`.
async fn change_trip() -> Result<()> {
    trip()?;
    super::faults::check(super::faults::Point::ChangeWrite)?;
    super::faults::wait_if_held(super::faults::Point::ChangeWrite).await;
    Ok(())
}

pub fn round_trips() -> u64 {
    ROUND_TRIPS.load(Ordering::Relaxed)
}

fn opt_int(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, int)
}

fn opt_time(value: Option<Timestamp>) -> JsValue {
    opt_int(value.map(Timestamp::as_millis))
}

fn time(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::saturating_from_millis)
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The tables the test-only row routes read.
const TABLES: [&str; 12] = [
    "agents",
    "settings",
    "workflows",
    "tasks",
    "steps",
    "attempts",
    "events",
    "messages",
    "summaries",
    "idempotency_keys",
    "archived_tasks",
    "agent_days",
];

/// One statement per table of [`TABLES`], in one batch; each result with its table. Test-only
/// and a full scan by design, so not prepared through [`Statement`].
async fn per_table(db: &D1Database, sql: impl Fn(&str) -> String) -> Result<Vec<(&'static str, D1Result)>> {
    let statements = TABLES.iter().map(|table| db.prepare(sql(table))).collect::<Vec<_>>();
    trip()?;
    Ok(TABLES.into_iter().zip(db.batch(statements).await?).collect())
}

/// Every table's rows, in a fixed order, each table as a SHA-256 of its rows' JSON: two reads
/// are equal only if no row was added, removed or changed (test-only).
pub async fn row_digests(db: &D1Database) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut digests = serde_json::Map::new();
    for (table, result) in per_table(db, |table| format!("SELECT * FROM {table} ORDER BY rowid")).await? {
        let rows: Vec<serde_json::Value> = result.results()?;
        let text = serde_json::Value::Array(rows).to_string();
        digests.insert(table.to_string(), crate::core::base::encoding::sha256_hex(text.as_bytes()).into());
    }
    Ok(digests)
}

/// Every table's row count, by table (for the test-only `/__test/row-counts`).
pub async fn row_counts(db: &D1Database) -> Result<serde_json::Map<String, serde_json::Value>> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let mut counts = serde_json::Map::new();
    for (table, result) in per_table(db, |table| format!("SELECT COUNT(*) AS n FROM {table}")).await? {
        let rows: Vec<Count> = result.results()?;
        counts.insert(table.to_string(), rows.first().map_or(0, |c| c.n).into());
    }
    Ok(counts)
}
