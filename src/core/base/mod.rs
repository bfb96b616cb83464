//! The vocabulary every other group of the core uses: sortable ids, timestamps, every named
//! limit, the names of bindings and secrets, the encodings of tokens and hashes, and a memo
//! whose entries expire.
//!
//! Nothing here imports another group of the core; these modules know no routes, no workflows
//! and no steps.

pub mod bindings;
pub mod encoding;
pub mod ids;
pub mod limits;
pub mod memo;
pub mod time;
