//! The vocabulary every other group of the core uses: sortable ids, timestamps, every named
//! limit, the names of bindings and secrets, and the encodings of tokens and hashes.
//!
//! Nothing here imports another group of the core; these modules know no routes, no workflows
//! and no steps.

pub mod bindings;
pub mod encoding;
pub mod ids;
pub mod limits;
pub mod time;
