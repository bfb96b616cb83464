//! The pure core of switchyard.
//!
//! Everything here is deterministic: the same inputs give the same outputs. Nothing in this
//! module tree may import `worker`, read a clock, draw random numbers or do I/O; the shell passes
//! in `now`, random bytes and binding results, and performs the effects the core describes.
//!
//! The groups are layered, each using only the ones above it in this list:
//!
//! - [`base`]: ids, time, limits, binding names, encodings: the vocabulary of every other group;
//! - [`edge`]: the HTTP edge: routes, the one error enum, responses, auth, sessions, CORS, rate
//!   limits, paging, health and the API description;
//! - [`registry`]: instruction files, workflows, agents and the analysis that picks them;
//! - [`records`]: what agents report and what switchyard writes down: reports, logs, summaries,
//!   metrics and messages;
//! - [`engine`]: the step state machine and what feeds it: task request bodies, queue messages,
//!   the cron plan and webhook signatures.

pub mod base;
pub mod edge;
pub mod engine;
pub mod records;
pub mod registry;
