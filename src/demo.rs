//! `runbook demo`: a realistic workspace from templates compiled into the binary, and a full
//! rollback run in it — the first thing a new user runs, with nothing but the binary.
//!
//! The workspace mirrors what `shared/bench/make_workspace.py` writes: five versions of
//! `sl_forecaster` (v5 in production and badly trained), an unrelated `risk_model` no
//! rollback may touch, model files and metadata, the training config and its backup,
//! validation data (also with a timestamp column, for the leakage check), a training log
//! for the post-rollback checks, a `src/sl/` package with a two-commit git history, and
//! every shipped runbook and helper. Data is generated from a fixed seed, so every demo is the same.

use crate::effects::Console;
use crate::error::{Error, Result};
use crate::output::{errln, outln};
use crate::runner::{self, RunOptions};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// Files the demo adds to the shipped runbooks (`runner::source::SHIPPED`, all of them,
/// helpers included), compiled in so the demo needs no checkout.
pub const RUNBOOKS: &[(&str, &str)] = &[
    // For reading and editing: `restore_config` uses the copy built into the binary
    // (`config::default_training_config()`) unless given `--param template=...`.
    (
        "runbooks/templates/training_configs.default.yaml",
        crate::document::DEFAULT_TRAINING_CONFIG,
    ),
];

const TRAINING_CONFIG: &str = "# SL training configuration
model:
  type: {model}
  learning_rate: {lr}
  max_depth: 6
  n_estimators: 400
features:
  window: 64
  lags: [1, 2, 5, 10, 20]
validation:
  split: time
  mse_threshold: 0.1
";

/// A small deterministic generator (xorshift64*) with Gaussian draws; enough for demo data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self, sd: f64) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(parent.display().to_string(), "create the directory", e))?;
    }
    fs::write(&p, text).map_err(|e| Error::io(p.display().to_string(), "write", e))
}

fn set_mtime(root: &Path, rel: &str, t: std::time::SystemTime) -> Result<()> {
    let p = root.join(rel);
    fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_modified(t))
        .map_err(|e| Error::io(p.display().to_string(), "set the time of", e))
}

fn git(root: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_AUTHOR_NAME", "runbook demo")
        .env("GIT_AUTHOR_EMAIL", "demo@example.invalid")
        .env("GIT_COMMITTER_NAME", "runbook demo")
        .env("GIT_COMMITTER_EMAIL", "demo@example.invalid")
        .output()
        .map_err(|e| Error::Git {
            command: format!("git {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Git {
            command: format!("git {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn iso(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How big a demo workspace is. The defaults make the five-version demo; larger sizes make
/// the scale workspaces of the benchmarks without Python.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Versions of `sl_forecaster` (at least 2); the newest is production and broken.
    pub versions: usize,
    /// Rows of `data/validation.csv`.
    pub rows: usize,
    /// Old files under `models/archive/`, all older than `backup_timestamp.txt`.
    pub extra_files: usize,
}

impl Default for Size {
    fn default() -> Size {
        Size {
            versions: 5,
            rows: 1000,
            extra_files: 0,
        }
    }
}

/// Write the demo workspace into `root` (which must be empty or absent).
pub fn create_workspace(root: &Path, size: Size) -> Result<()> {
    if size.versions < 2 {
        return Err(Error::Usage(
            "a demo workspace needs at least 2 versions".into(),
        ));
    }
    if root.exists()
        && fs::read_dir(root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Usage(format!(
            "`{}` exists and is not empty; give a new directory",
            root.display()
        )));
    }
    fs::create_dir_all(root).map_err(|e| Error::io(root.display().to_string(), "create", e))?;
    let (n_versions, n_features, n_rows) = (size.versions, 8usize, size.rows);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let true_w: Vec<f64> = (0..n_features).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let true_b = 0.25;
    let features: Vec<String> = (0..n_features).map(|i| format!("x{i}")).collect();

    let mut csv = features.join(",") + ",y\n";
    for _ in 0..n_rows {
        let x: Vec<f64> = (0..n_features).map(|_| rng.gauss(1.0)).collect();
        let y: f64 =
            x.iter().zip(&true_w).map(|(a, b)| a * b).sum::<f64>() + true_b + rng.gauss(0.05);
        let cells: Vec<String> = x
            .iter()
            .chain(std::iter::once(&y))
            .map(|v| format!("{v:.6}"))
            .collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    write(root, "data/validation.csv", &csv)?;
    // The same rows with a `timestamp` column, for the leakage check of
    // `post_rollback_checks -p timestamp=timestamp` (§5.3): every row is from after the
    // newest version was trained (a day ago onwards, one a minute).
    let from = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    let mut recent = String::new();
    for (i, line) in csv.lines().enumerate() {
        recent.push_str(line);
        if i == 0 {
            recent.push_str(",timestamp\n");
        } else {
            let at = from + std::time::Duration::from_secs(60 * i as u64);
            recent.push_str(&format!(",{}\n", iso(at)));
        }
    }
    write(root, "data/validation_recent.csv", &recent)?;

    write(root, "src/__init__.py", "")?;
    write(root, "src/sl/__init__.py", "")?;
    write(root, "src/sl/models/__init__.py", "")?;
    write(
        root,
        "src/sl/models/traditional.py",
        "def fit(X, y):\n    return 'ridge'\n",
    )?;
    write(
        root,
        "src/sl/models/tree_based.py",
        "def fit(X, y):\n    return 'xgboost'\n",
    )?;
    write(
        root,
        "configs/sl/training_configs.yaml",
        &TRAINING_CONFIG
            .replace("{model}", "xgboost")
            .replace("{lr}", "0.05"),
    )?;
    write(root, ".gitignore", "backups/\n.runbook/\n")?;
    for (path, text) in crate::runner::source::SHIPPED {
        write(root, &format!("runbooks/{path}"), text)?;
    }
    // A log for `post_rollback_checks -p logs=logs/training.log` (§5.1): the bad version's
    // errors, then a clean restart after the rollback time a responder passes as `since`.
    write(
        root,
        "logs/training.log",
        "2026-11-29T17:00:00Z INFO training sl_forecaster\n2026-11-29T17:20:00Z ERROR loss diverged (nan) at epoch 12\n2026-11-30T09:00:00Z INFO serving restarted\n",
    )?;
    for (path, text) in RUNBOOKS {
        write(root, path, text)?;
    }
    let have_git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_git {
        git(root, &["init", "-q", "-b", "main"])?;
        git(root, &["add", "-A"])?;
        git(
            root,
            &["commit", "-q", "-m", "SL pipeline before new model work"],
        )?;
    }
    // The change that gets rolled back.
    write(
        root,
        "src/sl/models/traditional.py",
        "def fit(X, y):\n    return 'ridge-v2'  # new approach\n",
    )?;
    write(
        root,
        "src/sl/models/tree_based.py",
        "def fit(X, y):\n    return 'lightgbm'  # new approach\n",
    )?;
    write(
        root,
        "configs/sl/training_configs.yaml.backup",
        &TRAINING_CONFIG
            .replace("{model}", "xgboost")
            .replace("{lr}", "0.05"),
    )?;
    write(
        root,
        "configs/sl/training_configs.yaml",
        &TRAINING_CONFIG
            .replace("{model}", "lightgbm")
            .replace("{lr}", "0.3"),
    )?;

    let day = std::time::Duration::from_secs(86_400);
    let base = std::time::SystemTime::now() - day * (n_versions as u32 + 2);
    let mut entries = Vec::new();
    for k in 1..=n_versions {
        let v = format!("v{k}");
        let created = base + day * k as u32;
        if k == n_versions {
            write(
                root,
                "backup_timestamp.txt",
                &chrono::DateTime::<chrono::Utc>::from(
                    created - std::time::Duration::from_secs(3600),
                )
                .format("%Y%m%d_%H%M%S")
                .to_string(),
            )?;
            set_mtime(
                root,
                "backup_timestamp.txt",
                created - std::time::Duration::from_secs(3600),
            )?;
        }
        // Older versions are close to the truth; the newest is badly off.
        let noise = if k < n_versions {
            0.02 * (n_versions - k) as f64
        } else {
            1.5
        };
        let w: Vec<f64> = true_w.iter().map(|x| x + rng.gauss(noise)).collect();
        let model = json!({"type": "linear", "weights": w, "bias": true_b + rng.gauss(noise), "features": features});
        let model_path = format!("models/sl_model_{v}.json");
        write(root, &model_path, &model.to_string())?;
        write(
            root,
            &format!("models/sl_model_{v}_metadata.json"),
            &json!({"version": v, "trained_at": iso(created), "rows": n_rows}).to_string(),
        )?;
        set_mtime(root, &model_path, created)?;
        set_mtime(root, &format!("models/sl_model_{v}_metadata.json"), created)?;
        entries.push(json!({
            "name": "sl_forecaster", "version": v, "model_path": model_path,
            "is_production": k == n_versions, "status": if k == n_versions { "production" } else { "superseded" },
            "created_at": iso(created), "promoted_at": iso(created + std::time::Duration::from_secs(600)),
            "metrics": {"val_mse": ((noise * noise) * 1e6).round() / 1e6},
        }));
    }
    write(
        root,
        "models/risk_model_r1.json",
        &json!({"type": "linear", "weights": vec![0.0; n_features], "bias": 0.0}).to_string(),
    )?;
    entries.push(json!({
        "name": "risk_model", "version": "r1", "model_path": "models/risk_model_r1.json",
        "is_production": true, "status": "production", "created_at": iso(base),
        "promoted_at": iso(base + std::time::Duration::from_secs(600)), "metrics": {},
    }));
    for i in 0..size.extra_files {
        let rel = format!("models/archive/{:02}/old_{i}.bin", i % 100);
        write(root, &rel, "x")?;
        set_mtime(
            root,
            &rel,
            base - day - std::time::Duration::from_secs(i as u64),
        )?;
    }
    write(
        root,
        "models/registry.json",
        &serde_json::to_string_pretty(&entries).expect("JSON"),
    )?;
    if have_git {
        git(
            root,
            &[
                "add",
                "-A",
                "--",
                "src",
                "configs",
                ".gitignore",
                "runbooks",
            ],
        )?;
        git(
            root,
            &["commit", "-q", "-m", "Implemented SL model components"],
        )?;
        git(
            root,
            &["tag", "-a", "sl-v1.0", "-m", "SL Model Version 1.0"],
        )?;
    } else {
        errln!("note: `git` was not found, so the demo workspace has no git history");
    }
    Ok(())
}

pub fn demo(dir: Option<PathBuf>, size: Size, dry_run: bool, no_run: bool) -> Result<i32> {
    let root = match dir {
        Some(d) => d,
        None => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            std::env::temp_dir().join(format!("runbook-demo-{stamp}-{}", std::process::id()))
        }
    };
    create_workspace(&root, size)?;
    outln!("created demo workspace {}\n", root.display());
    if !no_run {
        let opts = RunOptions {
            file: root.join("runbooks/full_rollback.rhai"),
            workspace: root.clone(),
            dry_run,
            dry_run_state: None,
            force: false,
            no_exec: false,
            report: None,
            params: Vec::new(),
            timeout: Some(std::time::Duration::from_secs(600)),
            console: Console::Stdout,
            durability: crate::effects::Durability::EndOfRun,
        };
        runner::run(&opts)?;
    }
    // Name the binary as it was run, so the hints work before `cargo install`.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "runbook".into());
    let hints: Vec<(String, &str)> = if no_run {
        vec![
            (
                format!("{exe} run runbooks/full_rollback.rhai --dry-run"),
                "what the rollback would do",
            ),
            (format!("{exe} run runbooks/full_rollback.rhai"), "do it"),
            (
                format!("{exe} run rollback_checklist --dry-run"),
                "the plan of the whole checklist (§8): backup, revert, cleanup, checks",
            ),
            (
                format!("{exe} list"),
                "every runbook, and where it comes from",
            ),
            (
                format!("{exe} run runbooks/verify_rollback.rhai"),
                "validate the production model",
            ),
        ]
    } else {
        vec![
            (
                format!("{exe} run runbooks/full_rollback.rhai --dry-run"),
                "what a second rollback would do",
            ),
            (
                format!("{exe} run runbooks/verify_rollback.rhai"),
                "validate the production model",
            ),
            ("cat .runbook/runs/*.jsonl".to_string(), "the audit log"),
            (format!("{exe} log --last"), "the run's steps and effects"),
            (
                format!("{exe} run post_rollback_checks -p logs=logs/training.log -p since=2026-11-30T00:00:00Z -p data=data/validation_recent.csv -p timestamp=timestamp"),
                "the post-rollback checks (§5), leakage included",
            ),
            (
                format!("{exe} run rollback_checklist --dry-run"),
                "the plan of the whole checklist (§8)",
            ),
            (
                format!("{exe} trash list"),
                "what was removed, still recoverable",
            ),
        ]
    };
    outln!(
        "{}next:\n  cd {}",
        if no_run { "" } else { "\n" },
        root.display()
    );
    // The reason above each command, not beside it: one long command would push every
    // comment off the screen, and each command stays a line to copy as it is.
    for (command, why) in hints {
        outln!("  # {why}\n  {command}");
    }
    Ok(0)
}
