//! `process::` — stopping the training job safely.
//!
//! The plan stops training with `pkill -f "sl_model_training"`, which kills every process
//! whose command line mentions that string, including an editor or a colleague's job. Here
//! a process is only ever named by a pid file the job wrote itself: read the pid, send
//! SIGTERM, wait, send SIGKILL after a timeout, and report what happened. A missing pid
//! file or a process that is already gone is a logged no-op; the pid file of a stopped job
//! is moved to the trash so a recycled pid is never signalled by a later run.

use super::{Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::error::{Error, Result};
use crate::journal::ActionKind;
use rhai::{Dynamic, Map, NativeCallContext};
use serde_json::json;
use std::time::{Duration, Instant};

pub const DEFAULT_PIDFILE: &str = "run/sl_model_training.pid";
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// Whether `pid` names a live process (a zombie counts as gone: it has already exited).
pub fn is_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => r == 0,
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn signal(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain syscall on a pid we validated (> 1, not ourselves).
    if unsafe { libc::kill(pid, sig) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::Process {
                what: format!("cannot signal pid {pid}"),
                message: err.to_string(),
            });
        }
    }
    Ok(())
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Read and validate the pid in a pid file. `Ok(None)` when the file does not exist.
fn read_pid(ctx: &RunContext, pidfile: &str) -> Result<Option<(crate::effects::RelPath, i32)>> {
    let rel = ctx.ws.resolve_writable(pidfile)?;
    if !ctx.ws.exists(&rel) {
        return Ok(None);
    }
    let text = ctx.ws.read_string(&rel)?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        Error::invalid(
            format!("pid file `{rel}`"),
            format!(
                "holds `{}`, not a process id; remove it if it is stale",
                text.trim()
            ),
        )
    })?;
    if pid <= 1 || pid as u32 == std::process::id() {
        return Err(Error::invalid(
            format!("pid file `{rel}`"),
            format!("names pid {pid}, which runbook will never signal"),
        ));
    }
    Ok(Some((rel, pid)))
}

pub fn stop(ctx: &RunContext, pidfile: &str, timeout: Duration) -> Result<Map> {
    let mut out = Map::new();
    out.insert("pidfile".into(), pidfile.into());
    let Some((rel, pid)) = read_pid(ctx, pidfile)? else {
        ctx.journal.action(
            ActionKind::Check,
            "process.stop",
            json!({"pidfile": pidfile, "outcome": "no_pidfile"}),
            &format!("nothing to stop: no pid file `{pidfile}`"),
            None,
        );
        out.insert("outcome".into(), "no_pidfile".into());
        return Ok(out);
    };
    out.insert("pid".into(), (pid as i64).into());
    if !is_alive(pid) {
        ctx.journal.action(
            ActionKind::Check,
            "process.stop",
            json!({"pidfile": rel.as_str(), "pid": pid, "outcome": "not_running"}),
            &format!("nothing to stop: pid {pid} from `{rel}` is not running"),
            None,
        );
        out.insert("outcome".into(), "not_running".into());
        return Ok(out);
    }
    let command = cmdline(pid);
    let args = json!({"pidfile": rel.as_str(), "pid": pid, "cmdline": command, "timeout_s": timeout.as_secs_f64()});
    if ctx.ws.dry_run() {
        ctx.ws.remove(&rel)?;
        ctx.journal.action(
            ActionKind::Process,
            "process.stop",
            args,
            &format!(
                "stop pid {pid} (`{command}`) from `{rel}`: SIGTERM, then SIGKILL after {:.0} s",
                timeout.as_secs_f64()
            ),
            None,
        );
        out.insert("outcome".into(), "would_stop".into());
        return Ok(out);
    }
    signal(pid, libc::SIGTERM)?;
    let outcome = if wait_gone(pid, timeout) {
        "terminated"
    } else {
        signal(pid, libc::SIGKILL)?;
        if !wait_gone(pid, Duration::from_secs(5)) {
            return Err(Error::Process {
                what: format!("pid {pid} from `{rel}`"),
                message: "still running after SIGKILL; check it by hand (`ps -p PID`)".into(),
            });
        }
        "killed"
    };
    let trash = ctx.ws.remove(&rel)?;
    ctx.journal.action(
        ActionKind::Process,
        "process.stop",
        args,
        &format!(
            "stop pid {pid} (`{command}`) from `{rel}`: {outcome}; pid file kept at `{trash}`"
        ),
        Some(json!({"outcome": outcome})),
    );
    out.insert("outcome".into(), outcome.into());
    Ok(out)
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "process",
        "Processes named by pid files; never matched by name.",
    );
    let c = ctx.clone();
    f.add(
        "stop",
        &["pidfile: &str", "Map"],
        "Stop the process named in `pidfile`: SIGTERM, wait up to 10 s, then SIGKILL. A missing pid file or a dead process is a no-op. Returns `#{ pidfile, pid, outcome }` with outcome `no_pidfile`, `not_running`, `terminated`, `killed` or (dry run) `would_stop`.\n```rhai\nlet r = process::stop(\"run/sl_model_training.pid\");\nprint(r.outcome);\n```",
        move |call: NativeCallContext, pidfile: &str| -> RhaiResult<Map> {
            stop(&c, pidfile, Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "stop",
        &["pidfile: &str", "timeout_secs: Dynamic", "Map"],
        "Like `process::stop(pidfile)` with the SIGTERM grace period in seconds.\n```rhai\nprocess::stop(\"run/sl_model_training.pid\", 30);\n```",
        move |call: NativeCallContext, pidfile: &str, timeout: Dynamic| -> RhaiResult<Map> {
            let secs = timeout.as_float().or_else(|_| timeout.as_int().map(|i| i as f64)).ok().filter(|s| *s >= 0.0 && s.is_finite());
            let secs = secs.ok_or_else(|| c.fail_at(&call, Error::invalid("process::stop", format!("timeout must be a number of seconds, got `{timeout}`"))))?;
            stop(&c, pidfile, Duration::from_secs_f64(secs)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "stop_training",
        &["Map"],
        "Stop the training job named in `run/sl_model_training.pid` (the plan's `pkill -f sl_model_training`, made safe).\n```rhai\nprocess::stop_training();\n```",
        move |call: NativeCallContext| -> RhaiResult<Map> {
            stop(&c, DEFAULT_PIDFILE, Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS)).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "is_running",
        &["pidfile: &str", "bool"],
        "Whether the process named in `pidfile` is alive (false when there is no pid file).\n```rhai\nassert(!process::is_running(\"run/sl_model_training.pid\"), \"training still running\");\n```",
        move |call: NativeCallContext, pidfile: &str| -> RhaiResult<bool> {
            Ok(read_pid(&c, pidfile).map_err(|e| c.fail_at(&call, e))?.is_some_and(|(_, pid)| is_alive(pid)))
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_of_self_and_of_a_reaped_child() {
        assert!(is_alive(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }
}
