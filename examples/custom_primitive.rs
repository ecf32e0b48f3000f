//! Embed runbook in a program of your own and give runbooks a primitive of yours: here
//! `ticket::open(title)`, which files an incident ticket as `tickets/<run-id>.md` in the
//! workspace. It changes the workspace only through the effect door, so a dry run shows the
//! ticket and writes nothing, and the run log records it like any shipped primitive.
//!
//! Usage: `cargo run --example custom_primitive -- WORKSPACE [--dry-run]`; with no
//! WORKSPACE it makes a demo workspace in a temp directory. It runs a small runbook that
//! opens a ticket for the production model, and prints where the ticket is.

use runbook::embed::{Ctx, Effect, Family, Record, RunOptions, Runner};
use std::process::ExitCode;

/// The `ticket::` family: built for each run from its context, like the shipped families.
fn tickets(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "ticket",
        "Incident tickets kept in the workspace's `tickets/`.",
    );
    let c = ctx.clone();
    f.add(
        "open",
        &["title: &str", "String"],
        "Open an incident ticket `tickets/<run-id>.md` titled `title`; returns its path.\n```rhai\nlet t = ticket::open(\"sl_forecaster rolled back\");\n```",
        move |title: &str| -> Result<String, Box<rhai::EvalAltResult>> {
            let rel = c
                .ws
                .resolve_writable(&format!("tickets/{}.md", c.ws.run_id()))
                .map_err(|e| c.fail(e))?;
            let text = format!("# {title}\n\nopened by run {}\n", c.ws.run_id());
            c.ws.perform(
                Effect::Write {
                    path: rel.clone(),
                    bytes: text.into_bytes(),
                },
                |_| {
                    Record::new(
                        "ticket.open",
                        serde_json::json!({"path": rel.as_str(), "title": title}),
                        format!("open ticket `{rel}`: {title}"),
                    )
                },
            )
            .map_err(|e| c.fail(e))?;
            Ok(rel.as_str().to_string())
        },
    );
    f
}

const RUNBOOK: &str = r#"//! name: open_ticket
//! version: 1.0.0
//! description: Open an incident ticket for the production model (uses the custom ticket:: primitive).
//! param model: string = sl_forecaster -- registry name of the model

let prod = step "Find the production version" {
    let prod = registry::production(params.model);
    assert(prod != (), `no production version of ${params.model}`);
    prod
};

step "Open the ticket" {
    let t = ticket::open(`${params.model} ${prod.version} under investigation`);
    print(`ticket: ${t}`);
}
"#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dry_run = args.iter().any(|a| a == "--dry-run");
    let scratch = tempfile::tempdir().expect("a temp directory");
    let workspace = match args.iter().find(|a| !a.starts_with("--")) {
        Some(w) => std::path::PathBuf::from(w),
        None => {
            let w = scratch.path().join("ws");
            if let Err(e) = runbook::demo::create_workspace(&w, Default::default()) {
                eprintln!("{}", e.render());
                return ExitCode::from(1);
            }
            w
        }
    };
    // The runbook lives outside the workspace, as a team's own runbooks may.
    let file = scratch.path().join("open_ticket.rhai");
    std::fs::write(&file, RUNBOOK).expect("write the runbook");
    let mut opts = RunOptions::new(&file, &workspace);
    opts.dry_run = dry_run;
    match Runner::new().family(tickets).run(&opts) {
        Ok(outcome) => {
            println!(
                "run {} ok; workspace {}",
                outcome.run_id,
                workspace.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.code() as u8)
        }
    }
}
