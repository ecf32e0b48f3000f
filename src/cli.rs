//! The command line: clap definitions, turned into validated options, dispatched to the
//! library. Nothing below this module sees raw flags, and nothing here touches a workspace.
//! Everything it prints goes through [`crate::output`], so a closed stdout ends a command
//! quietly instead of with a panic.

use crate::effects::Console;
use crate::effects::Durability;
use crate::error::{Error, Result};
use crate::output::{errln, out, outln};
use crate::runner::{self, RunOptions};
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// The default `--timeout`: long enough for any rollback, short enough that a hung script
/// does not hold an incident hostage.
pub const DEFAULT_TIMEOUT: &str = "10m";

#[derive(Parser, Debug)]
#[command(
    name = "runbook",
    version,
    about = "Run rollback procedures written as versioned Rhai scripts, with a step log and a faithful dry run.",
    long_about = "Run rollback procedures written as versioned Rhai scripts.\n\n\
        A runbook is a `.rhai` file with a `//!` header (name, version, description, parameters) and \
        `step \"name\" { ... }` blocks that call primitives: `registry::`, `fs::`, `process::` and more \
        (`runbook docs` lists them). Every run writes a JSON Lines log to `.runbook/runs/<run-id>.jsonl` \
        in the workspace; removed and overwritten files go to `.runbook/trash/<run-id>/`.",
    after_help = "Examples:\n  runbook demo                                   build a demo workspace and roll it back\n  runbook run runbooks/full_rollback.rhai --dry-run   show what a rollback would do\n  runbook run runbooks/full_rollback.rhai --param model=sl_forecaster\n  runbook check runbooks/*.rhai\n  runbook trash list\n\nExit codes: 0 success, 1 the runbook failed (step error, assertion, timeout, refused action), 2 usage error or a script that does not compile."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour statuses and changes: `auto` (on a terminal, unless `NO_COLOR` is set),
    /// `always` or `never`.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a runbook against a workspace.
    #[command(
        after_help = "Every path a primitive takes is relative to the workspace. In a dry run no byte of the workspace changes (except the run log under .runbook/), yet later steps see the state earlier steps would have produced; the run ends with the plan, grouped by kind."
    )]
    Run {
        /// The runbook file, e.g. runbooks/full_rollback.rhai.
        file: PathBuf,
        /// The workspace the runbook works on.
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Show what would happen, change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Set a parameter the runbook declares in its header (repeatable).
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Stop the run after this long (500ms, 30s, 5m, 1h); `0` or `none` disables it.
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
        timeout: String,
        /// Print nothing but errors; the run log is still written.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// When changes are forced to disk: `end` fsyncs what the run wrote once, before it
        /// reports success, `each` fsyncs every write (slower, survives a power cut mid-run),
        /// `none` leaves it to the OS. Writes are atomic (temp file + rename) in every mode.
        #[arg(long, value_name = "WHEN", default_value = "end", value_parser = ["end", "each", "none"])]
        sync: String,
        /// With --dry-run: write the state the dry run ends with to FILE as JSON (every file
        /// it would change: its new text, or sha256 for binary and large files; null for
        /// removed), to compare with a real run. FILE must be outside the workspace.
        #[arg(long, value_name = "FILE", requires = "dry_run")]
        dry_run_state: Option<PathBuf>,
        /// Run no program at all (external predictors): each is refused, naming it.
        #[arg(long)]
        no_exec: bool,
        /// Write a Markdown report of the run (steps, effects, metrics, time against the
        /// plan's estimate, success criteria) to FILE, outside the workspace.
        #[arg(long, value_name = "FILE.md")]
        report: Option<PathBuf>,
        /// Run even though an earlier run on this workspace did not finish (was killed);
        /// it is left as it is. Prefer `runbook resume RUN_ID` or `runbook undo RUN_ID`.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        review: ReviewFlags,
    },
    /// Finish a run that was killed: replay what it did (checked against its journal,
    /// nothing repeated), then go on. Same runbook (refused if it changed), same parameters.
    Resume {
        /// The run id, as the refusal or `ls .runbook/runs` names it.
        run_id: String,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Print nothing but errors.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Resume although another run on the workspace did not finish either.
        #[arg(long)]
        force: bool,
    },
    /// The runs of a workspace, newest first (a run that did not finish is marked), or one
    /// run's steps and effects.
    Log {
        /// Show this run's steps and effects.
        run_id: Option<String>,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Show the newest run.
        #[arg(long)]
        last: bool,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Revert what a run changed (completed, failed or killed), newest change first: files
    /// back out of the trash, the registry and configs as they were. Itself a run: logged,
    /// with its own trash; refused if the workspace changed since, unless --force.
    Undo {
        run_id: String,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Show what would be reverted, change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Undo even though the workspace changed since the run.
        #[arg(long)]
        force: bool,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Make a plan to review: a dry run whose effects, and the state of everything it read,
    /// are saved for `runbook apply`.
    #[command(
        after_help = "The plan file (-o) is JSON: the runbook (path, name, version, sha256), the parameters, each step with its effects, checks and messages, and a fingerprint of what the dry run read (files, listings, globs, git HEAD and dirty paths, registry entries). The same workspace and runbook give the same file byte for byte except `created_at`. `<timestamp>` and `<run-id>` stand for the real run's start time and id."
    )]
    Plan {
        /// The runbook file, e.g. runbooks/full_rollback.rhai.
        file: PathBuf,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Set a parameter the runbook declares in its header (repeatable).
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Save the plan (JSON) to FILE, outside the workspace, for `runbook apply FILE`.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// How to show the plan on stdout: `text`, `markdown` (for a pull request) or `json`.
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "markdown", "json"])]
        format: String,
        /// Stop the dry run after this long; `0` disables it.
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
        timeout: String,
        /// Run no program at all (external predictors).
        #[arg(long)]
        no_exec: bool,
    },
    /// Run a saved plan for real: refused if its runbook or anything it read changed; stopped
    /// before any effect that differs from the planned one.
    Apply {
        /// The plan file `runbook plan -o` wrote.
        plan: PathBuf,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
        /// Apply without asking; needed when there is no terminal to ask on.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print nothing but errors.
        #[arg(long, short = 'q')]
        quiet: bool,
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
        timeout: String,
    },
    /// Show a runbook as a procedure to follow by hand: header, parameters, steps in order
    /// with their comments and calls. Reads the script; runs nothing.
    View {
        /// The runbook file.
        file: PathBuf,
        /// `text` (the default) or `markdown`.
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "markdown"])]
        format: String,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "bash: runbook completions bash > ~/.local/share/bash-completion/completions/runbook
zsh:  runbook completions zsh > ~/.zfunc/_runbook"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `runbook man > runbook.1; man ./runbook.1`.
    Man,
    /// Parse and check runbooks without running them: header, syntax, calls to primitives.
    Check {
        /// Runbook files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// List the runbooks in a directory with name, version, description and parameters.
    List {
        /// Directory of runbooks.
        #[arg(default_value = "runbooks")]
        dir: PathBuf,
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Copy a shipped runbook and the helpers it imports into the workspace's `runbooks/`
    /// for editing (never overwrites); `runbook run NAME` then runs the copy.
    Eject {
        /// The shipped runbook, such as `full_rollback`.
        name: String,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
    },
    /// Start a new runbook `runbooks/NAME.rhai` in the workspace from a template that
    /// `runbook check` accepts and `runbook run NAME --dry-run` runs.
    New {
        /// The new runbook's name: lower-case letters, digits and `_`.
        name: String,
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
    },
    /// Print the reference of every primitive: signature, description, example.
    Docs {
        #[command(flatten)]
        format: FormatFlag,
    },
    /// Create a demo workspace (no Python needed) and run the full rollback in it.
    #[command(
        after_help = "The demo workspace holds a model registry with five versions of `sl_forecaster` (v5 in production and broken), model files, configs, validation data, runbooks, and a git history. It is created in DIR, or in a new temp directory."
    )]
    Demo {
        /// Where to create the workspace (must not exist or be empty); default: a temp directory.
        dir: Option<PathBuf>,
        /// Run the rollback as a dry run.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Only create the workspace; do not run anything.
        #[arg(long)]
        no_run: bool,
        /// Versions of `sl_forecaster` in the registry (the newest is production).
        #[arg(long, default_value_t = 5, value_name = "N")]
        versions: usize,
        /// Rows of validation data.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        rows: usize,
        /// Old files to put under `models/archive/` (for scale tests).
        #[arg(long, default_value_t = 0, value_name = "N")]
        extra_files: usize,
    },
    /// Remove the lock a run left in the registry server (MLflow store) when it died.
    #[command(
        after_help = "A real run that uses the MLflow store holds a lock in the server (the registered model `runbook.lock`, naming its run id, host, pid and expiry) and releases it when it ends. A run that was killed leaves it until it expires (`registry.lock_ttl`, default 15m); this removes it at once. Make sure the run it names is gone first."
    )]
    Unlock {
        /// The workspace whose `runbook.yaml` names the registry server.
        #[arg(long, short = 'w', value_name = "DIR", default_value = ".")]
        workspace: PathBuf,
    },
    /// Inspect, restore or purge files that runs removed or overwrote.
    Trash {
        #[command(subcommand)]
        action: TrashAction,
        /// The workspace whose trash to use.
        #[arg(
            long,
            short = 'w',
            value_name = "DIR",
            default_value = ".",
            global = true
        )]
        workspace: PathBuf,
    },
}

/// What `runbook run` takes for the review workflow (issue 10): output format and
/// confirmation.
#[derive(clap::Args, Debug)]
struct ReviewFlags {
    /// `text` for people (the default), or `json`: one document on stdout at the end.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Show the plan and ask before a real run (on a terminal; without one, needs --yes).
    #[arg(long)]
    confirm: bool,
    /// Ask before each top-level step: yes, skip or abort (needs a terminal).
    #[arg(long)]
    step: bool,
    /// Run without asking, even when the runbook's header says `confirm: true`.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// `--format` of the commands that only print (`check`, `list`, `log`, `docs`).
#[derive(clap::Args, Debug)]
struct FormatFlag {
    /// `text` (the default) or `json`: one JSON document on stdout.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

impl FormatFlag {
    fn json(&self) -> bool {
        self.format == "json"
    }
}

#[derive(Subcommand, Debug)]
enum TrashAction {
    /// List what each run put in the trash.
    List,
    /// Move files from a run's trash back to where they were (never overwrites).
    Restore {
        /// The run id (see `runbook trash list`).
        run_id: String,
        /// Only these workspace paths (default: everything from that run).
        paths: Vec<String>,
    },
    /// Delete a run's trash for good (or all of it with --all).
    Purge {
        /// The run id to purge.
        run_id: Option<String>,
        /// Purge the trash of every run.
        #[arg(long)]
        all: bool,
        /// Purge the runs older than this (by the time in their run id): `7d`, `12h`, `30m`.
        #[arg(long, value_name = "DURATION", value_parser = crate::runner::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

fn parse_param(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

fn parse_timeout(text: &str) -> Result<Option<Duration>> {
    match text.trim() {
        "0" | "none" | "off" => Ok(None),
        t => runner::parse_duration(t)
            .map(Some)
            .map_err(|e| Error::Usage(format!("--timeout: {e}"))),
    }
}

/// Entry point of the binary: returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    crate::output::set_color(&cli.color);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            errln!("{}", e.render());
            e.code()
        }
    }
}

fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run {
            file,
            workspace,
            dry_run,
            params,
            timeout,
            quiet,
            sync,
            dry_run_state,
            force,
            no_exec,
            review,
            report,
        } => {
            let opts = RunOptions {
                no_exec,
                report,
                file,
                workspace,
                dry_run,
                dry_run_state,
                force,
                params,
                timeout: parse_timeout(&timeout)?,
                console: if quiet {
                    Console::Quiet
                } else {
                    Console::Stdout
                },
                durability: match sync.as_str() {
                    "each" => Durability::EachWrite,
                    "none" => Durability::None,
                    _ => Durability::EndOfRun,
                },
            };
            // The process exits right after: no teardown of the engine.
            runner::LEAVE_AT_EXIT.store(true, std::sync::atomic::Ordering::Relaxed);
            runner::review::run_command(
                opts,
                runner::review::RunExtras {
                    format: runner::format::Format::parse(&review.format),
                    confirm: review.confirm,
                    step: review.step,
                    yes: review.yes,
                },
            )
        }
        Command::Check { files, format } => {
            if format.json() {
                return runner::review::check_json(&files);
            }
            let mut failed = 0;
            for f in &files {
                match runner::check(f) {
                    Ok(c) => match &c.header {
                        Some(h) => outln!(
                            "ok  {}  ({} {}, {} step(s))",
                            f.display(),
                            h.name,
                            h.version,
                            c.steps
                        ),
                        None => outln!(
                            "ok  {}  (helper module, {} function(s))",
                            f.display(),
                            c.functions
                        ),
                    },
                    Err(e) => {
                        failed += 1;
                        errln!("{}", e.render());
                    }
                }
            }
            Ok(if failed > 0 { 2 } else { 0 })
        }
        Command::List { dir, format } => {
            if format.json() {
                return runner::review::list_json(&dir);
            }
            let listed = runner::list(&dir)?;
            if listed.is_empty() {
                outln!("no runbooks (*.rhai) in `{}`", dir.display());
            }
            for l in listed {
                match l.header {
                    Ok(h) => {
                        outln!(
                            "{}  {} {}  ({})\n    {}",
                            l.path.display(),
                            h.name,
                            h.version,
                            l.origin,
                            h.description
                        );
                        for p in &h.params {
                            outln!(
                                "    --param {}=<{}>  default {}  {}",
                                p.name,
                                p.ty.name(),
                                runner::describe_default(&p.default, p.optional),
                                p.description
                            );
                        }
                    }
                    Err(e) => outln!("{}  (invalid header: {e})", l.path.display()),
                }
            }
            Ok(0)
        }
        Command::Eject { name, workspace } => {
            let written = runner::source::eject(&workspace, &name, Console::Quiet)?;
            for w in &written {
                outln!("wrote {w}");
            }
            if written.is_empty() {
                outln!("`{name}` and its helpers are in `runbooks/` already, unchanged");
            }
            outln!("`runbook run {name}` now runs the copy in `runbooks/`; edit it there");
            Ok(0)
        }
        Command::New { name, workspace } => {
            let written = runner::source::new_runbook(&workspace, &name, Console::Quiet)?;
            for w in &written {
                outln!("wrote {w}");
            }
            outln!(
                "next: `runbook check {}`, then `runbook run {name} --dry-run`",
                written.join(" ")
            );
            Ok(0)
        }
        Command::Docs { format } => {
            if format.json() {
                return runner::review::docs_json();
            }
            out!("{}", runner::docs());
            Ok(0)
        }
        Command::Demo {
            dir,
            dry_run,
            no_run,
            versions,
            rows,
            extra_files,
        } => crate::demo::demo(
            dir,
            crate::demo::Size {
                versions,
                rows,
                extra_files,
            },
            dry_run,
            no_run,
        ),
        Command::Resume {
            run_id,
            workspace,
            quiet,
            force,
        } => {
            let console = if quiet {
                Console::Quiet
            } else {
                Console::Stdout
            };
            runner::resume(&workspace, &run_id, console, force).map(|_| 0)
        }
        Command::Log {
            run_id,
            workspace,
            last,
            format,
        } => {
            if format.json() {
                return runner::review::log_json(&workspace, run_id.as_deref(), last);
            }
            runner::log::print(&workspace, run_id.as_deref(), last).map(|_| 0)
        }
        Command::Undo {
            run_id,
            workspace,
            dry_run,
            force,
            quiet,
        } => {
            let console = if quiet {
                Console::Quiet
            } else {
                Console::Stdout
            };
            runner::undo(
                &workspace,
                &run_id,
                dry_run,
                force,
                console,
                Durability::EndOfRun,
            )
            .map(|_| 0)
        }
        Command::Plan {
            file,
            workspace,
            params,
            out,
            format,
            timeout,
            no_exec,
        } => crate::runner::review::plan_command(
            &runner::PlanOptions {
                file,
                workspace,
                params,
                timeout: parse_timeout(&timeout)?,
                no_exec,
            },
            out.as_deref(),
            &format,
        ),
        Command::Apply {
            plan,
            workspace,
            yes,
            quiet,
            timeout,
        } => {
            let console = if quiet {
                Console::Quiet
            } else {
                Console::Stdout
            };
            runner::apply(&runner::ApplyOptions {
                plan,
                workspace,
                yes,
                console,
                timeout: parse_timeout(&timeout)?,
            })
            .map(|_| 0)
        }
        Command::View { file, format } => {
            // By name as `run` finds it, from the current directory as the workspace.
            let file = runner::source::find(&file, std::path::Path::new("."))?;
            out!(
                "{}",
                runner::view::view(&file, runner::format::Format::parse(&format))?
            );
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "runbook", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(0)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| Error::io("the man page", "render", e))?;
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(0)
        }
        Command::Unlock { workspace } => {
            outln!("{}", crate::registry::unlock(&workspace)?);
            Ok(0)
        }
        Command::Trash { action, workspace } => match action {
            TrashAction::List => crate::effects::trash::list(&workspace).map(|_| 0),
            TrashAction::Restore { run_id, paths } => {
                crate::effects::trash::restore(&workspace, &run_id, &paths).map(|_| 0)
            }
            TrashAction::Purge {
                run_id,
                all,
                older_than,
            } => crate::effects::trash::purge(&workspace, run_id.as_deref(), all, older_than)
                .map(|_| 0),
        },
    }
}
