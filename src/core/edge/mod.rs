//! The HTTP edge: what a request may be and what a response looks like, decided without the
//! runtime. The route table and its access rules, the one error enum and its mapping to
//! statuses, responses and their security headers, body parsing and content negotiation, bearer
//! tokens, sessions, CORS, rate-limit keys, paging, the health verdict and the OpenAPI document.
//!
//! It uses only [`base`](super::base). It must never know what a workflow, an agent or a step is:
//! handlers in the shell turn requests into calls on the registry, the records and the engine.

pub mod auth;
pub mod cors;
pub mod error;
pub mod health;
pub mod http;
pub mod openapi;
pub mod paging;
pub mod rate_limit;
pub mod response;
pub mod routes;
pub mod sessions;
