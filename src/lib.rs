//! switchyard runs multi-agent software work as durable workflows on Cloudflare's edge.
//!
//! The crate has two halves (see ARCHITECTURE.md):
//!
//! - [`core`] is pure Rust: parsing, routing, errors, limits, ids, health and queue decisions.
//!   It never imports `worker`, never reads a clock and never draws random numbers; time and
//!   randomness are passed in. It compiles and is tested natively with `cargo test`.
//! - `shell` (WebAssembly only) is the thin imperative layer: the Worker's entry points, the
//!   bindings (D1, KV, R2, Queues), the clock and the random source. It decides nothing that the
//!   core could decide.
//!
//! `worker` is a dependency of the WebAssembly target only, so a native build proves that the core
//! does not import it.

pub mod core;

#[cfg(target_arch = "wasm32")]
mod shell;
