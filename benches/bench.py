#!/usr/bin/env python3
"""Side-by-side benchmarks of `runbook` against the rollback plan's own tools.

    python3 benches/bench.py [--bin PATH] [--quick] [--only NAME[,NAME...]]
                             [--reps N] [--shared DIR] [--regenerate] [--out DIR]

Without --bin it builds the distributed binary first (`cargo dist`: the `dist` profile,
static; see .cargo/config.toml) and measures that. `cargo bench` runs this script; options
go after `--` (`cargo bench --bench compare -- --quick`). Sections (NAME for --only):

  rollback    runbooks/full_rollback.rhai vs shared/bench/plan_rollback.sh, 5-version workspace
  scale       the same at 10,000 versions and 100,000 extra files, real and dry run
  scaling     the same at 5, 100, 1,000, 10,000 and 50,000 versions: how cost grows
  find        fs::newer (benches/runbooks/find_newer.rhai) vs GNU `find models/ -newer ...`,
              with the other cores kept busy
  validate    load + predict + MSE (benches/runbooks/validate.rhai) vs pandas / numpy
  steps       engine overhead per step: a 1,000-step runbook vs an empty one
  durability  the 5-version rollback (`--sync end`) while another process writes 2 GB to
              the same filesystem, vs the same run followed by `sync -f` (a `syncfs`)

Only the Python standard library is used here; numpy and pandas (the validation baseline) go
into a virtual environment under target/ that this script creates on first use. Everything
it writes stays inside the checkout: workspaces under target/bench/, results in
benches/results/ and the table in README.md (full runs; --quick and --only write to
target/bench/results/ instead, so a smoke run never replaces the published figures).
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "target", "bench")
VENV = os.path.join(ROOT, "target", "bench-venv")
# The project README shows the latest table of a full run, between these markers.
README = os.path.join(ROOT, "README.md")
SECTIONS = ["rollback", "scale", "scaling", "find", "validate", "steps", "durability"]
README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"


class BenchError(Exception):
    """A section could not produce a trustworthy figure (a run failed or did the wrong thing)."""


# ---------------------------------------------------------------------------------------------
# Configuration


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=None,
                    help="the runbook binary to measure (default: build it with `cargo dist`)")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared", "bench"),
                    help="directory holding make_workspace.py, plan_rollback.sh, pandas_mse.py "
                         "(default: ../shared/bench beside the checkout)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 3 repetitions, sizes / 10 (1,000 versions / 10,000 files, "
                         "100,000 rows, scaling up to 5,000 versions, a 256 MB writer)")
    ap.add_argument("--only", default=None,
                    help="comma-separated sections to run: " + ", ".join(SECTIONS))
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions for every section (default: 7, but 5 for the scale "
                         "rollback; 3 with --quick)")
    ap.add_argument("--regenerate", action="store_true",
                    help="make the workspaces anew even if target/bench/ws/ has them")
    ap.add_argument("--out", default=None,
                    help="where latest.md / latest.json go (default: benches/results/ for a "
                         "full run of every section, target/bench/results/ otherwise)")
    # cargo passes --bench to harness-less bench targets; compare.rs strips it, but a stray
    # one must not stop the run.
    ap.add_argument("--bench", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.bin = os.path.abspath(a.bin) if a.bin else None
    a.shared = os.path.abspath(a.shared)
    a.only = SECTIONS if a.only is None else [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in a.only if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if a.reps is not None and a.reps < 1:
        ap.error("--reps must be at least 1")
    a.full = not a.quick and a.only == SECTIONS
    if a.out is None:
        a.out = os.path.join(ROOT, "benches", "results") if a.full else os.path.join(BENCH_DIR, "results")
    return a


class Sizes:
    def __init__(self, quick, reps):
        # The sizes; --quick shrinks the big ones by 10x for a smoke run.
        self.small_versions = 5
        self.scale_versions = 1_000 if quick else 10_000
        self.scale_files = 10_000 if quick else 100_000
        self.rows = 100_000 if quick else 1_000_000
        self.steps = 1_000
        self.scaling_versions = [5, 100, 1_000, 5_000] if quick else [5, 100, 1_000, 10_000, 50_000]
        self.writer_mb = 256 if quick else 2048
        self.reps_small = reps or (3 if quick else 7)
        # Every scale repetition copies 100,000 files per contender: 5 keeps the run in minutes.
        self.reps_scale = reps or (3 if quick else 5)

    def as_json(self):
        return dict(vars(self))


# ---------------------------------------------------------------------------------------------
# Helpers: processes, workspaces, timing


def rel(path):
    """A path as the reader of the report knows it: relative to the checkout when inside it
    or beside it (../shared/bench), absolute otherwise."""
    p = os.path.abspath(path)
    if p == ROOT or p.startswith(ROOT + os.sep) or p.startswith(os.path.dirname(ROOT) + os.sep):
        return os.path.relpath(p, ROOT)
    return p


def sh_quote(argv):
    return shlex.join(argv)


def run_checked(argv, cwd=None, env=None, what=None):
    """Run an untimed helper command; fail the section with its stderr if it fails."""
    r = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise BenchError(f"{what or sh_quote(argv)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def make_workspace(args, name, *flags):
    """A pristine workspace from make_workspace.py, made once and reused across runs.

    The key file records the flags and a hash of the generator, so a changed generator or
    size makes a new one. Runs never happen in the pristine copy (see `fresh_copy`).
    """
    gen = os.path.join(args.shared, "make_workspace.py")
    with open(gen, "rb") as f:
        key = json.dumps({"flags": list(flags), "generator": hashlib.sha256(f.read()).hexdigest()})
    ws = os.path.join(BENCH_DIR, "ws", name)
    key_file = ws + ".key"
    if not args.regenerate and os.path.isdir(ws) and os.path.exists(key_file):
        with open(key_file) as f:
            if f.read() == key:
                return ws
    remove_tree(ws)
    if os.path.exists(key_file):
        os.remove(key_file)
    os.makedirs(os.path.dirname(ws), exist_ok=True)
    print(f"  making workspace {rel(ws)} ({' '.join(flags)}) ...", flush=True)
    t = time.perf_counter()
    run_checked([sys.executable, gen, ws, *flags], what="make_workspace.py")
    print(f"  ... {time.perf_counter() - t:.1f} s", flush=True)
    with open(key_file, "w") as f:
        f.write(key)
    return ws


# Files the harness deleted since the disk last settled, and when it last deleted any.
# ext4 without a journal (this machine's filesystem) keeps a deleted inode out of reuse for a
# minute (`recently_deleted`), and every file made in its block group meanwhile scans past
# all of them: right after the copies of a 50,000-version workspace were deleted, the same
# 5-version rollback took 18.3 ms in a directory of that group and 6.9 ms in a new one
# (median of 21, paired, same binary, load 0.3). That is the harness's own residue, not the
# contenders' cost, and it hits whoever creates more files. So copies are deleted only when
# a measurement is over, and the next one waits until the deletions have aged.
DELETED = {"files": 0, "at": 0.0}
QUIET_AFTER_DELETE_S = 65
SETTLE_FROM_FILES = 5_000


def count_files(path):
    """Files and directories in a tree, the tree itself included."""
    return sum(len(d) + len(f) for _, d, f in os.walk(path)) + 1


def remove_tree(path, files=None):
    if os.path.lexists(path):
        if files is None:
            files = count_files(path)
        # rm is several times faster than shutil.rmtree on 100,000 files.
        subprocess.run(["rm", "-rf", "--", path], check=True)
        DELETED["files"] += files
        DELETED["at"] = time.monotonic()


def settle_disk():
    """Before a measurement: dirty pages written back, and inodes deleted in bulk aged past
    ext4's recently-deleted window (see DELETED)."""
    os.sync()
    if DELETED["files"] >= SETTLE_FROM_FILES:
        wait = DELETED["at"] + QUIET_AFTER_DELETE_S - time.monotonic()
        if wait > 0:
            print(f"  waiting {wait:.0f} s for {DELETED['files']:,} deleted files' inodes to age",
                  flush=True)
            time.sleep(wait)
    DELETED["files"] = 0


def file_count(path, memo={}):
    """`count_files` of a pristine workspace, counted once."""
    if path not in memo:
        memo[path] = count_files(path)
    return memo[path]


def fresh_copy(src, dst):
    remove_tree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-a", "--", src, dst], check=True)
    return dst


def timed_run(argv, cwd=None, env=None):
    """Wall time (ms) of the whole process, as a user waits for it; stdout is discarded.

    `argv` may also be a list of commands, run one after the other and timed together (a run
    followed by `sync -f`). stderr is kept (it is small) so that a failing run can say why; a
    benchmark of a failing run is worthless, so a non-zero exit aborts the section.
    """
    commands = argv if argv and isinstance(argv[0], list) else [argv]
    t0 = time.perf_counter()
    for command in commands:
        r = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise BenchError(f"`{sh_quote(command)}` exited {r.returncode}: "
                             f"{r.stderr.decode(errors='replace').strip()[-2000:]}")
    return (time.perf_counter() - t0) * 1000.0


class Contender:
    """One command measured in a section.

    `workspace(rep)` prepares (untimed) the directory the run works on and returns it; `argv`
    and `cwd` are functions of that directory; `verify(ws)` raises BenchError when the run did
    not do its job; `cleanup(ws)` runs after verification. `around` (optional) is a context
    manager factory wrapped around each timed run, untimed itself (a concurrent writer).
    """

    def __init__(self, key, argv, workspace, cwd=None, verify=None, cleanup=None, env=None, around=None):
        self.key = key
        self.argv = argv
        self.workspace = workspace
        self.cwd = cwd or (lambda ws: ROOT)
        self.verify = verify or (lambda ws: None)
        self.cleanup = cleanup or (lambda ws: None)
        self.env = env
        self.around = around
        self.samples = []
        self.loads = []  # the 1-minute load average before each run
        self.command = None  # as first run, for the report (see `display_command`)


# Copies made during a measurement, deleted when it is over (see DELETED).
SPENT = []


def copies_of(pristine, slot):
    """A fresh `cp -a` of `pristine` for every run, made just before it (identical start
    states), and deleted once the measurement is over, not between runs (see DELETED)."""
    base = os.path.join(BENCH_DIR, "run", slot)
    n = file_count(pristine)
    return (lambda rep: fresh_copy(pristine, f"{base}-{rep}")), (lambda ws: SPENT.append((ws, n)))


def remove_spent():
    for ws, n in SPENT:
        remove_tree(ws, n)
    SPENT.clear()


def fixed(path):
    """One directory for every run: for runs that only read (they add nothing but a run log)."""
    return lambda rep: path


def measure(contenders, reps, label):
    """Run the contenders interleaved (A, B, A, B, ...) so drift in machine load hits all alike.

    Each run gets its workspace copy just before it (its cell), so no contender runs beside a
    batch of copies made for the others (a batch made first ran 7% slower). The copies are
    deleted when all runs are done, and the next measurement first waits until inodes
    deleted in bulk have aged (`settle_disk`), so no run creates its files among thousands of
    just-deleted inodes. Each run is preceded by os.sync(), so no run pays for writing back
    the copy's dirty pages. The load average is recorded before every run.
    """
    tty = sys.stdout.isatty()
    settle_disk()
    for rep in range(reps):
        if tty:
            print(f"  {label}: repetition {rep + 1}/{reps}", end="\r", flush=True)
        for c in contenders:
            ws = c.workspace(rep)
            argv, cwd = c.argv(ws), c.cwd(ws)
            if c.command is None:
                c.command = display_command(argv, cwd, ws)
            os.sync()
            c.loads.append(loadavg()[0] if loadavg() else None)
            with (c.around() if c.around else contextlib.nullcontext()):
                c.samples.append(timed_run(argv, cwd=cwd, env=c.env))
            c.verify(ws)
            c.cleanup(ws)
    if tty:
        print(" " * 60, end="\r")
    remove_spent()


def display_command(argv, cwd, ws):
    """The command as a reader could type it: `WS` for the workspace, other paths relative to
    the checkout, or under `REPO/` when the command runs in the workspace."""
    if argv and isinstance(argv[0], list):
        return " && ".join(display_command(a, cwd, ws) for a in argv)
    def show(s):
        if s == ws:
            return "WS"
        if s.startswith(ws + os.sep):
            return "WS/" + os.path.relpath(s, ws)
        if not os.path.isabs(s):
            return s
        r = rel(s)
        return r if cwd != ws or os.path.isabs(r) else "REPO/" + r

    text = sh_quote([show(a) for a in argv])
    return f"(cd WS && {text})" if cwd == ws else text


def stats(contender):
    """Median, minimum and every sample of a contender, with the load average around them."""
    samples = contender.samples
    loads = [x for x in contender.loads if x is not None]
    return {"median_ms": statistics.median(samples), "min_ms": min(samples),
            "samples_ms": [round(s, 3) for s in samples],
            "load": round(statistics.median(loads), 2) if loads else None,
            "loads": loads}


# ---------------------------------------------------------------------------------------------
# Verification


def registry(ws):
    with open(os.path.join(ws, "models", "registry.json")) as f:
        return json.load(f)


def production_version(ws, model="sl_forecaster"):
    prod = [e["version"] for e in registry(ws) if e["name"] == model and e["is_production"]]
    return prod[0] if len(prod) == 1 else None


def expect_rolled_back(versions, ours):
    """The rollback happened: v<N-1> is production. Ours must also have removed v<N> entirely
    (the plan's script leaves it in the registry, pointing at deleted files)."""
    good, bad = f"v{versions - 1}", f"v{versions}"

    def verify(ws):
        prod = production_version(ws)
        if prod != good:
            raise BenchError(f"after the run in {ws}, production is {prod}, not {good}")
        if os.path.exists(os.path.join(ws, "models", f"sl_model_{bad}.json")):
            raise BenchError(f"after the run in {ws}, models/sl_model_{bad}.json is still there")
        if ours and any(e["version"] == bad for e in registry(ws) if e["name"] == "sl_forecaster"):
            raise BenchError(f"after the run in {ws}, {bad} is still in the registry")
    return verify


def expect_unchanged(pristine):
    with open(os.path.join(pristine, "models", "registry.json"), "rb") as f:
        before = f.read()

    def verify(ws):
        with open(os.path.join(ws, "models", "registry.json"), "rb") as f:
            if f.read() != before:
                raise BenchError(f"the dry run in {ws} changed models/registry.json")
    return verify


def printed_values(output):
    """What the runbook's `print` calls wrote: the console shows them as `| text` lines."""
    return [m.group(1) for m in re.finditer(r"^\s*\| (.*)$", output, re.M)]


# ---------------------------------------------------------------------------------------------
# Sections. Each returns a list of result rows (dicts) and appends notes to `checks`.


def row(key, name, ours=None, base=None, ratio=None, target="", holds=None, figure=None, note=""):
    return {"id": key, "benchmark": name, "ours": ours, "baseline": base, "ratio": ratio,
            "target": target, "holds": holds, "figure": figure, "note": note}


def plan_env(args):
    """The plan script calls `python3` three times. On machines where `python3` is a version
    manager's shim (pyenv: a bash script, ~100 ms a call), the baseline would be charged for
    the shim; this PATH puts the interpreter running the harness first, so the baseline is
    the script itself, not the shim."""
    pybin = os.path.join(BENCH_DIR, "pybin")
    os.makedirs(pybin, exist_ok=True)
    link = os.path.join(pybin, "python3")
    target = os.path.realpath(sys.executable)
    if os.path.realpath(link) != target:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    return {**os.environ, "PATH": pybin + os.pathsep + os.environ.get("PATH", "")}


def rollback_contenders(args, pristine, versions, tag, dry=True):
    runbook = os.path.join(ROOT, "runbooks", "full_rollback.rhai")
    plan = os.path.join(args.shared, "plan_rollback.sh")
    out = []
    ws, clean = copies_of(pristine, f"{tag}-ours")
    out.append(Contender("ours", lambda w: [args.bin, "run", runbook, "-w", w, "-q"], ws,
                         verify=expect_rolled_back(versions, ours=True), cleanup=clean))
    if dry:
        ws, clean = copies_of(pristine, f"{tag}-dry")
        out.append(Contender("ours_dry", lambda w: [args.bin, "run", runbook, "-w", w, "-q", "--dry-run"],
                             ws, verify=expect_unchanged(pristine), cleanup=clean))
    ws, clean = copies_of(pristine, f"{tag}-plan")
    out.append(Contender("plan", lambda w: ["bash", plan, w], ws,
                         verify=expect_rolled_back(versions, ours=False), cleanup=clean,
                         env=plan_env(args)))
    return {c.key: c for c in out}


def section_rollback(args, sz, checks):
    v = sz.small_versions
    pristine = make_workspace(args, f"rollback_v{v}", "--versions", str(v))
    c = rollback_contenders(args, pristine, v, "rollback", dry=False)
    measure(list(c.values()), sz.reps_small, "rollback")
    ours, plan = stats(c["ours"]), stats(c["plan"])
    ratio = plan["median_ms"] / ours["median_ms"]
    checks.append(f"rollback: every run exited 0; after each, v{v - 1} was production and "
                  f"v{v}'s model file gone (ours also removed v{v} from the registry)")
    return [row("rollback", f"full rollback, {v} versions", ours, plan, ratio, "≥ 50× faster than the plan's script",
                ratio >= 50, fmt_ratio(ratio),
                note="plan_rollback.sh",
                ) | {"commands": {"ours": c["ours"].command, "baseline": c["plan"].command}}]


def section_scale(args, sz, checks):
    v, n = sz.scale_versions, sz.scale_files
    pristine = make_workspace(args, f"scale_v{v}_f{n}", "--versions", str(v), "--extra-files", str(n))
    c = rollback_contenders(args, pristine, v, "scale", dry=True)
    measure(list(c.values()), sz.reps_scale, "scale")
    ours, dry, plan = (stats(c[k]) for k in ("ours", "ours_dry", "plan"))
    checks.append(f"scale: every run exited 0; real runs left v{v - 1} in production, dry runs left "
                  f"models/registry.json byte-identical")
    name = f"full rollback, {v:,} versions, {n:,} files"
    cmds = {"ours": c["ours"].command, "baseline": c["plan"].command}
    ratio = plan["median_ms"] / ours["median_ms"]
    return [
        row("scale", name, ours, plan, ratio, "≤ 30 ms and ≥ 12× faster",
            ours["median_ms"] <= 30 and ratio >= 12, f"{ours['median_ms']:.1f} ms, {fmt_ratio(ratio)}")
        | {"commands": cmds},
        # A dry run has no counterpart in the plan; the target is the same wall-time budget.
        row("scale_dry", name + ", dry run", dry, None, None, "≤ 30 ms",
            dry["median_ms"] <= 30, f"{dry['median_ms']:.1f} ms",
            note="no baseline: the plan's script has no dry run") | {"commands": {"ours": c["ours_dry"].command}},
    ]


def section_scaling(args, sz, checks):
    """The full rollback at growing registry sizes, ours and the plan's script, each size a
    workspace of N versions (two files each) and nothing else. The target is the issue's:
    at the largest size at least 10× faster, and cost linear in the size: the largest run
    takes at most (size ratio) × the next smaller one's time (fixed start-up only helps)."""
    rows, growth = [], []
    for i, v in enumerate(sz.scaling_versions):
        pristine = make_workspace(args, f"scaling_v{v}", "--versions", str(v))
        c = rollback_contenders(args, pristine, v, f"scaling{v}", dry=False)
        # Big workspaces take seconds a copy: fewer repetitions there.
        measure(list(c.values()), sz.reps_small if v <= 1_000 else sz.reps_scale, f"scaling {v:,}")
        ours, plan = stats(c["ours"]), stats(c["plan"])
        ratio = plan["median_ms"] / ours["median_ms"]
        growth.append((v, ours, plan))
        last = i == len(sz.scaling_versions) - 1
        if last and len(growth) > 1:
            (pv, po, _), (lv, lo, _) = growth[-2], growth[-1]
            linear = lo["median_ms"] <= (lv / pv) * po["median_ms"]
            grew = lo["median_ms"] / po["median_ms"]
            rows.append(row(f"scaling_{v}", f"full rollback, {v:,} versions", ours, plan, ratio,
                            "linear and ≥ 10× faster", linear and ratio >= 10,
                            f"{fmt_ratio(ratio)}; {grew:.1f}× the time of {pv:,} versions for "
                            f"{lv / pv:.0f}× the versions")
                        | {"commands": {"ours": c["ours"].command, "baseline": c["plan"].command}})
        else:
            rows.append(row(f"scaling_{v}", f"full rollback, {v:,} versions", ours, plan, ratio, "(scaling)",
                            None, fmt_ratio(ratio))
                        | {"commands": {"ours": c["ours"].command, "baseline": c["plan"].command}})
    checks.append("scaling: every run exited 0; after each, v<N-1> was production and v<N>'s model "
                  "file gone (ours also removed v<N> from the registry)")
    return rows


@contextlib.contextmanager
def cpu_burners(n):
    """`n` busy processes for the duration: the rest of the machine is doing other work."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2)  # let them get scheduled before the first timed run
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def writer(path, megabytes):
    """A context manager factory: another process writing `megabytes` MB of new data to
    `path` (the filesystem the workspaces are on) while the timed run goes on. The run starts
    once half is written, so there are dirty pages a `syncfs` would have to flush, and more
    coming; afterwards the writer is waited for, its file removed and the disk synced
    (untimed)."""
    @contextlib.contextmanager
    def around():
        p = subprocess.Popen(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={megabytes}",
                              "status=none"])
        try:
            deadline = time.monotonic() + 60
            while p.poll() is None and time.monotonic() < deadline:
                try:
                    if os.path.getsize(path) >= megabytes * 1024 * 1024 // 2:
                        break
                except OSError:
                    pass
                time.sleep(0.005)
            yield
        finally:
            p.wait()
            if os.path.exists(path):
                os.remove(path)
            os.sync()
    return around


def section_durability(args, sz, checks):
    """The 5-version rollback with its default durability (`--sync end`, whatever this binary
    does for it) while another process writes to the same filesystem, against the old way:
    the same run with `--sync none` followed by `sync -f WS` (one `syncfs`, which waits for
    every dirty page of the filesystem, the writer's too), and against the run on a quiet
    machine. Target: the writer costs the rollback less than 2× its quiet time."""
    v = sz.small_versions
    pristine = make_workspace(args, f"rollback_v{v}", "--versions", str(v))
    runbook = os.path.join(ROOT, "runbooks", "full_rollback.rhai")
    big = os.path.join(BENCH_DIR, "run", "writer.bin")
    around = writer(big, sz.writer_mb)
    cs = []
    for key, extra, then_sync, wrapped in (("quiet", [], False, None), ("ours", [], False, around),
                                           ("syncfs", ["--sync", "none"], True, around)):
        ws, clean = copies_of(pristine, f"durability-{key}")

        def argv(w, extra=extra, then_sync=then_sync):
            run = [args.bin, "run", runbook, "-w", w, "-q"] + extra
            return [run, ["sync", "-f", w]] if then_sync else run
        cs.append(Contender(key, argv, ws, verify=expect_rolled_back(v, ours=True), cleanup=clean,
                            around=wrapped))
    measure(cs, sz.reps_small, "durability")
    quiet, ours, old = (stats(c) for c in cs)
    slowdown = ours["median_ms"] / quiet["median_ms"]
    mb = f"{sz.writer_mb / 1024:.0f} GB" if sz.writer_mb >= 1024 else f"{sz.writer_mb} MB"
    checks.append(f"durability: every run exited 0 and rolled back; the writer wrote {mb} with dd, the "
                  f"timed run starting once half of it was written; quiet median {fmt_ms(quiet)}")
    return [row("durability", f"full rollback, {v} versions, `--sync end`, while {mb} are written",
                ours, old, old["median_ms"] / ours["median_ms"], "< 2× the quiet run",
                slowdown < 2, f"{slowdown:.2f}× the quiet run",
                note="baseline: `--sync none` then `sync -f` (syncfs), same writer")
            | {"commands": {"ours": cs[1].command, "baseline": cs[2].command, "quiet": cs[0].command},
               "quiet": quiet}]


def section_find(args, sz, checks):
    v, n = sz.scale_versions, sz.scale_files
    pristine = make_workspace(args, f"scale_v{v}_f{n}", "--versions", str(v), "--extra-files", str(n))
    # Both only read models/ (runbook adds its run log under .runbook/), so one copy serves
    # every run, and both see the same warm page cache.
    ws = fresh_copy(pristine, os.path.join(BENCH_DIR, "run", "find"))
    runbook = os.path.join(ROOT, "benches", "runbooks", "find_newer.rhai")
    ours = Contender("ours", lambda w: [args.bin, "run", runbook, "-w", ".", "-q"], fixed(ws), cwd=lambda w: w)
    # `find ... > /dev/null` without a shell: stdout is DEVNULL either way, and no shell's
    # start-up is charged to the baseline.
    gnu = Contender("find", lambda w: ["find", "models/", "-newer", "backup_timestamp.txt"], fixed(ws),
                    cwd=lambda w: w)

    # Both must find the same files. fs::newer lists files only; find also prints the
    # directories whose mtime is newer (models/ and archive/*, touched by the generator), so
    # the comparison counts find's regular files.
    out = run_checked([args.bin, "run", runbook, "-w", "."], cwd=ws)
    values = printed_values(out)
    if len(values) != 1 or not values[0].strip().isdigit():
        raise BenchError(f"find_newer.rhai printed {values!r}, expected one count")
    ours_count = int(values[0])
    find_files = len(run_checked(["find", "models/", "-newer", "backup_timestamp.txt", "-type", "f"], cwd=ws).splitlines())
    find_all = len(run_checked(["find", "models/", "-newer", "backup_timestamp.txt"], cwd=ws).splitlines())
    if ours_count != find_files:
        raise BenchError(f"fs::newer found {ours_count} files, find -type f found {find_files}")
    checks.append(f"find: fs::newer and `find -type f` both found {ours_count} files "
                  f"(find without -type f prints {find_all} lines: the extra are directories)")

    # The case: the other cores busy with other work (on a 2-core machine, one).
    busy = max(1, (os.cpu_count() or 2) - 1)
    with cpu_burners(busy):
        measure([ours, gnu], sz.reps_small, "find")
    remove_tree(ws)
    o, g = stats(ours), stats(gnu)
    slower = o["median_ms"] / g["median_ms"]
    checks.append(f"find: measured with {busy} busy process(es) on the other core(s)")
    return [row("find", f"find -newer, {n:,} files, other cores busy", o, g, g["median_ms"] / o["median_ms"],
                "≤ 1.0× GNU find's time", slower <= 1.0, f"{slower:.2f}× find's time")
            | {"commands": {"ours": ours.command, "baseline": gnu.command},
               "counts": {"ours_files": ours_count, "find_files": find_files, "find_lines": find_all}}]


def ensure_venv():
    """numpy + pandas for the baseline, from PyPI, in a venv under target/ made on first use."""
    py = os.path.join(VENV, "bin", "python")
    probe = [py, "-c", "import numpy, pandas; print(numpy.__version__, pandas.__version__)"]
    if os.path.exists(py):
        r = subprocess.run(probe, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if r.returncode == 0:
            return py, r.stdout.split()
    print(f"  creating {rel(VENV)} with numpy and pandas from PyPI ...", flush=True)
    run_checked([sys.executable, "-m", "venv", VENV], what="python3 -m venv")
    run_checked([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "numpy", "pandas"],
                what="pip install numpy pandas")
    return py, run_checked(probe).split()


def section_validate(args, sz, checks):
    runbook = os.path.join(ROOT, "benches", "runbooks", "validate.rhai")
    check = subprocess.run([args.bin, "check", runbook], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    have_primitives = check.returncode == 0
    if not have_primitives:
        msg = "skipped: the validate:: primitives are not in this build (runbook check failed)"
        print(f"  {msg}\n    {check.stdout.strip().splitlines()[0] if check.stdout.strip() else ''}")
        checks.append("validate: " + msg + "; the baselines were still measured, as the figures to beat")

    py, versions = ensure_venv()
    pristine = make_workspace(args, f"validate_r{sz.rows}", "--rows", str(sz.rows), "--versions", "3")
    npy = os.path.join(pristine, "data", "validation.npy")
    if not os.path.exists(npy):
        # The whole matrix, target `y` as the last column, exactly as the CSV has it.
        run_checked([py, "-c", "import numpy as np, sys; "
                     "np.save(sys.argv[2], np.loadtxt(sys.argv[1], delimiter=',', skiprows=1))",
                     os.path.join(pristine, "data", "validation.csv"), npy], what="making validation.npy")
    # Both only read the data; one copy serves every run (runbook adds only its run log).
    ws = fresh_copy(pristine, os.path.join(BENCH_DIR, "run", "validate"))
    # The newest (badly trained) model: its MSE is large (~10), so pandas_mse.py's six
    # decimals carry better than 1e-6 relative precision for the agreement check.
    model = "models/sl_model_v3.json"
    baseline = os.path.join(args.shared, "pandas_mse.py")
    rows = []
    for kind, data, base_name in (("csv", "data/validation.csv", "pandas + numpy"),
                                  ("npy", "data/validation.npy", "numpy")):
        base = Contender("baseline", lambda w, d=data: [py, baseline, d, model], fixed(ws), cwd=lambda w: w)
        def ours_argv(w, d=data, quiet=True):
            return [args.bin, "run", runbook, "-w", "."] + (["-q"] if quiet else []) + [
                "-p", f"data={d}", "-p", f"model={model}"]
        ours = Contender("ours", ours_argv, fixed(ws), cwd=lambda w: w)
        base_out = run_checked(base.argv(ws), cwd=ws)
        m = re.match(r"mse (\S+)", base_out.strip())
        if not m:
            raise BenchError(f"pandas_mse.py printed {base_out!r}")
        base_mse = float(m.group(1))
        name = f"validation {kind.upper()}, {sz.rows:,} rows × 8"
        target = "≥ 2× faster than pandas + numpy" if kind == "csv" else "(no target)"
        if not have_primitives:
            measure([base], sz.reps_small, f"validate {kind} (baseline only)")
            rows.append(row(f"validate_{kind}", name, None, stats(base), None, target, None, None,
                            note=f"ours skipped: no validate:: primitives in this build; baseline {base_name} "
                                 f"(numpy {versions[0]}, pandas {versions[1]}), mse {base_mse}")
                        | {"commands": {"ours": display_command(ours.argv(ws), ws, ws),
                                        "baseline": display_command(base.argv(ws), ws, ws)}})
            continue
        out = run_checked(ours_argv(ws, quiet=False), cwd=ws)  # not quiet: the MSE is printed
        values = printed_values(out)
        try:
            our_mse = float(values[-1])
        except (IndexError, ValueError):
            raise BenchError(f"validate.rhai printed {values!r}, expected the MSE")
        if abs(our_mse - base_mse) > 1e-6 * abs(base_mse):
            raise BenchError(f"MSE disagrees on {kind}: ours {our_mse!r}, {base_name} {base_mse!r}")
        checks.append(f"validate {kind}: MSE ours {our_mse!r}, {base_name} {base_mse} (agree to 1e-6 relative)")
        measure([ours, base], sz.reps_small, f"validate {kind}")
        o, b = stats(ours), stats(base)
        ratio = b["median_ms"] / o["median_ms"]
        rows.append(row(f"validate_{kind}", name, o, b, ratio, target,
                        ratio >= 2 if kind == "csv" else None, fmt_ratio(ratio),
                        note=f"baseline {base_name} (numpy {versions[0]}, pandas {versions[1]})")
                    | {"commands": {"ours": ours.command, "baseline": base.command}})
    remove_tree(ws)
    return rows


def section_steps(args, sz, checks):
    header = "//! name: steps\n//! version: 1.0.0\n//! description: Benchmark: {what} (engine overhead per step).\n"
    many = os.path.join(BENCH_DIR, f"steps_{sz.steps}.rhai")
    empty = os.path.join(BENCH_DIR, "steps_0.rhai")
    os.makedirs(BENCH_DIR, exist_ok=True)
    with open(many, "w") as f:
        f.write(header.format(what=f"{sz.steps:,} cheap steps") + "\n")
        f.writelines(f'step "s{i}" {{ let x = {i}; }}\n' for i in range(sz.steps))
    with open(empty, "w") as f:
        f.write(header.format(what="no steps, the baseline for the per-step cost"))
    for path in (many, empty):
        run_checked([args.bin, "check", path])

    def contender(key, script, dry):
        # A fresh empty workspace per run: the runbooks touch nothing but their run log.
        slot = os.path.join(BENCH_DIR, "run", f"steps-{key}")

        def ws(rep):
            remove_tree(slot)
            os.makedirs(slot)
            return slot
        argv = lambda w: [args.bin, "run", script, "-w", w, "-q"] + (["--dry-run"] if dry else [])
        return Contender(key, argv, ws, cleanup=remove_tree)

    cs = [contender("many", many, False), contender("empty", empty, False),
          contender("many_dry", many, True), contender("empty_dry", empty, True)]
    measure(cs, sz.reps_small, "steps")
    c = {x.key: stats(x) for x in cs}
    checks.append(f"steps: every run of the {sz.steps:,}-step and the empty runbook exited 0")
    rows = []
    for mode, suffix in (("real", ""), ("dry run", "_dry")):
        m, e = c["many" + suffix], c["empty" + suffix]
        per_step_us = (m["median_ms"] - e["median_ms"]) * 1000.0 / sz.steps
        rows.append(row(f"steps{suffix}", f"engine overhead, {sz.steps:,} steps, {mode}", m, e, None,
                        "< 20 µs per step", per_step_us < 20, f"{per_step_us:.1f} µs/step",
                        note="baseline: the same runbook with no steps; figure = (median − baseline median) / steps")
                    | {"per_step_us": per_step_us,
                       "commands": {"ours": next(x for x in cs if x.key == "many" + suffix).command,
                                    "baseline": next(x for x in cs if x.key == "empty" + suffix).command}})
    return rows


# ---------------------------------------------------------------------------------------------
# Machine description and report


def machine():
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    def out(argv, cwd=None):
        try:
            return subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True).stdout.strip()
        except OSError:
            return ""

    cpu = re.search(r"^model name\s*:\s*(.*)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    commit = out(["git", "rev-parse", "HEAD"], cwd=ROOT)
    # The files this harness writes itself do not make the measured code "dirty".
    dirty = bool(out(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":!benches/results", ":!README.md"], cwd=ROOT))
    return {
        "uname": out(["uname", "-srm"]) or " ".join(platform.uname()[:3]),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "nproc": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "rustc": out(["rustc", "--version"]),
        # Also the python3 the plan's script runs (see `plan_env`): its start-up is most of
        # the baseline, and it differs between installs.
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "find": out(["find", "--version"]).splitlines()[0] if out(["find", "--version"]) else "",
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def fmt_ratio(x):
    # Two decimals near the thresholds (1.2×, 2×) so that a miss never prints as the target.
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def fmt_ms(s):
    if s is None:
        return "—"
    med, lo = s["median_ms"], s["min_ms"]
    f = (lambda v: f"{v:.2f}") if med < 10 else (lambda v: f"{v:.1f}") if med < 1000 else (lambda v: f"{v:.0f}")
    return f"{f(med)} ms ({f(lo)})"


def markdown(report):
    """The report as Markdown: (summary: machine line and table, details: checks, commands)."""
    m = report["machine"]
    lines = [
        f"Run {report['date']} on {m['cpu']} ({m['nproc']} cores, {m['memory_gib']} GiB), {m['uname']}, "
        f"{m['rustc']}, commit {m['commit'][:12]}{' (dirty)' if 'uncommitted' in m['commit'] else ''}. "
        f"Mode: {report['mode']}; load average {report['load_before']} before, {report['load_after']} after.",
        "",
        "Times are wall time of the whole process: median (min) over the repetitions. "
        "Ratio = baseline median / our median. Load = the 1-minute load average before our runs "
        "(median over them).",
        "",
        "| benchmark | ours | baseline | ratio | target | result | load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['benchmark']} | error | | | {r.get('target', '')} | ✗ {r['error'][:200]} | |")
            continue
        ratio = fmt_ratio(r["ratio"]) if r["ratio"] is not None else "—"
        if r["holds"] is None:
            result = "skipped" if r["ours"] is None else f"{r['figure']}"
        else:
            result = f"{'✓ holds' if r['holds'] else '✗ MISSED'} ({r['figure']})"
        base = fmt_ms(r["baseline"])
        if r["id"].startswith("steps"):
            base = f"no steps: {base}"
        load = (r["ours"] or r["baseline"] or {}).get("load")
        load = f"{load:.2f}" if load is not None else "—"
        lines.append(f"| {r['benchmark']} | {fmt_ms(r['ours'])} | {base} | {ratio} | {r['target']} | {result} | {load} |")
    lines += growth_table(report["results"])
    details = ["Checks:", ""] + [f"- {c}" for c in report["checks"]]
    details += ["", "Commands (WS = a fresh `cp -a` copy of the generated workspace, or one shared "
                    "copy for the read-only runs):", ""]
    for r in report["results"]:
        for who, cmd in r.get("commands", {}).items():
            details.append(f"- {r['benchmark']}, {who}: `{cmd}`")
    return "\n".join(lines) + "\n", "\n".join(details) + "\n"


def growth_table(results):
    """How cost grows with the registry: the scaling rows side by side, with the cost of each
    version beyond the smallest workspace's, (t(N) - t(smallest)) / (N - smallest): a
    column that stays flat is linear growth, one that climbs is worse than linear."""
    rows = [r for r in results if r["id"].startswith("scaling_") and "error" not in r]
    if len(rows) < 2:
        return []
    out = ["", "How cost grows (full rollback; per version = (time − the smallest workspace's time) / "
               "(versions − its versions)):", "",
           "| versions | ours | per version | plan's script | per version | ratio | load |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    first = None
    for r in rows:
        v = int(r["id"].split("_")[1])
        o, b = r["ours"]["median_ms"], r["baseline"]["median_ms"]
        if first:
            fv, fo, fb = first
            per = f"{(o - fo) * 1000 / (v - fv):.1f} µs", f"{(b - fb) * 1000 / (v - fv):.1f} µs"
        else:
            first = (v, o, b)
            per = "—", "—"
        load = r["ours"].get("load")
        out.append(f"| {v:,} | {fmt_ms(r['ours'])} | {per[0]} | {fmt_ms(r['baseline'])} | {per[1]} | "
                   f"{fmt_ratio(r['ratio'])} | {load if load is not None else '—'} |")
    return out


def update_readme(md):
    """Put the latest table into README.md between the markers."""
    try:
        with open(README) as f:
            text = f.read()
    except OSError:
        return
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return
    text = text[:start + len(README_START)] + "\n" + md + text[end:]
    with open(README, "w") as f:
        f.write(text)


def build_dist():
    """Build the binary users get (`cargo dist`: the `dist` profile, fat LTO, linked
    statically; .cargo/config.toml) and return its path. Elsewhere than x86-64 Linux, the
    `dist` profile for the machine's own target, dynamically linked."""
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        argv = ["cargo", "dist"]
        path = os.path.join(target_dir, "x86_64-unknown-linux-gnu", "dist", "runbook")
    else:
        argv = ["cargo", "build", "--profile", "dist", "--locked", "--bin", "runbook"]
        path = os.path.join(target_dir, "dist", "runbook")
    print(f"building the benchmarked binary: {sh_quote(argv)}", flush=True)
    t = time.perf_counter()
    if subprocess.run(argv, cwd=ROOT).returncode != 0:
        sys.exit(f"bench.py: `{sh_quote(argv)}` failed")
    print(f"  ... {time.perf_counter() - t:.0f} s", flush=True)
    return path


def main(argv):
    args = parse_args(argv)
    if args.bin is None:
        args.bin = build_dist()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"bench.py: no runbook binary at {args.bin}; run `cargo dist` or `cargo bench`")
    for f in ("make_workspace.py", "plan_rollback.sh", "pandas_mse.py"):
        if not os.path.exists(os.path.join(args.shared, f)):
            sys.exit(f"bench.py: {args.shared} has no {f}; pass --shared DIR")
    sz = Sizes(args.quick, args.reps)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick (reduced sizes, targets indicative)" if args.quick else "full",
        "machine": machine(),
        "binary": rel(args.bin),
        "sizes": sz.as_json(),
        "load_before": loadavg(),
        "results": [],
        "checks": [],
    }
    sections = {"rollback": section_rollback, "scale": section_scale, "scaling": section_scaling,
                "find": section_find, "validate": section_validate, "steps": section_steps,
                "durability": section_durability}
    failed = False
    for name in args.only:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            report["results"] += sections[name](args, sz, report["checks"])
        except BenchError as e:
            failed = True
            print(f"  ERROR: {e}")
            report["results"].append({"id": name, "benchmark": name, "error": str(e)})
        print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    report["load_after"] = loadavg()

    summary, details = markdown(report)
    md = summary + "\n" + details
    print("\n" + md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if args.full and os.path.abspath(args.out) == os.path.join(ROOT, "benches", "results"):
        update_readme(summary + "\nChecks, commands and every sample: [benches/results/latest.md]"
                      "(benches/results/latest.md), [latest.json](benches/results/latest.json); "
                      "how to run: [benches/README.md](benches/README.md).\n")
    print(f"wrote {rel(os.path.join(args.out, 'latest.md'))} and latest.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
