//! What agents did, written down: their reports, per-agent logs, task summaries, performance
//! metrics, agent-to-agent messages, and the documents finished tasks are archived as.
//!
//! It uses [`base`](super::base), [`edge`](super::edge) and [`registry`](super::registry) (a
//! summary reads the workflow's blocks). It must never decide what runs next: it describes what
//! has happened, and everything it renders comes from a report or a step, never a guess.

pub mod agent_log;
pub mod archive;
pub mod live;
pub mod messages;
pub mod metrics;
pub mod report;
pub mod summary;
