//! The pure core of switchyard.
//!
//! Everything here is deterministic: the same inputs give the same outputs. Nothing in this
//! module tree may import `worker`, read a clock, draw random numbers or do I/O; the shell passes
//! in `now`, random bytes and binding results, and performs the effects the core describes.

pub mod agent_log;
pub mod agents;
pub mod analysis;
pub mod auth;
pub mod bindings;
pub mod cors;
pub mod default_agents;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod health;
pub mod http;
pub mod ids;
pub mod instructions;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod queue;
pub mod rate_limit;
pub mod report;
pub mod routes;
pub mod sessions;
pub mod summary;
pub mod system;
pub mod task_api;
pub mod time;
pub mod webhook;
pub mod workflow;
