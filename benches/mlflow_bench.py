#!/usr/bin/env python3
"""Time a full rollback against a local MLflow server, next to the JSON-file store.

Starts `mlflow server` (from target/mlflow-venv, or --mlflow) on a free port of 127.0.0.1
with a fresh SQLite file, and for each repetition makes a fresh workspace (5 versions, from
../shared/bench/make_workspace.py or `runbook demo --no-run`) and a fresh registered model
with 5 versions, v5 holding the alias. It then runs runbooks/full_rollback.rhai with the
binary (target/release/runbook by default) against the MLflow store, real and dry, and
against the JSON store in the same kind of workspace, and prints the medians and the number
of HTTP requests the store sent (counted from `RUNBOOK_HTTP_TRACE=1`, one stderr line per
request). Only the Python standard library is used. The server is stopped by pid at the end.

    python3 benches/mlflow_bench.py [--reps 7] [--binary target/release/runbook]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(uri, method, endpoint, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{endpoint}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def make_workspace(binary, path):
    script = os.path.join(REPO, "..", "shared", "bench", "make_workspace.py")
    if os.path.exists(script):
        cmd = [sys.executable, script, path, "--versions", "5", "--rows", "1000"]
    else:
        cmd = [binary, "demo", "--no-run", path, "--versions", "5"]
    subprocess.run(cmd, check=True, capture_output=True)


def register(uri, ws, name):
    api(uri, "POST", "registered-models/create", {"name": name})
    exp = api(uri, "POST", "experiments/create", {"name": f"exp-{name}"})["experiment_id"]
    for n in range(1, 6):
        run = api(uri, "POST", "runs/create", {"experiment_id": exp})["run"]["info"]
        art = os.path.join(run["artifact_uri"], "model")
        os.makedirs(art, exist_ok=True)
        src = os.path.join(art, f"sl_model_v{n}.json")
        shutil.copy(os.path.join(ws, "models", f"sl_model_v{n}.json"), src)
        status = "production" if n == 5 else "superseded"
        api(uri, "POST", "model-versions/create", {
            "name": name, "source": src, "run_id": run["run_id"], "tags": [
                {"key": "runbook.model_path", "value": f"models/sl_model_v{n}.json"},
                {"key": "runbook.status", "value": status},
                {"key": "runbook.promoted_at", "value": f"2026-01-0{n}T00:00:00Z"},
            ]})
    api(uri, "POST", "registered-models/alias",
        {"name": name, "alias": "champion", "version": "5"})


def timed(binary, ws, model, dry):
    cmd = [binary, "run", os.path.join(REPO, "runbooks", "full_rollback.rhai"), "-w", ws,
           "-q", "-p", f"model={model}"]
    if dry:
        cmd.append("--dry-run")
    env = dict(os.environ, RUNBOOK_HTTP_TRACE="1")
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    calls = sum(1 for line in p.stderr.splitlines() if line.startswith("http: "))
    return elapsed, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "runbook"))
    ap.add_argument("--mlflow", default=os.environ.get(
        "RUNBOOK_MLFLOW", os.path.join(REPO, "target", "mlflow-venv", "bin", "mlflow")))
    args = ap.parse_args()
    for tool in (args.binary, args.mlflow):
        if not os.path.exists(tool):
            sys.exit(f"`{tool}` does not exist (cargo build --release; bash .ci/run installs MLflow)")

    tmp = tempfile.mkdtemp(prefix="rb-mlflow-bench-")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen(
        [args.mlflow, "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
         "--default-artifact-root", f"{tmp}/artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=log, start_new_session=True,
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    try:
        started = time.time()
        while True:
            try:
                api(uri, "GET", "experiments/search?max_results=1")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() - started > 180:
                    sys.exit("the MLflow server did not answer within 180 s")
                time.sleep(0.25)
        print(f"server {uri} answered after {time.time() - started:.1f} s")
        rows = {"mlflow real": [], "mlflow dry": [], "json real": []}
        calls = {"mlflow real": [], "mlflow dry": []}
        for i in range(args.reps):
            ws = os.path.join(tmp, f"ws{i}")
            make_workspace(args.binary, ws)
            json_ws = os.path.join(tmp, f"json{i}")
            shutil.copytree(ws, json_ws, symlinks=True)
            with open(os.path.join(ws, "runbook.yaml"), "w") as f:
                f.write(f"registry:\n  store: mlflow\n  tracking_uri: {uri}\n")
            model = f"sl_bench_{i}"
            register(uri, ws, model)
            ms, n = timed(args.binary, ws, model, dry=True)
            rows["mlflow dry"].append(ms)
            calls["mlflow dry"].append(n)
            ms, n = timed(args.binary, ws, model, dry=False)
            rows["mlflow real"].append(ms)
            calls["mlflow real"].append(n)
            ms, _ = timed(args.binary, json_ws, "sl_forecaster", dry=False)
            rows["json real"].append(ms)
        print(f"\nfull rollback, 5 versions, {args.reps} runs each, median (min), "
              f"binary {os.path.relpath(args.binary, REPO)}, load {os.getloadavg()[0]:.2f}")
        print("| store | run | median | min | HTTP calls |")
        print("| --- | --- | --- | --- | --- |")
        for key, samples in rows.items():
            store, mode = key.split()
            n = calls.get(key)
            shown = str(statistics.median(n)) if n else "—"
            print(f"| {store} | {mode} | {statistics.median(samples):.1f} ms "
                  f"| {min(samples):.1f} ms | {shown} |")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
