//! The MLflow store against a real MLflow server: the shipped runbooks run unchanged, real
//! and dry, the history and the lock live in the server, and a stopped or absent server is
//! a clear error that changes nothing.
//!
//! The server is started once per test binary (a fresh SQLite file on a free port of
//! 127.0.0.1) by the first test that needs it and stopped by pid, with its process group,
//! when the binary exits. The tests that need it take one mutex, so each sees only its own
//! writes (the lock is registry-wide by design) and the database bytes of a dry run can be
//! compared. MLflow comes from `RUNBOOK_MLFLOW` or `target/mlflow-venv/bin/mlflow`, which
//! `.ci/run` installs; without it these tests say loudly that they did not run, and under
//! `CI=true` they fail instead.

use crate::support::{repo, shipped, Ws, BIN};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

struct Server {
    uri: String,
    pid: i32,
    db: PathBuf,
    /// Kept so the directory lives as long as the server.
    _dir: PathBuf,
    /// Stopped by the exit hook, with its process group (the tests never end it earlier).
    _child: Child,
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// The server's process group and directory, for the exit hook.
static PGID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_server_at_exit() {
    let pgid = PGID.load(std::sync::atomic::Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: signalling a process group this binary started.
        unsafe {
            libc::kill(-pgid, libc::SIGCONT);
            libc::kill(-pgid, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above; whatever did not stop on SIGTERM.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn mlflow_binary() -> Option<PathBuf> {
    let candidate = std::env::var_os("RUNBOOK_MLFLOW")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/mlflow-venv/bin/mlflow"));
    candidate.exists().then_some(candidate)
}

/// Written past the test harness's capture, so a skip is seen even when the test passes.
fn say(text: &str) {
    let _ = std::io::stderr().write_all(format!("{text}\n").as_bytes());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Option<Server> {
    let Some(mlflow) = mlflow_binary() else {
        let msg = "MLflow is not installed (no `RUNBOOK_MLFLOW`, no `target/mlflow-venv/bin/mlflow`): the MLflow server tests did NOT run; `bash .ci/run` installs it";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}, and under CI=true that is a failure");
        }
        say(&format!("warning: {msg}"));
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("rb-mlflow-")
        .tempdir()
        .unwrap()
        .keep();
    let _ = DIR.set(dir.clone());
    let db = dir.join("mlflow.db");
    std::fs::create_dir_all(dir.join("artifacts")).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    use std::os::unix::process::CommandExt;
    let child = Command::new(&mlflow)
        .args(["server", "--backend-store-uri"])
        .arg(format!("sqlite:///{}", db.display()))
        .arg("--default-artifact-root")
        .arg(dir.join("artifacts"))
        // Where `mlflow-artifacts:` experiments keep their files (the server proxies them).
        .arg("--artifacts-destination")
        .arg(dir.join("proxied"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--workers", "1"])
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start mlflow server");
    let pid = child.id() as i32;
    PGID.store(pid, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: registering a plain `extern "C"` function with no arguments.
    unsafe {
        libc::atexit(stop_server_at_exit);
    }
    let uri = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(v) = try_api("GET", &uri, "experiments/search?max_results=1", None) {
            if v.get("experiments").is_some() || v.is_object() {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(180) {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("the MLflow server did not answer within 180 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    say(&format!(
        "mlflow test server {uri} (pid {pid}) answered after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Some(Server {
        uri,
        pid,
        db,
        _dir: dir,
        _child: child,
    })
}

/// The shared server and the right to use it alone, or `None` (said loudly) without MLflow.
fn server() -> Option<(&'static Server, MutexGuard<'static, ()>)> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = SERVER.get_or_init(start).as_ref()?;
    Some((server, guard))
}

fn try_api(method: &str, uri: &str, endpoint: &str, body: Option<Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{uri}/api/2.0/mlflow/{endpoint}");
    let resp = match method {
        "GET" => agent.get(&url).call(),
        "DELETE" => agent
            .delete(&url)
            .force_send_body()
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(Value::Null).to_string()),
        _ => agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(Value::Null).to_string()),
    }
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

fn api(server: &Server, method: &str, endpoint: &str, body: Value) -> Value {
    try_api(method, &server.uri, endpoint, Some(body))
        .unwrap_or_else(|e| panic!("{method} {endpoint}: {e}"))
}

fn get(server: &Server, endpoint: &str) -> Result<Value, String> {
    try_api("GET", &server.uri, endpoint, None)
}

/// A workspace (5 model versions on disk) whose `runbook.yaml` points at `uri`.
fn workspace(uri: &str, extra: &str) -> Ws {
    let ws = Ws::generated(&["--versions", "5", "--rows", "200"]);
    ws.write(
        "runbook.yaml",
        &format!("registry:\n  store: mlflow\n  tracking_uri: {uri}\n  timeout: 5s\n{extra}"),
    );
    ws
}

/// Register `name` with versions 1..=5 made from the workspace's model files, each from a
/// run of its own (MLflow wants a run for a local source); v5 holds the alias, 1..4 are
/// superseded, promoted on consecutive days.
fn register(server: &Server, ws: &Ws, name: &str) {
    register_with(server, ws, name, false)
}

/// [`register`], with the files uploaded through the server's artifact proxy when
/// `proxied` (sources `mlflow-artifacts:/...`, no `runbook.model_path` tag).
fn register_with(server: &Server, ws: &Ws, name: &str, proxied: bool) {
    api(
        server,
        "POST",
        "registered-models/create",
        json!({"name": name}),
    );
    let mut experiment = json!({"name": format!("exp-{name}")});
    if proxied {
        experiment["artifact_location"] = json!(format!("mlflow-artifacts:/{name}"));
    }
    let exp = api(server, "POST", "experiments/create", experiment);
    let exp_id = exp["experiment_id"].as_str().unwrap().to_string();
    for n in 1..=5 {
        let run = api(
            server,
            "POST",
            "runs/create",
            json!({"experiment_id": exp_id}),
        );
        let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
        let artifact_uri = run["run"]["info"]["artifact_uri"].as_str().unwrap();
        let file = format!("sl_model_v{n}.json");
        let bytes = std::fs::read(ws.join(&format!("models/{file}"))).unwrap();
        let source = format!("{artifact_uri}/model/{file}");
        let status = if n == 5 { "production" } else { "superseded" };
        let mut tags = vec![
            json!({"key": "runbook.status", "value": status}),
            json!({"key": "runbook.promoted_at", "value": format!("2026-01-0{n}T00:00:00Z")}),
            json!({"key": "metric.mse", "value": "0.01"}),
        ];
        if proxied {
            let path = artifact_uri.strip_prefix("mlflow-artifacts:/").unwrap();
            let url = format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{path}/model/{file}",
                server.uri
            );
            let resp = ureq::put(&url).send(&bytes[..]).unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        } else {
            let dir = PathBuf::from(artifact_uri).join("model");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&file), &bytes).unwrap();
            tags.push(json!({"key": "runbook.model_path", "value": format!("models/{file}")}));
        }
        api(
            server,
            "POST",
            "model-versions/create",
            json!({"name": name, "source": source, "run_id": run_id, "tags": tags}),
        );
    }
    api(
        server,
        "POST",
        "registered-models/alias",
        json!({"name": name, "alias": "champion", "version": "5"}),
    );
}

/// The alias's version, or `None`.
fn champion(server: &Server, name: &str) -> Option<String> {
    get(
        server,
        &format!("registered-models/alias?name={name}&alias=champion"),
    )
    .ok()
    .and_then(|v| v["model_version"]["version"].as_str().map(String::from))
}

fn versions(server: &Server, name: &str) -> Vec<String> {
    let v = get(
        server,
        &format!("model-versions/search?filter=name%3D%27{name}%27"),
    )
    .unwrap();
    let mut out: Vec<String> = v["model_versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["version"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The history records the server keeps for `name`, oldest first.
fn history(server: &Server, name: &str) -> Vec<Value> {
    let m = get(server, &format!("registered-models/get?name={name}")).unwrap();
    let mut tags: Vec<(String, String)> = m["registered_model"]["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_string(),
                        t["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    tags.retain(|(k, _)| k.starts_with("runbook.history."));
    tags.sort();
    tags.iter()
        .map(|(_, v)| serde_json::from_str(v).unwrap())
        .collect()
}

/// Everything the REST API shows: every model with its tags and aliases, every version.
fn dump(server: &Server) -> Value {
    let models = get(server, "registered-models/search?max_results=1000").unwrap();
    let versions = get(server, "model-versions/search?max_results=10000").unwrap();
    json!({"models": models, "versions": versions})
}

fn lock_exists(server: &Server) -> bool {
    get(server, "registered-models/get?name=runbook.lock").is_ok()
}

fn rollback(ws: &Ws, model: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", &shipped("full_rollback.rhai"), "-w"])
        .arg(ws.path())
        .args(["-p", &format!("model={model}")]);
    cmd
}

fn output(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn wait_for(child: &mut Child, what: &str) -> (i32, String, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), out, err);
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{what} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_file(ws: &Ws, rel: &str) {
    let started = Instant::now();
    while !ws.exists(rel) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "`{rel}` never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mlflow_full_rollback_moves_the_alias_records_history_and_a_second_host_sees_it() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_full";
    let ws = workspace(&server.uri, "");
    register(server, &ws, model);

    let (code, stdout, stderr) = output(rollback(&ws, model));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sl_full: production is 5, rolling back to 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rollback complete: sl_full production is 4"),
        "{stdout}"
    );
    assert_eq!(champion(server, model).as_deref(), Some("4"));
    assert_eq!(versions(server, model), ["1", "2", "3", "4"]);
    assert!(!lock_exists(server), "the run released its lock");

    let h = history(server, model);
    let run_id = ws.last_log()[0]["run_id"].as_str().unwrap().to_string();
    let moves: Vec<(String, String, Value, Value)> = h
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap().to_string(),
                r["version"].as_str().unwrap().to_string(),
                r["old"]["status"].clone(),
                r["new"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (
                "set_production".into(),
                "5".into(),
                json!("production"),
                json!("archived")
            ),
            (
                "set_production".into(),
                "4".into(),
                json!("superseded"),
                json!("production")
            ),
            ("remove".into(), "5".into(), json!("archived"), Value::Null),
        ]
    );
    for r in &h {
        assert_eq!(r["run_id"], run_id.as_str());
        assert!(r["host"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(r["pid"].as_u64().is_some(), "{r}");
    }

    // A second host: another workspace directory with the same configuration sees the same
    // production version, the same previous one, and its dry run plans 4 -> 3.
    let other = workspace(&server.uri, "");
    other.write(
        "runbooks/show.rhai",
        "//! name: show\n//! version: 1.0.0\n//! description: show\nstep \"show\" {\n  print(`production ${registry::production(\"sl_full\").version} previous ${registry::previous(\"sl_full\").version} path ${registry::production(\"sl_full\").model_path}`);\n}\n",
    );
    let (code, stdout, stderr) = output({
        let mut c = Command::new(BIN);
        c.args(["run", "runbooks/show.rhai"])
            .current_dir(other.path());
        c
    });
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("production 4 previous 3 path models/sl_model_v4.json"),
        "{stdout}"
    );
    let mut dry = rollback(&other, model);
    dry.arg("--dry-run");
    let (code, stdout, stderr) = output(dry);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("make `sl_full` `3` production (`4` becomes archived)"),
        "{stdout}"
    );
    assert_eq!(history(server, model), h, "a dry run adds no history");
}

#[test]
fn mlflow_artifacts_sources_are_fetched_through_the_server_once_and_validated() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_art";
    let ws = workspace(&server.uri, "");
    register_with(server, &ws, model, true);
    let fetched = ".runbook/tmp/mlflow/sl_art/4/sl_model_v4.json";

    // A dry run fetches too (into runbook's own `.runbook/tmp/`), and validates what it got.
    let mut dry = rollback(&ws, model);
    dry.arg("--dry-run").env("RUNBOOK_HTTP_TRACE", "1");
    let (code, stdout, stderr) = output(dry);
    assert_eq!(
        code, 0,
        "{stdout}
{stderr}"
    );
    assert!(
        stderr.contains("http: GET mlflow-artifacts/artifacts/"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("check evaluate `{fetched}`")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(ws.join(fetched)).unwrap(),
        std::fs::read(ws.join("models/sl_model_v4.json")).unwrap()
    );

    // The real run uses the files already fetched: no artifact request at all.
    let mut real = rollback(&ws, model);
    real.env("RUNBOOK_HTTP_TRACE", "1");
    let (code, stdout, stderr) = output(real);
    assert_eq!(
        code, 0,
        "{stdout}
{stderr}"
    );
    assert!(!stderr.contains("mlflow-artifacts"), "{stderr}");
    assert!(
        stdout.contains("rollback complete: sl_art production is 4"),
        "{stdout}"
    );
    assert_eq!(champion(server, model).as_deref(), Some("4"));
}

#[test]
fn mlflow_dry_run_leaves_the_server_database_unchanged() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_dry";
    let ws = workspace(&server.uri, "");
    register(server, &ws, model);
    let before_db = std::fs::read(&server.db).unwrap();
    let before = dump(server);
    let files = ws.snapshot();

    let mut cmd = rollback(&ws, model);
    cmd.arg("--dry-run");
    let (code, stdout, stderr) = output(cmd);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("make `sl_dry` `4` production (`5` becomes archived)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("remove `sl_dry` `5` from the registry"),
        "{stdout}"
    );
    // Later steps saw the simulated change: the verify step checked 4.
    assert!(
        stdout.contains("rollback complete: sl_dry production is 4"),
        "{stdout}"
    );
    assert_eq!(dump(server), before, "the REST state changed");
    assert!(
        std::fs::read(&server.db).unwrap() == before_db,
        "the SQLite file changed"
    );
    ws.snapshot().assert_same(&files);
    assert_eq!(champion(server, model).as_deref(), Some("5"));
}

#[test]
fn mlflow_two_concurrent_real_runs_from_two_workspaces_exactly_one_proceeds() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_race";
    let first = workspace(&server.uri, "");
    register(server, &first, model);
    let second = workspace(&server.uri, "");
    // The first run takes the lock with its first read, then waits until told to go on, so
    // the second is certain to start while the first holds it.
    first.write(
        "runbooks/hold.rhai",
        "//! name: hold\n//! version: 1.0.0\n//! description: hold\n//! param model: string\nstep \"read\" { registry::production(params.model); fs::write(\"holding\", \"x\"); }\nstep \"wait\" { while !fs::exists(\"go\") { } }\nstep \"promote\" { registry::set_production(params.model, \"4\", \"archived\"); }\n",
    );
    let mut holder = Command::new(BIN)
        .args(["run", "runbooks/hold.rhai", "-p", &format!("model={model}")])
        .current_dir(first.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_file(&first, "holding");
    let files = second.snapshot();
    let (code, stdout, stderr) = output(rollback(&second, model));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "registry server `{}`: the registry is locked by run `",
            server.uri
        )),
        "{stderr}"
    );
    assert!(stderr.contains("runbook unlock"), "{stderr}");
    // Refused at its first registry read, before any step changed anything.
    second.snapshot().assert_same(&files);
    first.write("go", "");
    let (code, stdout, stderr) = wait_for(&mut holder, "the holding run");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(champion(server, model).as_deref(), Some("4"));
    assert_eq!(
        history(server, model).len(),
        2,
        "one set_production, two versions"
    );
    assert!(!lock_exists(server));

    // And two rollbacks started together: exactly one gets the lock; the other is refused
    // (or, if the first was already done, rolls back the next version: never both at once).
    let (a, b) = (workspace(&server.uri, ""), workspace(&server.uri, ""));
    let spawn = |ws: &Ws| {
        let mut c = rollback(ws, model);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (mut ca, mut cb) = (spawn(&a), spawn(&b));
    let ra = wait_for(&mut ca, "rollback a");
    let rb = wait_for(&mut cb, "rollback b");
    let ok = [ra.0, rb.0].iter().filter(|c| **c == 0).count();
    let refused = [&ra, &rb]
        .iter()
        .filter(|r| r.0 == 1 && r.2.contains("the registry is locked by run"))
        .count();
    let h = history(server, model);
    if ok == 1 {
        assert_eq!(refused, 1, "{ra:?}\n{rb:?}");
        assert_eq!(champion(server, model).as_deref(), Some("3"));
        assert_eq!(h.len(), 2 + 3);
    } else {
        // Serial after all: 4 -> 3 -> 2, each a whole rollback.
        assert_eq!(ok, 2, "{ra:?}\n{rb:?}");
        assert_eq!(champion(server, model).as_deref(), Some("2"));
        assert_eq!(h.len(), 2 + 3 + 3);
    }
    assert!(!lock_exists(server));
}

#[test]
fn mlflow_server_stopped_mid_run_leaves_the_registry_old_or_new_and_the_run_says_so() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_stop";
    let ws = workspace(&server.uri, "");
    register(server, &ws, model);
    ws.write(
        "runbooks/two.rhai",
        "//! name: two\n//! version: 1.0.0\n//! description: two changes with a pause\n//! param model: string\nstep \"promote\" { registry::set_production(params.model, \"4\", \"archived\"); fs::write(\"promoted\", \"x\"); }\nstep \"wait\" { while !fs::exists(\"go\") { } }\nstep \"remove\" { registry::remove(params.model, \"5\"); }\n",
    );
    let mut child = Command::new(BIN)
        .args(["run", "runbooks/two.rhai", "-p", &format!("model={model}")])
        .current_dir(ws.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_file(&ws, "promoted");
    // SAFETY: stopping the process group of the server this binary started.
    unsafe { libc::kill(-server.pid, libc::SIGSTOP) };
    ws.write("go", "");
    let result = wait_for(&mut child, "the interrupted run");
    // SAFETY: as above.
    unsafe { libc::kill(-server.pid, libc::SIGCONT) };
    let (code, stdout, stderr) = result;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("registry server `{}`: did not answer", server.uri)),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing was written to the server; the registry is as it was"),
        "{stderr}"
    );
    // The first change is whole, the second did not happen: the registry is "new" after
    // step 1 and untouched by step 3.
    assert_eq!(champion(server, model).as_deref(), Some("4"));
    assert_eq!(versions(server, model), ["1", "2", "3", "4", "5"]);
    assert_eq!(history(server, model).len(), 2);
    let log = ws.last_log();
    let end = log.iter().find(|e| e["event"] == "run_end").unwrap();
    assert_eq!(end["status"], "failed");
    // The run could not release its lock while the server was stopped: unlock clears it.
    if lock_exists(server) {
        let (code, stdout, stderr) = output({
            let mut c = Command::new(BIN);
            c.args(["unlock", "-w"]).arg(ws.path());
            c
        });
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(stdout.contains("removed the lock of run `"), "{stdout}");
    }
    assert!(!lock_exists(server));
}

#[test]
fn mlflow_a_live_lock_refuses_an_expired_one_is_taken_over_and_unlock_clears_it() {
    let Some((server, _one)) = server() else {
        return;
    };
    let model = "sl_lock";
    let ws = workspace(&server.uri, "");
    register(server, &ws, model);
    let holder = |expires: &str| {
        json!({"name": "runbook.lock", "description": json!({
            "run_id": "20260101T000000Z-dead", "host": "elsewhere", "user": "ops", "pid": 4242,
            "since": "2026-01-01T00:00:00Z", "expires_at": expires}).to_string()})
    };
    api(
        server,
        "POST",
        "registered-models/create",
        holder("2999-01-01T00:00:00Z"),
    );
    let (code, stdout, stderr) = output(rollback(&ws, model));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the registry is locked by run `20260101T000000Z-dead` on host `elsewhere` (pid 4242, user `ops`, until 2999-01-01T00:00:00Z)"),
        "{stderr}"
    );
    assert_eq!(champion(server, model).as_deref(), Some("5"));
    let (code, stdout, _) = output({
        let mut c = Command::new(BIN);
        c.args(["unlock", "-w"]).arg(ws.path());
        c
    });
    assert_eq!(code, 0);
    assert!(
        stdout.contains("removed the lock of run `20260101T000000Z-dead` on host `elsewhere`"),
        "{stdout}"
    );
    assert!(!lock_exists(server));
    let (_, stdout, _) = output({
        let mut c = Command::new(BIN);
        c.args(["unlock", "-w"]).arg(ws.path());
        c
    });
    assert!(stdout.contains("is not locked"), "{stdout}");

    // An expired lock (its run died) is taken over.
    api(
        server,
        "POST",
        "registered-models/create",
        holder("2020-01-01T00:00:00Z"),
    );
    let (code, stdout, stderr) = output(rollback(&ws, model));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(champion(server, model).as_deref(), Some("4"));
    assert!(!lock_exists(server));
}

#[test]
fn mlflow_missing_model_and_registry_check_problems_are_reported() {
    let Some((server, _one)) = server() else {
        return;
    };
    let ws = workspace(&server.uri, "");
    let (code, _, stderr) = output(rollback(&ws, "no_such_model"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("there is no production version of 'no_such_model'"),
        "{stderr}"
    );
    // A version whose file this workspace does not have is a `registry::check` problem.
    let model = "sl_check";
    register(server, &ws, model);
    std::fs::remove_file(ws.join("models/sl_model_v2.json")).unwrap();
    ws.write(
        "runbooks/check.rhai",
        "//! name: check\n//! version: 1.0.0\n//! description: check\nstep \"check\" { for p in registry::check() { print(`problem: ${p}`); } }\n",
    );
    let (code, stdout, stderr) = output({
        let mut c = Command::new(BIN);
        c.args(["run", "runbooks/check.rhai", "--dry-run"])
            .current_dir(ws.path());
        c
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "problem: `sl_check` `2`: model file `models/sl_model_v2.json` does not exist"
        ),
        "{stdout}"
    );
}

/// A local server that answers every request with an HTML error page, like a proxy.
fn html_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(20) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    uri
}

#[test]
fn mlflow_unreachable_server_and_html_pages_are_clear_errors_that_change_nothing() {
    // No MLflow needed: nothing listens on the first, the second is a proxy's error page.
    let uri = format!("http://127.0.0.1:{}", free_port());
    let ws = workspace(&uri, "");
    let files = ws.snapshot();
    let (code, stdout, stderr) = output(rollback(&ws, "sl_forecaster"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("registry server `{uri}`: cannot be reached")),
        "{stderr}"
    );
    assert!(stderr.contains("is the MLflow server running"), "{stderr}");
    ws.snapshot().assert_same(&files);

    let uri = html_server();
    let ws = workspace(&uri, "");
    let files = ws.snapshot();
    let (code, stdout, stderr) = output(rollback(&ws, "sl_forecaster"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("registry server `{uri}`: answered `registered-models/create` with 502 and an HTML page (title `502 Bad Gateway`), not the MLflow API")),
        "{stderr}"
    );
    ws.snapshot().assert_same(&files);
}

#[test]
fn mlflow_configuration_errors_name_the_key() {
    let ws = Ws::generated(&["--versions", "2", "--rows", "50"]);
    for (yaml, wanted) in [
        (
            "registry:\n  store: mlflow\n",
            "the `mlflow` store needs `registry.tracking_uri`",
        ),
        (
            "registry:\n  store: mlflow\n  tracking_uri: http://127.0.0.1:1\n  path: x\n",
            "unknown key `registry.path` for the `mlflow` store",
        ),
        (
            "registry:\n  store: mlflow\n  tracking_uri: http://127.0.0.1:1\n  timeout: soon\n",
            "`registry.timeout`: `soon` is not a duration",
        ),
        (
            "registry:\n  store: mlflow\n  tracking_uri: http://127.0.0.1:1\n  token_env: RUNBOOK_TEST_NO_SUCH_TOKEN\n",
            "names the environment variable `RUNBOOK_TEST_NO_SUCH_TOKEN`, which is not set",
        ),
        (
            "registry:\n  store: etcd\n",
            "unknown registry store `etcd`; the known ones are `json` and `mlflow`",
        ),
    ] {
        ws.write("runbook.yaml", yaml);
        let (code, stdout, stderr) = output(rollback(&ws, "sl_forecaster"));
        assert_eq!(code, 1, "{yaml}\n{stdout}\n{stderr}");
        assert!(stderr.contains(wanted), "{yaml}\n{stderr}");
    }
    ws.write("runbook.yaml", "registry:\n  store: json\n");
    let (code, stdout, _) = output({
        let mut c = Command::new(BIN);
        c.args(["unlock", "-w"]).arg(ws.path());
        c
    });
    assert_eq!(code, 0);
    assert!(
        stdout.contains("the `json` store has no lock to remove"),
        "{stdout}"
    );
}
