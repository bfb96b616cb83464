//! Which tasks a caller may read. An admin reads every task; an agent reads the tasks in which
//! it holds or held a step (leased or delivered at least once), so that it can look up the
//! context of its own work: the task, its events, its logs, summary and metrics.
//!
//! Any other task answers 404 with the same body as a task that does not exist, so an agent
//! learns nothing about work that is not its own (not even that it exists). This module decides
//! only reads; what an agent may change is decided by the engine (leases, completions).

use super::call::{task_id_param, Call, Failed};
use super::store;
use crate::core::base::bindings;
use crate::core::edge::auth::Principal;
use crate::core::edge::error::ApiError;

/// The task id of the path, once the caller may read that task.
pub(super) async fn readable_task(call: &Call<'_>) -> Result<String, Failed> {
    let task_id = task_id_param(call)?;
    if let Some(Principal::Agent(agent)) = &call.principal {
        let db = call.env.d1(bindings::DB)?;
        if !store::agent_worked_on(&db, &task_id, agent).await? {
            return Err(ApiError::NotFound { message: format!("no task {task_id}") }.into());
        }
    }
    Ok(task_id)
}
