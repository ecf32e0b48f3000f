//! Integration tests: the real `runbook` binary against real temp workspaces.
//! All of them build into one test binary; `support` holds the one small builder.

mod authoring;
mod config;
mod core;
mod differential;
mod door;
mod git;
mod links;
mod mlflow;
mod output;
mod recovery;
mod review;
mod runbooks;
mod support;
mod validate;
