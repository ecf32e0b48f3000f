//! The one error type of the crate. Every variant carries the context a person needs to act:
//! the file, the value, the position. `Display` renders every message in one place, so the
//! wording stays consistent: lower-case, names in backticks, a suggestion where there is one.
//! `Error::code()` gives the process exit status (2 for usage and compile errors, 1 for a
//! runbook that failed).

use std::fmt;
use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a script something went wrong, for messages that point at a source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The script file, as the user named it (or a module path for imported code).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of that line, when the file could be read.
    pub source_line: Option<String>,
    /// Where the runbook called into the imported code that failed (`file:line:column`).
    pub called_from: Option<String>,
}

#[derive(Debug)]
pub enum Error {
    /// The command line or a parameter is wrong.
    Usage(String),
    /// A runbook's header is missing a field or has a malformed one.
    Header {
        file: String,
        line: usize,
        message: String,
    },
    /// A script does not compile, or calls a primitive that does not exist.
    Compile {
        location: Box<Location>,
        message: String,
    },
    /// Reading or writing a file failed.
    Io {
        path: String,
        action: &'static str,
        source: io::Error,
    },
    /// A structured file (JSON, YAML, CSV) is malformed; `line`/`column` are 1-based, 0 if unknown.
    Parse {
        path: String,
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// A path given to a primitive would leave the workspace, or touches `.runbook/`.
    Sandbox { path: String, reason: String },
    /// A value given to a primitive is not acceptable (bad version, bad argument, bad data).
    Invalid { what: String, message: String },
    /// A registry operation cannot be carried out.
    Registry { path: String, message: String },
    /// A registry server (MLflow) could not be reached, timed out, or refused a request.
    Server { uri: String, message: String },
    /// A `git` command failed or could not be started.
    Git { command: String, message: String },
    /// A process could not be started, signalled or waited for.
    Process { what: String, message: String },
    /// A runbook failed while running: a step error, an assertion, a runtime error.
    Failed {
        location: Option<Box<Location>>,
        step: Option<String>,
        message: String,
    },
    /// The run went past `--timeout`.
    Timeout {
        limit: String,
        location: Option<Box<Location>>,
    },
    /// Ctrl-C stopped the run.
    Interrupted,
    /// A saved plan cannot be applied (stale, another runbook), or a run left it: `plan`
    /// names the plan file.
    Plan { plan: String, message: String },
    /// A run that must be confirmed was not (no terminal and no `--yes`, or the answer no).
    NotConfirmed(String),
}

impl Error {
    /// The process exit status for this error: 2 for usage and compile errors, 1 otherwise.
    pub fn code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Header { .. }
            | Error::Compile { .. }
            | Error::NotConfirmed(_) => 2,
            _ => 1,
        }
    }

    pub fn io(path: impl Into<String>, action: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    pub fn sandbox(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Sandbox {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn registry(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Registry {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The source location this error points at, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Compile { location, .. } => Some(location),
            Error::Failed { location, .. } | Error::Timeout { location, .. } => location.as_deref(),
            _ => None,
        }
    }

    /// Attach a script location to an error that has none yet.
    pub fn at(self, location: Box<Location>) -> Self {
        match self {
            Error::Timeout {
                limit,
                location: None,
            } => Error::Timeout {
                limit,
                location: Some(location),
            },
            Error::Failed {
                location: None,
                step,
                message,
            } => Error::Failed {
                location: Some(location),
                step,
                message,
            },
            other => other,
        }
    }

    /// Render the message with the source line it points at, compiler style.
    pub fn render(&self) -> String {
        let mut out = format!("error: {self}");
        if let Some(loc) = self.location() {
            out.push_str(&format!("\n  --> {}:{}:{}", loc.file, loc.line, loc.column));
            if let Some(src) = &loc.source_line {
                let gutter = loc.line.to_string().len();
                let pad = " ".repeat(gutter);
                // Columns count characters; tabs keep their width by being copied through.
                let caret_pad: String = src
                    .chars()
                    .take(loc.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!(
                    "\n{pad} |\n{} | {}\n{pad} | {caret_pad}^",
                    loc.line,
                    src.trim_end()
                ));
            }
            if let Some(from) = &loc.called_from {
                out.push_str(&format!("\n  = called from {from}"));
            }
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::Header { file, line, message } => {
                write!(f, "runbook header of `{file}` (line {line}): {message}")
            }
            Error::Compile { location, message } => write!(
                f,
                "`{}` does not compile: {message} (line {}, column {})",
                location.file, location.line, location.column
            ),
            Error::Io { path, action, source } => {
                let hint = match source.kind() {
                    io::ErrorKind::NotFound => ": no such file or directory",
                    io::ErrorKind::PermissionDenied => ": permission denied",
                    _ => "",
                };
                if hint.is_empty() {
                    write!(f, "cannot {action} `{path}`: {source}")
                } else {
                    write!(f, "cannot {action} `{path}`{hint}")
                }
            }
            Error::Parse { path, format, line, column, message } => {
                if *line > 0 {
                    write!(
                        f,
                        "`{path}` is not valid {format}: {message} at line {line}, column {column}; fix the file and run again (it was left unchanged)"
                    )
                } else {
                    write!(f, "`{path}` is not valid {format}: {message}; fix the file and run again (it was left unchanged)")
                }
            }
            Error::Sandbox { path, reason } => {
                write!(f, "refused path `{path}`: {reason}; primitives only touch paths inside the workspace")
            }
            Error::Invalid { what, message } => write!(f, "{what}: {message}"),
            Error::Registry { path, message } => write!(f, "registry `{path}`: {message}"),
            Error::Server { uri, message } => write!(f, "registry server `{uri}`: {message}"),
            Error::Git { command, message } => write!(f, "`{command}` failed: {message}"),
            Error::Process { what, message } => write!(f, "{what}: {message}"),
            Error::Failed { step, message, .. } => match step {
                Some(step) => write!(f, "step `{step}` failed: {message}"),
                None => write!(f, "{message}"),
            },
            Error::Timeout { limit, .. } => write!(
                f,
                "the run timed out after {limit}; raise the limit with `--timeout` if the runbook needs longer"
            ),
            Error::Interrupted => write!(f, "the run was interrupted (Ctrl-C)"),
            Error::Plan { plan, message } => write!(f, "plan `{plan}`: {message}"),
            Error::NotConfirmed(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_the_column() {
        let err = Error::Compile {
            location: Box::new(Location {
                file: "rb.rhai".into(),
                line: 12,
                column: 5,
                source_line: Some("let x = ;".into()),
                called_from: None,
            }),
            message: "expecting an expression".into(),
        };
        let text = err.render();
        assert!(text.contains("--> rb.rhai:12:5"), "{text}");
        assert!(text.contains("12 | let x = ;"), "{text}");
        assert!(text.ends_with("   |     ^"), "{text}");
        assert_eq!(err.code(), 2);
    }

    #[test]
    fn usage_and_runtime_codes_differ() {
        assert_eq!(Error::Usage("x".into()).code(), 2);
        assert_eq!(Error::Interrupted.code(), 1);
        assert_eq!(Error::invalid("a", "b").code(), 1);
    }
}
