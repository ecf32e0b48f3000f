#!/usr/bin/env python3
"""Validation benchmarks: runbook's native loaders and XGBoost evaluator against pandas and
xgboost, on the same machine, at the scale of issue 13.

Usage:
    python3 benches/validation_bench.py [--runs N] [--rows N] [--quick]

Needs the release example (`cargo build --release --example validate_csv`) and the fixtures
venv (`python3 tests/fixtures/make_fixtures.py` creates target/fixtures-venv with xgboost,
pandas and pyarrow); this script re-runs itself inside that venv. Data and the model are
generated once under target/bench-validation/ (1,000,000 rows x 8 features as CSV, .npy and
Parquet; a 300-tree depth-6 XGBoost model trained on 100,000 of the rows).

Figures are medians (and minimums) over --runs repetitions, with the load average before
and after; nothing is asserted. Measured:
  1. XGBoost prediction, in process: runbook's evaluator (the `predict` time the example
     reports) vs xgboost's Booster.predict on a DMatrix and inplace_predict on the array,
     both on all cores; and peak RSS of the runbook process on .npy input.
  2. Whole process, load + predict + MSE: the example vs a Python script (pandas/numpy +
     xgboost), for CSV, .npy and Parquet.
  3. Parquet load of 1M x 8: in process (the example's `load` time vs pandas.read_parquet
     + to_numpy) and whole process.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PY = os.path.join(ROOT, "target", "fixtures-venv", "bin", "python")
OUT = os.path.join(ROOT, "target", "bench-validation")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "validate_csv")
FEATURES = [f"f{i}" for i in range(8)]


def in_venv():
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
        import xgboost  # noqa: F401
        return True
    except ImportError:
        return False


def make_data(rows):
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    os.makedirs(OUT, exist_ok=True)
    stamp = os.path.join(OUT, f"ready-{rows}")
    if os.path.exists(stamp):
        return
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 8))
    y = X @ np.arange(1, 9) / 10 + np.sin(X[:, 0] * X[:, 1]) + rng.normal(scale=0.1, size=rows)
    df = pd.DataFrame(X, columns=FEATURES)
    df["y"] = y
    df.to_csv(os.path.join(OUT, "data.csv"), index=False, float_format="%.6f")
    # The CSV's values, so every format holds the same numbers.
    df = pd.read_csv(os.path.join(OUT, "data.csv"))
    df.to_parquet(os.path.join(OUT, "data.parquet"), index=False)
    np.save(os.path.join(OUT, "data.npy"), df.to_numpy(dtype=np.float64))
    n_train = min(100_000, rows)
    dtrain = xgb.DMatrix(df[FEATURES].to_numpy()[:n_train], label=df["y"].to_numpy()[:n_train],
                         feature_names=FEATURES)
    booster = xgb.train({"max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": 1,
                         "objective": "reg:squarederror"}, dtrain, num_boost_round=300)
    booster.save_model(os.path.join(OUT, "model.json"))
    # The .npy matrix names its features x0..x7: a copy of the model with those names.
    booster.feature_names = [f"x{i}" for i in range(8)]
    booster.save_model(os.path.join(OUT, "model_x.json"))
    open(stamp, "w").close()


def run(cmd):
    """Wall time, stdout and stderr of one process."""
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}): {p.stderr}")
    return wall, p.stdout, p.stderr


def run_rss(cmd):
    """Wall time, peak RSS (MiB), stdout and stderr of one process. Measured by GNU time:
    the rusage of a child forked from this Python process counts the parent's pages it
    inherited before exec (pandas and xgboost, about 180 MiB), not the program's own."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb %M"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}): {p.stderr}")
    kb = int([l for l in p.stderr.splitlines() if l.startswith("maxrss_kb ")][-1].split()[1])
    return wall, kb / 1024.0, p.stdout, p.stderr


PY_WHOLE = r"""
import sys, numpy as np
path, model = sys.argv[1], sys.argv[2]
if path.endswith(".npy"):
    a = np.load(path); X, y = a[:, :-1], a[:, -1]; names = [f"x{i}" for i in range(X.shape[1])]
else:
    import pandas as pd
    df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    names = [c for c in df.columns if c != "y"]; X, y = df[names].to_numpy(), df["y"].to_numpy()
import xgboost as xgb
b = xgb.Booster(model_file=model)
p = b.predict(xgb.DMatrix(X, feature_names=names))
print(f"mse {np.mean((y - p) ** 2):.6f}")
"""

PY_INPROC = r"""
import json, sys, time, numpy as np, xgboost as xgb
a = np.load(sys.argv[1]); X = a[:, :-1]; runs = int(sys.argv[3])
b = xgb.Booster(model_file=sys.argv[2])
names = [f"x{i}" for i in range(X.shape[1])]
t = []; ti = []; tdm = []
for _ in range(runs):
    s = time.perf_counter(); dm = xgb.DMatrix(X, feature_names=names); tdm.append(time.perf_counter() - s)
    s = time.perf_counter(); p = b.predict(dm); t.append(time.perf_counter() - s)
    s = time.perf_counter(); q = b.inplace_predict(X); ti.append(time.perf_counter() - s)
print(json.dumps({"predict": t, "inplace": ti, "dmatrix": tdm, "first": float(p[0])}))
"""

PY_PARQUET = r"""
import json, sys, time
s = time.perf_counter()
import pandas as pd, numpy as np
imp = time.perf_counter() - s
t = []
for _ in range(int(sys.argv[2])):
    s = time.perf_counter()
    df = pd.read_parquet(sys.argv[1]); X = df[[c for c in df.columns if c != "y"]].to_numpy(); y = df["y"].to_numpy()
    t.append(time.perf_counter() - s)
print(json.dumps({"load": t, "import": imp}))
"""

PY_LOAD_ONLY = r"""
import sys, numpy as np, pandas as pd
df = pd.read_parquet(sys.argv[1]); X = df[[c for c in df.columns if c != "y"]].to_numpy(); y = df["y"].to_numpy()
print(X.shape)
"""


def ms(v):
    return f"{v * 1000:.1f} ms"


def summary(samples):
    return statistics.median(samples), min(samples)


def parse_example(err):
    # "load X ms, predict Y ms"
    line = [l for l in err.splitlines() if l.startswith("load ")][0]
    load = float(line.split()[1]) / 1000
    predict = float(line.split()[4]) / 1000
    return load, predict


def main():
    if not in_venv():
        if not os.path.exists(VENV_PY):
            raise SystemExit("no venv: run `python3 tests/fixtures/make_fixtures.py` first")
        os.execv(VENV_PY, [VENV_PY] + sys.argv)
    args = sys.argv[1:]
    runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 5
    rows = int(args[args.index("--rows") + 1]) if "--rows" in args else 1_000_000
    if "--quick" in args:
        runs, rows = 2, 100_000
    if not os.path.exists(EXAMPLE):
        raise SystemExit("build it first: cargo build --release --example validate_csv")
    make_data(rows)
    load_before = os.getloadavg()
    csv, npy, pq = (os.path.join(OUT, f) for f in ("data.csv", "data.npy", "data.parquet"))
    model, model_x = os.path.join(OUT, "model.json"), os.path.join(OUT, "model_x.json")
    py = [sys.executable, "-c"]
    results = {"rows": rows, "runs": runs, "load_before": load_before}

    # 1. In-process prediction.
    ours_pred, ours_rss = [], []
    for _ in range(runs):
        _, rss, out, err = run_rss([EXAMPLE, npy, model_x])
        ours_pred.append(parse_example(err)[1])
        ours_rss.append(rss)
    _, out, _ = run(py + [PY_INPROC, npy, model_x, str(runs)])
    xgb_inproc = json.loads(out)
    results["predict"] = {"runbook": ours_pred, "xgboost_predict": xgb_inproc["predict"],
                          "xgboost_inplace": xgb_inproc["inplace"],
                          "xgboost_dmatrix": xgb_inproc["dmatrix"], "runbook_rss_mib": ours_rss}

    # 2. Whole process.
    whole = {}
    for name, data, m in [("csv", csv, model), ("npy", npy, model_x), ("parquet", pq, model)]:
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(run([EXAMPLE, data, m])[0])
            theirs.append(run(py + [PY_WHOLE, data, m])[0])
        whole[name] = {"runbook": ours, "python": theirs}
    results["whole"] = whole

    # 3. Parquet load.
    ours_load, ours_whole, pandas_whole = [], [], []
    for _ in range(runs):
        wall, out, err = run([EXAMPLE, pq, model_x.replace("model_x", "model")])
        ours_load.append(parse_example(err)[0])
        pandas_whole.append(run(py + [PY_LOAD_ONLY, pq])[0])
    _, out, _ = run(py + [PY_PARQUET, pq, str(runs)])
    pandas_inproc = json.loads(out)
    results["parquet"] = {"runbook_load": ours_load, "pandas_load": pandas_inproc["load"],
                          "pandas_import": pandas_inproc["import"],
                          "pandas_whole": pandas_whole}
    results["load_after"] = os.getloadavg()

    p = results["predict"]
    print(f"validation benchmarks: {rows} rows x 8 features, 300 trees of depth 6, {runs} runs, "
          f"{os.cpu_count()} cores, load average {tuple(round(x, 2) for x in load_before)} before, "
          f"{tuple(round(x, 2) for x in results['load_after'])} after")
    print("median (min)")
    def line(label, samples):
        med, lo = summary(samples)
        print(f"  {label:<58} {ms(med):>10} ({ms(lo)})")
    print("XGBoost prediction, in process:")
    line("runbook evaluator (predict only)", p["runbook"])
    line("xgboost Booster.predict(DMatrix)", p["xgboost_predict"])
    line("xgboost inplace_predict(ndarray)", p["xgboost_inplace"])
    line("xgboost DMatrix construction (not in the line above)", p["xgboost_dmatrix"])
    print(f"  runbook peak RSS on .npy (whole process): {statistics.median(p['runbook_rss_mib']):.0f} MiB "
          f"(data {rows * 9 * 8 / 2**20:.0f} MiB as f64 incl. target, output {rows * 8 / 2**20:.0f} MiB)")
    print("whole process, load + predict + MSE:")
    for name, w in whole.items():
        line(f"runbook example, {name}", w["runbook"])
        line(f"python (pandas/numpy + xgboost), {name}", w["python"])
    q = results["parquet"]
    print("Parquet load, 1M x 8:")
    line("runbook load_parquet (in process)", q["runbook_load"])
    line("pandas.read_parquet + to_numpy (in process)", q["pandas_load"])
    line("python process: import pandas, read_parquet, to_numpy", q["pandas_whole"])
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"samples: {os.path.join(OUT, 'results.json')}")


if __name__ == "__main__":
    main()
