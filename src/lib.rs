//! `runbook` runs rollback procedures written as versioned Rhai scripts.
//!
//! The host registers primitives (model registry, filesystem, git, processes, validation)
//! into an embedded Rhai engine and runs a runbook step by step, logging every step and every
//! action to `.runbook/runs/<run-id>.jsonl`. Every change to the workspace goes through one
//! door ([`effects::Workspace::perform`]), which performs it in a real run, simulates it in
//! an in-memory overlay in a dry run, and journals it either way. See `ARCHITECTURE.md` for the map of the code and its invariants.
//!
//! Embedding: [`embed::Runner`] runs a runbook ([`runner::RunOptions`]) with the shipped
//! primitives and families of the program's own, which reach the workspace through the
//! same door.

pub mod cli;
pub mod context;
pub mod demo;
pub mod document;
pub mod effects;
pub mod embed;
pub mod engine;
pub mod error;
pub mod header;
pub mod output;
pub mod primitives;
pub mod registry;
pub mod runner;
pub mod validation;

pub use error::{Error, Result};
