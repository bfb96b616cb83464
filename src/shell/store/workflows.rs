//! Workflow versions and loading the defaults once per installation.

use serde::Deserialize;
use worker::{D1Database, D1PreparedStatement, D1Result, Result};

use super::agents::{all_agents_statement, insert_agent_statement, AgentRow};
use super::{int, text_or_null, trip, Statement};
use crate::core::base::time::Timestamp;
use crate::core::registry::agents::AgentSpec;

/// The settings key recording that the defaults were loaded once.
const DEFAULTS_LOADED: &str = "defaults_loaded";

/// A stored workflow version.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRow {
    pub id: String,
    pub version: i64,
    pub definition: String,
    pub created_at: i64,
}

/// Stores a new version of workflow `name`: one more than the latest, decided inside the
/// statement, so two concurrent posts cannot get the same number (the UNIQUE index would refuse
/// the second). Returns the version given.
pub async fn insert_workflow(
    db: &D1Database,
    id: &str,
    name: &str,
    definition: &str,
    source: Option<&str>,
    now: Timestamp,
) -> Result<i64> {
    #[derive(Deserialize)]
    struct Version {
        version: i64,
    }
    // One statement is atomic, so two posts cannot take the same number; should a database ever
    // interleave them, the UNIQUE index refuses the second, which then takes the next number.
    let mut attempts_left = 3;
    loop {
        trip()?;
        let inserted: Result<Option<Version>> = db
            .statement(
                "INSERT INTO workflows (id, name, version, definition, source, created_at)
                 SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5 FROM workflows WHERE name = ?2
                 RETURNING version",
            )
            .bind(&[id.into(), name.into(), definition.into(), text_or_null(source), int(now.as_millis())])?
            .first(None)
            .await;
        match inserted {
            Ok(row) => {
                return row
                    .map(|r| r.version)
                    .ok_or_else(|| worker::Error::RustError("insert returned no version".into()))
            }
            Err(err) if attempts_left > 1 && err.to_string().contains("UNIQUE constraint failed: workflows.name") => {
                attempts_left -= 1;
            }
            Err(err) => return Err(err),
        }
    }
}

const WORKFLOW_COLUMNS: &str = "id, version, definition, created_at";

pub async fn latest_workflow(db: &D1Database, name: &str) -> Result<Option<WorkflowRow>> {
    trip()?;
    db.statement(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY version DESC LIMIT 1"))
        .bind(&[name.into()])?
        .first(None)
        .await
}

/// The latest version of each of `names` that is posted, by name, in one round trip.
pub async fn latest_workflows(db: &D1Database, names: &[String]) -> Result<Vec<(String, WorkflowRow)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let statements = latest_statements(db, names)?;
    trip()?;
    latest_of(names, db.batch(statements).await?)
}

/// One statement per name, reading its latest version.
fn latest_statements(db: &D1Database, names: &[String]) -> Result<Vec<D1PreparedStatement>> {
    let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY version DESC LIMIT 1");
    names.iter().map(|name| db.statement(&sql).bind(&[name.as_str().into()])).collect()
}

/// What [`latest_statements`] read, by name; a name nothing is posted under is left out.
fn latest_of(names: &[String], results: impl IntoIterator<Item = D1Result>) -> Result<Vec<(String, WorkflowRow)>> {
    let mut found = Vec::new();
    for (name, result) in names.iter().zip(results) {
        found.extend(result.results::<WorkflowRow>()?.into_iter().next().map(|row| (name.clone(), row)));
    }
    Ok(found)
}

/// A workflow (its latest version, or `version`) and every registered agent, in one round trip:
/// what a submission or an analysis needs before it can decide anything. With them, the latest
/// versions of the posted files named `also` (as [`latest_workflows`] reads them).
pub async fn workflow_and_agents(
    db: &D1Database,
    name: &str,
    version: Option<i64>,
    also: &[String],
) -> Result<(Option<WorkflowRow>, Vec<AgentRow>, Vec<(String, WorkflowRow)>)> {
    let workflow = match version {
        Some(version) => db
            .statement(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 AND version = ?2"))
            .bind(&[name.into(), int(version)])?,
        None => db
            .statement(format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(&[name.into()])?,
    };
    let mut statements = vec![workflow, all_agents_statement(db)?];
    statements.extend(latest_statements(db, also)?);
    trip()?;
    let mut results = db.batch(statements).await?.into_iter();
    let (Some(workflow), Some(agents)) = (results.next(), results.next()) else {
        return Err(worker::Error::RustError("D1 answered a batch of two statements with fewer results".into()));
    };
    Ok((workflow.results::<WorkflowRow>()?.into_iter().next(), agents.results()?, latest_of(also, results)?))
}

pub async fn workflow_version(db: &D1Database, name: &str, version: i64) -> Result<Option<WorkflowRow>> {
    trip()?;
    db.statement(format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 AND version = ?2"))
        .bind(&[name.into(), int(version)])?
        .first(None)
        .await
}

/// A workflow in a list: its latest version, summarised.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowSummaryRow {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub steps: i64,
    pub created_at: i64,
}

/// One page of workflows by name (latest version of each), after `after` (exclusive).
pub async fn list_workflows(db: &D1Database, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowSummaryRow>> {
    trip()?;
    db.statement(
        "SELECT id, name, version, json_extract(definition, '$.title') AS title,
                json_extract(definition, '$.description') AS description,
                json_array_length(definition, '$.steps') AS steps, created_at
         FROM workflows w
         WHERE name > ?1 AND version = (SELECT MAX(version) FROM workflows WHERE name = w.name)
         ORDER BY name LIMIT ?2",
    )
    .bind(&[after.unwrap_or("").into(), int(i64::from(limit))])?
    .all()
    .await?
    .results()
}

/// A workflow or rules file loaded on first start, with its stored definition (JSON).
pub struct DefaultWorkflow<'a> {
    pub id: String,
    pub name: &'a str,
    pub definition: String,
    pub source: &'a str,
}

/// Loads the default agents and workflows, once per installation: every statement is guarded by
/// the settings marker the batch itself writes, so concurrent first requests load them once,
/// and a default an operator deleted later is not loaded again.
pub async fn load_defaults(
    db: &D1Database,
    agents: &[AgentSpec],
    workflows: &[DefaultWorkflow<'_>],
    now: Timestamp,
) -> Result<()> {
    trip()?;
    let not_loaded = format!("AND NOT EXISTS (SELECT 1 FROM settings WHERE key = '{DEFAULTS_LOADED}')");
    let mut statements = Vec::new();
    for agent in agents {
        statements.push(insert_agent_statement(db, agent, None, now, &not_loaded)?);
    }
    for workflow in workflows {
        statements.push(
            db.statement(format!(
                "INSERT INTO workflows (id, name, version, definition, source, created_at)
                 SELECT ?1, ?2, 1, ?3, ?4, ?5
                 WHERE NOT EXISTS (SELECT 1 FROM workflows WHERE name = ?2) {not_loaded}"
            ))
            .bind(&[
                workflow.id.as_str().into(),
                workflow.name.into(),
                workflow.definition.as_str().into(),
                workflow.source.into(),
                int(now.as_millis()),
            ])?,
        );
    }
    statements.push(
        db.statement("INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING")
            .bind(&[DEFAULTS_LOADED.into(), now.to_rfc3339().into(), int(now.as_millis())])?,
    );
    db.batch(statements).await?;
    Ok(())
}
