//! What can run and who can run it: Agent OS instruction files parsed into workflows, agents and
//! their validation (Claude Code subagent files among them), the default agents, and the analysis
//! that classifies a task and picks its agents.
//!
//! It uses [`base`](super::base) and [`edge`](super::edge) (for its error details). It must never
//! know about a task's run: steps, leases and attempts belong to the engine.

pub mod agents;
pub mod analysis;
pub mod child_runs;
pub mod default_agents;
pub mod instructions;
pub mod workflow;
