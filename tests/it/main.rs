//! Integration tests: the real `runbook` binary against real temp workspaces.
//! All of them build into one test binary; `support` holds the one small builder.

mod config;
mod core;
mod git;
mod output;
mod support;
mod validate;
