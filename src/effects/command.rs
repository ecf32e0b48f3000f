//! Predictions from an external command, for model formats this crate does not evaluate
//! itself (pickles, ONNX, a team's own scoring script).
//!
//! The dataset's features are written as CSV (a header of feature names, then one line per
//! row, missing values as `NaN`) to a temporary file in the caller's scratch directory. The
//! command runs directly (no shell, so nothing in a path is ever interpreted) with the model
//! path and the data path as its last two arguments, or in place of arguments that are
//! exactly `{model}` and `{data}`. It prints one prediction per line on stdout, optionally
//! under a one-word header line (as a one-column CSV has).
//!
//! A predictor is someone else's code, so every way it can go wrong ends in a clear error
//! rather than a hang or a wrong number: it cannot be started; it exits non-zero (the error
//! carries the end of its stderr); it prints something that is not a number (the line is
//! named); it prints the wrong number of predictions; or it runs past the timeout, in which
//! case its whole process group is killed and reaped. stdout and stderr are drained on
//! their own threads, so a child that writes a lot to either cannot block on a full pipe.
//! The temporary data file is removed in every case.
//!
//! This is the effect layer's one place that starts a program other than `git`
//! (`gitcli.rs`), so that no primitive can spawn a process by itself. The predictor runs in
//! a dry run too (its answer decides the dry run's gate); it is started with the workspace
//! as its working directory and the run's scratch directory (`.runbook/tmp/<run-id>/`) for
//! its input.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ndarray::Array1;

use crate::error::{Error, Result};
use crate::validation::data::Dataset;

/// How much of the end of stderr is kept for the error message.
const STDERR_TAIL: usize = 2000;

/// Run `command` to predict `data` with the model at `model_path`. See the module doc for the
/// protocol. `scratch_dir` must exist; the data file written there is removed afterwards.
/// The command runs in `working_dir` when one is given (a runbook gives the workspace, so
/// relative paths among its arguments mean the same whatever directory runbook started in).
/// How a command may run: the workspace's policy (`runbook.yaml`'s `commands:` section and
/// `--no-exec`) applied to one command.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `--no-exec`: no command runs at all.
    pub no_exec: bool,
    /// Programs allowed (`commands.allow`); `None` allows any.
    pub allow: Option<Vec<String>>,
    /// `commands.confine: false` lets a real run's commands write outside the scratch
    /// directory and use the network. A dry run's commands are always confined.
    pub unconfined_real_runs: bool,
}

impl Policy {
    /// Read `commands:` from `runbook.yaml` (absent: any program, confined).
    pub fn read(doc: Option<&serde_json::Value>, no_exec: bool) -> Result<Policy> {
        let mut policy = Policy {
            no_exec,
            ..Policy::default()
        };
        let Some(section) = doc.and_then(|d| d.get("commands")) else {
            return Ok(policy);
        };
        let bad = |m: String| Error::invalid("`runbook.yaml`", m);
        let Some(map) = section.as_object() else {
            return Err(bad(
                "`commands` must be a mapping such as `{allow: [python3], confine: true}`".into(),
            ));
        };
        for (key, value) in map {
            match key.as_str() {
                "allow" => {
                    let list = value
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|v| v.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| {
                            bad("`commands.allow` must be a list of program names".into())
                        })?;
                    policy.allow = Some(list);
                }
                "confine" => {
                    policy.unconfined_real_runs = !value
                        .as_bool()
                        .ok_or_else(|| bad("`commands.confine` must be true or false".into()))?;
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `commands.{other}`; the known ones are `allow` and `confine`"
                    )))
                }
            }
        }
        Ok(policy)
    }

    /// Refuse `command` unless the policy lets it run.
    pub fn check(&self, command: &[String]) -> Result<()> {
        let shown = command.join(" ");
        if self.no_exec {
            return Err(Error::invalid(
                format!("command `{shown}`"),
                "runbook was started with `--no-exec`, so no program runs; run without it to allow commands",
            ));
        }
        if let (Some(allow), Some(program)) = (&self.allow, command.first()) {
            let name = program.rsplit('/').next().unwrap_or(program);
            if !allow.iter().any(|a| a == program || a == name) {
                return Err(Error::invalid(
                    format!("command `{shown}`"),
                    format!("`{program}` is not in `commands.allow` of `runbook.yaml` ({}); add it there to allow it", allow.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// A Landlock ruleset for a command: read and execute anywhere, write only below
/// `scratch`, no TCP bind or connect. Made in the parent; the child only calls
/// `landlock_restrict_self` on it between fork and exec (no allocation there).
fn confinement(scratch: &Path) -> std::result::Result<std::os::fd::OwnedFd, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset,
        RulesetAttr, RulesetCreatedAttr, ABI,
    };
    let abi = ABI::V4;
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules([scratch], AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(["/dev/null"], AccessFs::WriteFile)))
        .map_err(|e| e.to_string())?;
    Option::<std::os::fd::OwnedFd>::from(created)
        .ok_or_else(|| "this kernel has no Landlock".to_string())
}

/// Run an external predictor as the policy allows: in a dry run, and in a real run unless
/// `commands.confine: false`, confined by Landlock (writes only in the scratch directory, no
/// TCP); where the kernel cannot confine it, a run that needs confinement refuses it.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    policy: &Policy,
    dry_run: bool,
    command: &[String],
    model_path: &Path,
    data: &Dataset,
    scratch_dir: &Path,
    working_dir: Option<&Path>,
    timeout: Duration,
) -> Result<Array1<f64>> {
    policy.check(command)?;
    let confine = dry_run || !policy.unconfined_real_runs;
    let ruleset = if confine {
        Some(confinement(scratch_dir).map_err(|why| {
            Error::invalid(
                format!("command `{}`", command.join(" ")),
                format!("it must run confined (no writes outside `.runbook/tmp/`, no network), but {why}; {}",
                    if dry_run { "a dry run never runs a command unconfined" } else { "set `commands.confine: false` in `runbook.yaml` to run it unconfined in real runs" }),
            )
        })?)
    } else {
        None
    };
    predict_external_with(
        command,
        model_path,
        data,
        scratch_dir,
        working_dir,
        timeout,
        ruleset,
    )
}

pub fn predict_external(
    command: &[String],
    model_path: &Path,
    data: &Dataset,
    scratch_dir: &Path,
    working_dir: Option<&Path>,
    timeout: Duration,
) -> Result<Array1<f64>> {
    predict_external_with(
        command,
        model_path,
        data,
        scratch_dir,
        working_dir,
        timeout,
        None,
    )
}

fn predict_external_with(
    command: &[String],
    model_path: &Path,
    data: &Dataset,
    scratch_dir: &Path,
    working_dir: Option<&Path>,
    timeout: Duration,
    ruleset: Option<std::os::fd::OwnedFd>,
) -> Result<Array1<f64>> {
    let Some(program) = command.first() else {
        return Err(Error::invalid(
            "external predictor",
            "the command is empty; give the program to run and its arguments",
        ));
    };
    let what = format!("external predictor `{}`", command.join(" "));
    let data_file = TempFile::create(scratch_dir)?;
    write_features(data, &data_file.path)?;

    let model_arg = model_path.as_os_str();
    let data_arg = data_file.path.as_os_str();
    let mut cmd = Command::new(program);
    let mut placeholders = false;
    for arg in &command[1..] {
        match arg.as_str() {
            "{model}" => {
                placeholders = true;
                cmd.arg(model_arg)
            }
            "{data}" => {
                placeholders = true;
                cmd.arg(data_arg)
            }
            _ => cmd.arg(arg),
        };
    }
    if !placeholders {
        cmd.arg(model_arg).arg(data_arg);
    }
    if let Some(dir) = working_dir {
        cmd.current_dir(dir);
    }
    // Its own process group, so a timeout kills the predictor's children too (a shell
    // script's python, say), and none is left holding the output pipes open.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(fd) = &ruleset {
        confine_child(&mut cmd, fd);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let message = match e.kind() {
            io::ErrorKind::NotFound => {
                format!("cannot start `{program}`: no such program; check the command and PATH")
            }
            io::ErrorKind::PermissionDenied => {
                format!("cannot start `{program}`: permission denied; make it executable")
            }
            _ => format!("cannot start `{program}`: {e}"),
        };
        Error::Process {
            what: what.clone(),
            message,
        }
    })?;

    let stdout = drain(child.stdout.take().expect("stdout is piped"), usize::MAX);
    let stderr = drain(child.stderr.take().expect("stderr is piped"), STDERR_TAIL);
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        Error::Process {
        what: what.clone(),
        message: format!(
            "it did not finish within {}; it was stopped. Raise the timeout if the model needs longer",
            human(timeout)
        ),
    }
    };

    let status = match wait_until(&mut child, deadline) {
        Some(status) => status,
        None => {
            kill_group(&mut child);
            return Err(timed_out());
        }
    };
    // The child has exited, but a process it started may still hold the pipes: the output is
    // complete only when both readers reach end of file, and that too must happen in time.
    let (Some(out), Some(err)) = (recv_until(&stdout, deadline), recv_until(&stderr, deadline))
    else {
        kill_group(&mut child);
        return Err(timed_out());
    };
    let out = out.map_err(|e| Error::Process {
        what: what.clone(),
        message: format!("cannot read its output: {e}"),
    })?;
    let err_tail = err
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();

    if !status.success() {
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("it exited with status {code}"),
            (None, Some(sig)) => format!("it was killed by signal {sig}"),
            _ => format!("it failed ({status})"),
        };
        let message = if err_tail.is_empty() {
            format!("{how} and wrote nothing to stderr")
        } else {
            format!("{how}; the end of its stderr:\n{err_tail}")
        };
        return Err(Error::Process { what, message });
    }
    parse_predictions(&out, data.n_rows()).map_err(|message| Error::Process { what, message })
}

/// A uniquely named file in the scratch directory, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(dir: &Path) -> Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("runbook-predict-{}-{n}.csv", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(TempFile { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(path.display().to_string(), "create", e)),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The features as CSV. `{:?}` prints the shortest text that reads back as the same f64 and
/// `NaN` for missing values, which Python's `float`, NumPy and pandas all read.
fn write_features(data: &Dataset, path: &Path) -> Result<()> {
    let io_err = |e| Error::io(path.display().to_string(), "write", e);
    let mut w = BufWriter::with_capacity(1 << 16, File::create(path).map_err(io_err)?);
    let header: Vec<String> = data.features.iter().map(|f| csv_field(f)).collect();
    writeln!(w, "{}", header.join(",")).map_err(io_err)?;
    for row in data.x.rows() {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                w.write_all(b",").map_err(io_err)?;
            }
            write!(w, "{v:?}").map_err(io_err)?;
        }
        w.write_all(b"\n").map_err(io_err)?;
    }
    w.flush().map_err(io_err)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Read a pipe to its end on a thread. Keeps everything, or only the last `keep` bytes
/// (stderr: a chatty predictor must not fill memory, and the end is what explains a failure).
fn drain(mut pipe: impl Read + Send + 'static, keep: usize) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let result = loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break Ok(buf),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > keep.saturating_mul(2) {
                        buf.drain(..buf.len() - keep);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let result = result.map(|mut b| {
            if b.len() > keep {
                b.drain(..b.len() - keep);
            }
            b
        });
        let _ = tx.send(result);
    });
    rx
}

fn recv_until<T>(rx: &mpsc::Receiver<T>, deadline: Instant) -> Option<T> {
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Wait for the child until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    // Poll with a short, growing sleep: quick predictors return within a few milliseconds of
    // exiting, long ones cost a wake-up every 50 ms.
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return child.wait().ok(),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILL the child's process group, then reap the child so no zombie is left.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads
        // (it was started with process_group(0)); it has no memory effects on this process.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn human(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// One number per line, possibly under a header line. Errors are messages for
/// `Error::Process`, naming the line.
fn parse_predictions(out: &[u8], expected: usize) -> std::result::Result<Array1<f64>, String> {
    let text = String::from_utf8_lossy(out);
    let mut values = Vec::with_capacity(expected);
    let mut saw_line = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let first = !saw_line;
        saw_line = true;
        if line.contains(',') {
            return Err(format!(
                "line {} of its output has several columns (`{}`); print one prediction per line",
                i + 1,
                shorten(line)
            ));
        }
        match fast_float2::parse::<f64, _>(line) {
            Ok(v) => values.push(v),
            // A one-column CSV: its first line names the column.
            Err(_) if first => {}
            Err(_) => {
                return Err(format!(
                    "line {} of its output is `{}`, not a number; print one prediction per line",
                    i + 1,
                    shorten(line)
                ))
            }
        }
    }
    if values.len() != expected {
        return Err(format!(
            "it printed {} predictions for {expected} rows; print exactly one per data row (a header line, if any, must not be a number)",
            values.len()
        ));
    }
    Ok(Array1::from_vec(values))
}

fn shorten(line: &str) -> String {
    let mut s: String = line.chars().take(60).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// Run a notification command (`notify:` sink `command`) with `text` on its standard input,
/// as the policy allows and confined like a predictor (unless `commands.confine: false`):
/// only a real run calls this. Fails with the exit status and the end of its stderr.
pub fn notify(
    policy: &Policy,
    argv: &[String],
    text: &str,
    scratch_dir: &Path,
    working_dir: &Path,
    timeout: Duration,
) -> Result<()> {
    policy.check(argv)?;
    let Some(program) = argv.first() else {
        return Err(Error::invalid(
            "notification command",
            "is empty; give the program to run",
        ));
    };
    let what = format!("notification command `{}`", argv.join(" "));
    let ruleset = if policy.unconfined_real_runs {
        None
    } else {
        Some(confinement(scratch_dir).map_err(|why| {
            Error::invalid(
                what.clone(),
                format!("cannot be confined ({why}); set `commands: {{confine: false}}` in `runbook.yaml` to run it unconfined"),
            )
        })?)
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .current_dir(working_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(fd) = &ruleset {
        confine_child(&mut cmd, fd);
    }
    let mut child = cmd.spawn().map_err(|e| Error::Process {
        what: what.clone(),
        message: format!("cannot start `{program}`: {e}"),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine; it just gets no message.
        let _ = stdin.write_all(text.as_bytes());
    }
    let stderr = drain(child.stderr.take().expect("stderr is piped"), STDERR_TAIL);
    let deadline = Instant::now() + timeout;
    let Some(status) = wait_until(&mut child, deadline) else {
        kill_group(&mut child);
        return Err(Error::Process {
            what,
            message: format!(
                "it did not finish within {}; it was stopped",
                human(timeout)
            ),
        });
    };
    if !status.success() {
        let tail = recv_until(&stderr, deadline)
            .and_then(|r| r.ok())
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        return Err(Error::Process {
            what,
            message: format!("it failed ({status}); its stderr: {tail}"),
        });
    }
    Ok(())
}

/// Make the child `cmd` starts enforce the Landlock ruleset `fd` (and `no_new_privs`, which
/// Landlock requires) from before its first instruction: set between fork and exec.
fn confine_child(cmd: &mut Command, fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe system calls run: prctl and
    // landlock_restrict_self on a descriptor the parent keeps open until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, raw, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::data::parse_csv;
    use std::os::unix::fs::PermissionsExt;

    fn data() -> Dataset {
        parse_csv(b"a,b,y\n1,2,0\n3,,0\n5,6,0\n", "d.csv", "y").unwrap()
    }

    /// Write an executable script into `dir` and return the command that runs it.
    fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        vec![path.display().to_string()]
    }

    fn run(command: &[String], dir: &Path, timeout: Duration) -> Result<Array1<f64>> {
        predict_external(command, Path::new("model.bin"), &data(), dir, None, timeout)
    }

    fn no_temp_files_left(dir: &Path) {
        let left: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("runbook-predict-")
            })
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    #[test]
    fn sums_the_features_of_each_row() {
        let dir = tempfile::tempdir().unwrap();
        // Checks its arguments, then prints a header and a + b per row (missing b as 0).
        let cmd = script(
            dir.path(),
            "sum.sh",
            r#"[ "$1" = model.bin ] || { echo "bad model arg $1" >&2; exit 3; }
echo prediction
tail -n +2 "$2" | awk -F, '{ b = ($2 == "NaN") ? 0 : $2; print $1 + b }'
"#,
        );
        let p = run(&cmd, dir.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(p.to_vec(), vec![3.0, 3.0, 11.0]);
        no_temp_files_left(dir.path());
    }

    #[test]
    fn placeholders_put_the_paths_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = script(dir.path(), "p.sh", "head -1 \"$2\" >&2; [ \"$3\" = model.bin ] && [ \"$1\" = x ] || exit 4\nprintf '1\\n2\\n3\\n'\n");
        cmd.extend(["x", "{data}", "{model}"].map(String::from));
        assert_eq!(
            run(&cmd, dir.path(), Duration::from_secs(10))
                .unwrap()
                .to_vec(),
            vec![1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn runs_in_the_working_dir_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join("marker"), "").unwrap();
        let cmd = script(
            dir.path(),
            "cwd.sh",
            "[ -e marker ] || exit 5\nprintf '1\\n2\\n3\\n'\n",
        );
        let p = predict_external(
            &cmd,
            Path::new("model.bin"),
            &data(),
            dir.path(),
            Some(work.path()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        let err = run(&cmd, dir.path(), Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("status 5"), "{err}");
    }

    #[test]
    fn writes_features_as_csv_with_nan_for_missing() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.csv");
        let cmd = script(
            dir.path(),
            "c.sh",
            &format!("cp \"$2\" '{}'\nprintf '0\\n0\\n0\\n'\n", copy.display()),
        );
        run(&cmd, dir.path(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            fs::read_to_string(copy).unwrap(),
            "a,b\n1.0,2.0\n3.0,NaN\n5.0,6.0\n"
        );
    }

    #[test]
    fn failure_reports_status_and_stderr_tail() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = script(
            dir.path(),
            "fail.sh",
            "echo 'Traceback: model file is corrupt' >&2\nexit 2\n",
        );
        let err = run(&cmd, dir.path(), Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exited with status 2") && err.contains("model file is corrupt"),
            "{err}"
        );
        no_temp_files_left(dir.path());
    }

    #[test]
    fn missing_program_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = vec!["/nonexistent/predictor".to_string()];
        let err = run(&cmd, dir.path(), Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such program"), "{err}");
        no_temp_files_left(dir.path());
    }

    #[test]
    fn wrong_row_count_says_expected_and_got() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = script(dir.path(), "short.sh", "printf '1\\n2\\n'\n");
        let err = run(&cmd, dir.path(), Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("printed 2 predictions for 3 rows"), "{err}");
    }

    #[test]
    fn non_number_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = script(dir.path(), "bad.sh", "printf 'pred\\n1\\noops\\n3\\n'\n");
        let err = run(&cmd, dir.path(), Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("`oops`"), "{err}");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // A shell whose own child sleeps and keeps stdout open: both must be killed.
        let cmd = script(
            dir.path(),
            "slow.sh",
            &format!("sleep 30 &\necho $! > '{}'\nsleep 30\n", pid_file.display()),
        );
        let start = Instant::now();
        let err = run(&cmd, dir.path(), Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
        assert!(err.contains("did not finish within 300 ms"), "{err}");
        no_temp_files_left(dir.path());
        let pid = fs::read_to_string(&pid_file).unwrap().trim().to_string();
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        let alive = || {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    !stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the predictor's child {pid} outlived the timeout");
    }

    #[test]
    fn chatty_child_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        // 1 MB of stderr before any output: more than a pipe buffer holds.
        let cmd = script(
            dir.path(),
            "chatty.sh",
            "head -c 1000000 /dev/zero | tr '\\0' x >&2\nprintf '1\\n2\\n3\\n'\n",
        );
        assert_eq!(
            run(&cmd, dir.path(), Duration::from_secs(20))
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn python_predictor_with_csv_output() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join("predict.py");
        fs::write(
            &py,
            "import csv, sys\nrows = list(csv.DictReader(open(sys.argv[2])))\nprint('prediction')\nfor r in rows:\n    print(float(r['a']) * 2)\n",
        )
        .unwrap();
        let cmd = vec!["python3".to_string(), py.display().to_string()];
        match run(&cmd, dir.path(), Duration::from_secs(20)) {
            Ok(p) => assert_eq!(p.to_vec(), vec![2.0, 6.0, 10.0]),
            // Machines without python3 still run the shell-script tests above.
            Err(e) if e.to_string().contains("no such program") => {}
            Err(e) => panic!("{e}"),
        }
    }
}
