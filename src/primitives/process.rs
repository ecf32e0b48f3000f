//! `process::` — stopping the training job safely.
//!
//! The plan stops training with `pkill -f "sl_model_training"`, which kills every process
//! whose command line mentions that string, including an editor or a colleague's job. Here
//! a process is only ever named by a pid file the job wrote itself: read the pid, send
//! SIGTERM, wait, send SIGKILL after a timeout, and report what happened. A missing pid
//! file or a process that is already gone is a logged check; the pid file of a stopped job
//! is moved to the trash so a recycled pid is never signalled by a later run. The signals
//! themselves are sent by the effect door (`effects/process.rs`), the only place that can.

use super::{Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::{check_identity, is_alive, usage, Effect, Record};
use crate::error::{Error, Result};
use rhai::{Dynamic, Map, NativeCallContext};
use serde_json::json;
use std::time::Duration;

pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// What a job's command line must contain unless the script says otherwise: the pid file's
/// name without its extension (`run/sl_model_training.pid` → `sl_model_training`), the
/// name the plan's `pkill -f` used.
fn default_expect(pidfile: &str) -> String {
    let name = pidfile.rsplit('/').next().unwrap_or(pidfile);
    name.strip_suffix(".pid").unwrap_or(name).to_string()
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

pub fn stop(
    ctx: &RunContext,
    pidfile: &str,
    timeout: Duration,
    expect: Option<&str>,
) -> Result<Map> {
    let expect = expect
        .map(str::to_string)
        .unwrap_or_else(|| default_expect(pidfile));
    let mut out = Map::new();
    out.insert("pidfile".into(), pidfile.into());
    let Some((rel, pid)) = read_pid(ctx, pidfile)? else {
        ctx.ws.check(Record::new(
            "process.stop",
            json!({"pidfile": pidfile, "outcome": "no_pidfile"}),
            format!("nothing to stop: no pid file `{pidfile}`"),
        ));
        out.insert("outcome".into(), "no_pidfile".into());
        return Ok(out);
    };
    out.insert("pid".into(), (pid as i64).into());
    let effect = Effect::StopProcess {
        pidfile: rel.clone(),
        pid,
        expect: expect.clone(),
        timeout,
    };
    // A resumed run whose stop was cut short after the signal finishes the stop (the pid
    // file goes to the trash) instead of finding nothing to do.
    if !is_alive(pid) && !ctx.ws.was_cut_short(&effect) {
        ctx.ws.check(Record::new(
            "process.stop",
            json!({"pidfile": rel.as_str(), "pid": pid, "outcome": "not_running"}),
            format!("nothing to stop: pid {pid} from `{rel}` is not running"),
        ));
        out.insert("outcome".into(), "not_running".into());
        return Ok(out);
    }
    let command = if is_alive(pid) {
        check_identity(&rel, pid, &expect)?
    } else {
        String::new()
    };
    let args = json!({"pidfile": rel.as_str(), "pid": pid, "cmdline": command, "expect": expect, "timeout_s": timeout.as_secs_f64()});
    let done = ctx.ws.perform(effect, |o| {
        let p = o.process.as_ref();
        let outcome = p.map(|p| p.outcome).unwrap_or("unknown");
        let kept = p.map(|p| p.pidfile_kept.to_string()).unwrap_or_default();
        let summary = if outcome == "would_stop" {
            format!(
                "stop pid {pid} (`{command}`) from `{rel}`: SIGTERM, then SIGKILL after {:.0} s",
                timeout.as_secs_f64()
            )
        } else {
            format!(
                "stop pid {pid} (`{command}`) from `{rel}`: {outcome}; pid file kept at `{kept}`"
            )
        };
        Record::new("process.stop", args, summary).with_result(json!({"outcome": outcome}))
    })?;
    let outcome = done.process.map(|p| p.outcome).unwrap_or("unknown");
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
        "Stop the process named in `pidfile`: SIGTERM, wait up to 10 s, then SIGKILL. Only the job the pid file names is signalled: its command line must contain the pid file's name without `.pid` (`sl_model_training` for `run/sl_model_training.pid`), and it must not be runbook or the shell that started it; otherwise nothing is signalled and the call fails. A missing pid file or a dead process is a no-op. Returns `#{ pidfile, pid, outcome }` with outcome `no_pidfile`, `not_running`, `terminated`, `killed` or (dry run) `would_stop`.\n```rhai\nlet r = process::stop(\"run/sl_model_training.pid\");\nprint(r.outcome);\n```",
        move |call: NativeCallContext, pidfile: &str| -> RhaiResult<Map> {
            stop(&c, pidfile, Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS), None).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "stop",
        &["pidfile: &str", "options: Dynamic", "Map"],
        "Like `process::stop(pidfile)` with the SIGTERM grace period in seconds, or a map of options: `timeout` (seconds) and `expect` (what the process's command line must contain, instead of the pid file's name).\n```rhai\nprocess::stop(\"run/sl_model_training.pid\", 30);\nprocess::stop(\"run/trainer.pid\", #{ timeout: 30, expect: \"sl_model_training\" });\n```",
        move |call: NativeCallContext, pidfile: &str, options: Dynamic| -> RhaiResult<Map> {
            let seconds = |v: &Dynamic| v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).ok().filter(|s| *s >= 0.0 && s.is_finite());
            let bad = |what: String| c.fail_at(&call, Error::invalid("process::stop", what));
            let (secs, expect) = if let Some(map) = options.read_lock::<Map>() {
                for key in map.keys() {
                    if !matches!(key.as_str(), "timeout" | "expect") {
                        return Err(bad(format!("unknown option `{key}`; the options are `timeout` and `expect`")));
                    }
                }
                let secs = match map.get("timeout") {
                    None => Some(DEFAULT_TIMEOUT_SECS),
                    Some(t) => seconds(t),
                };
                let expect = map.get("expect").map(|e| e.to_string());
                (secs, expect)
            } else {
                (seconds(&options), None)
            };
            let secs = secs.ok_or_else(|| bad(format!("timeout must be a number of seconds, got `{options}`")))?;
            if expect.as_deref().is_some_and(|e| e.trim().is_empty()) {
                return Err(bad("`expect` is empty; name the job, such as `sl_model_training`".into()));
            }
            stop(&c, pidfile, Duration::from_secs_f64(secs), expect.as_deref()).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "usage",
        &["pidfile: &str", "Dynamic"],
        "What the process named in `pidfile` uses, for the post-rollback stability check (plan §5.1): `#{ pid, rss_mb, cpu_percent }` (resident memory in MiB; CPU time over its lifetime as a percentage of one core, as `ps` shows it), or `()` when there is no pid file or the process is not running. Reads only.\n```rhai\nlet u = process::usage(\"run/sl_model_serving.pid\");\nif u != () { assert(u.rss_mb < 4096, `serving uses ${u.rss_mb} MiB`); }\n```",
        move |call: NativeCallContext, pidfile: &str| -> RhaiResult<Dynamic> {
            let Some((rel, pid)) = read_pid(&c, pidfile).map_err(|e| c.fail_at(&call, e))? else {
                return Ok(Dynamic::UNIT);
            };
            let Some(u) = (if is_alive(pid) { usage(pid) } else { None }) else {
                return Ok(Dynamic::UNIT);
            };
            let rss_mb = u.rss_bytes as f64 / 1048576.0;
            c.ws.check(Record::new(
                "process.usage",
                json!({"pidfile": rel.as_str(), "pid": pid}),
                format!("pid {pid} from `{rel}` uses {rss_mb:.1} MiB, {:.1}% CPU", u.cpu_percent),
            ).with_result(json!({"rss_mb": rss_mb, "cpu_percent": u.cpu_percent})));
            let mut m = Map::new();
            m.insert("pid".into(), (pid as i64).into());
            m.insert("rss_mb".into(), rss_mb.into());
            m.insert("cpu_percent".into(), u.cpu_percent.into());
            Ok(m.into())
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
