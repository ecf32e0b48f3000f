//! Stopping a process: the only place runbook sends a signal.
//!
//! The plan stops training with `pkill -f "sl_model_training"`, which kills every process
//! whose command line mentions that string. Here a process is only ever named by a pid file
//! the job wrote itself (the `process::` primitives read and check it); this file sends
//! SIGTERM, waits, sends SIGKILL after the timeout, and moves the pid file to the trash so a
//! recycled pid is never signalled by a later run. A dry run signals nothing: it records what
//! it would do and hides the pid file in its view, as the real run would have moved it.

use super::path::RelPath;
use super::Workspace;
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// What stopping a process did.
#[derive(Debug, Clone)]
pub struct ProcessOutcome {
    /// `terminated`, `killed`, or (dry run) `would_stop`.
    pub outcome: &'static str,
    /// Where the pid file went.
    pub pidfile_kept: RelPath,
}

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

/// The command line of `pid`, its words joined by spaces (empty when it is gone).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// What a process uses: resident memory, and CPU time over its lifetime as a percentage of
/// one core (what `ps -o %cpu` shows). `None` when it is gone or `/proc` cannot say.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_percent: f64,
}

pub fn usage(pid: i32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After `pid (comm)`: state is field 3 of the line, utime 14, stime 15, starttime 22.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (utime, stime, start) = (num(11)?, num(12)?, num(19)?);
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let lifetime = (uptime - start / ticks).max(1e-3);
    let cpu_percent = (utime + stime) / ticks / lifetime * 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(Usage {
        rss_bytes: rss_kb * 1024,
        cpu_percent,
    })
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// runbook itself and every process above it (the shell that started it, its terminal...).
fn self_and_ancestors() -> Vec<i32> {
    let mut out = vec![std::process::id() as i32];
    while let Some(p) = out.last().and_then(|p| parent_of(*p)) {
        if p <= 1 || out.contains(&p) {
            break;
        }
        out.push(p);
    }
    out
}

/// Refuse to signal `pid` unless it is the job the pid file names: its command line holds
/// `expect`, and it is neither runbook nor one of its ancestors. A stale pid file after a
/// reboot can name any process; `pkill -f NAME` at least matched the name.
pub fn check_identity(pidfile: &RelPath, pid: i32, expect: &str) -> Result<String> {
    if pid <= 1 {
        return Err(Error::invalid(
            format!("pid file `{pidfile}`"),
            format!("names pid {pid}, which runbook will never signal"),
        ));
    }
    if self_and_ancestors().contains(&pid) {
        return Err(Error::invalid(
            format!("pid file `{pidfile}`"),
            format!("names pid {pid}, which is runbook itself or the process that started it; nothing was signalled (remove the stale pid file)"),
        ));
    }
    let command = cmdline(pid);
    if !command.contains(expect) {
        return Err(Error::invalid(
            format!("pid file `{pidfile}`"),
            format!("names pid {pid} (`{command}`), which is not `{expect}`; nothing was signalled. The pid file is probably stale: check the process, then remove the file, or pass the right name as `expect`"),
        ));
    }
    Ok(command)
}

fn signal(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain syscall on a pid the caller validated (> 1, not ourselves).
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

pub(super) fn stop(
    ws: &Workspace,
    pidfile: &RelPath,
    pid: i32,
    expect: &str,
    timeout: Duration,
) -> Result<ProcessOutcome> {
    // Gone already: a resume of a run killed after its signal, or the job exited on its
    // own a moment ago. Nothing to signal (the pid may be reused any time now); the pid
    // file still goes to the trash, as after a stop.
    if !ws.simulating() && !is_alive(pid) {
        let kept = ws.remove(pidfile)?;
        return Ok(ProcessOutcome {
            outcome: "terminated",
            pidfile_kept: kept,
        });
    }
    // Checked again right before the signal: the primitive's check was a moment ago.
    check_identity(pidfile, pid, expect)?;
    if ws.simulating() {
        let kept = ws.remove(pidfile)?;
        return Ok(ProcessOutcome {
            outcome: "would_stop",
            pidfile_kept: kept,
        });
    }
    signal(pid, libc::SIGTERM)?;
    let outcome = if wait_gone(pid, timeout) {
        "terminated"
    } else {
        signal(pid, libc::SIGKILL)?;
        if !wait_gone(pid, Duration::from_secs(5)) {
            return Err(Error::Process {
                what: format!("pid {pid} from `{pidfile}`"),
                message: "still running after SIGKILL; check it by hand (`ps -p PID`)".into(),
            });
        }
        "killed"
    };
    let kept = ws.remove(pidfile)?;
    Ok(ProcessOutcome {
        outcome,
        pidfile_kept: kept,
    })
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
