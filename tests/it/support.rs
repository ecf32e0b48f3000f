//! The one test builder: temp workspaces with real files and real git, and the real
//! `runbook` binary run against them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook");

/// The repository's own directory (for the shipped runbooks and shared bench tools).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped runbook, by file name.
pub fn shipped(name: &str) -> String {
    repo().join("runbooks").join(name).display().to_string()
}

pub struct Ws {
    dir: tempfile::TempDir,
}

impl Ws {
    /// An empty workspace.
    pub fn empty() -> Ws {
        Ws {
            dir: tempfile::Builder::new().prefix("rb-it-").tempdir().unwrap(),
        }
    }

    /// The demo workspace `runbook demo --no-run` creates: 5 versions, v5 production, git.
    pub fn demo() -> Ws {
        let ws = Ws::empty();
        let target = ws.path().join("w");
        let out = Command::new(BIN)
            .args(["demo", "--no-run"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Move its content up so the workspace is the temp dir itself.
        for entry in std::fs::read_dir(&target).unwrap() {
            let entry = entry.unwrap();
            std::fs::rename(entry.path(), ws.path().join(entry.file_name())).unwrap();
        }
        std::fs::remove_dir(&target).unwrap();
        ws
    }

    /// A workspace from the shared benchmark generator `../shared/bench/make_workspace.py`
    /// (`--versions N`, `--extra-files M`, `--rows R`). Where python3 or the shared tools are
    /// missing (a lone clone), `runbook demo --no-run` makes the same layout instead.
    pub fn generated(args: &[&str]) -> Ws {
        let ws = Ws::empty();
        let target = ws.path().join("w");
        let script = repo().join("../shared/bench/make_workspace.py");
        let python = Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let out = if script.exists() && python {
            Command::new("python3")
                .arg(&script)
                .arg(&target)
                .args(args)
                .output()
                .unwrap()
        } else {
            Command::new(BIN)
                .args(["demo", "--no-run"])
                .arg(&target)
                .args(args)
                .output()
                .unwrap()
        };
        assert!(
            out.status.success(),
            "making the workspace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for entry in std::fs::read_dir(&target).unwrap() {
            let entry = entry.unwrap();
            std::fs::rename(entry.path(), ws.path().join(entry.file_name())).unwrap();
        }
        std::fs::remove_dir(&target).unwrap();
        ws
    }

    /// A copy of this workspace (`cp -a`: modes, times and links kept), `.git` included.
    pub fn copy(&self) -> Ws {
        let ws = Ws::empty();
        let out = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.path().display()))
            .arg(ws.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cp -a: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ws
    }

    /// Give the repository a local identity, so commits do not depend on the machine.
    pub fn git_identity(&self) -> &Ws {
        self.git(&["config", "user.name", "Runbook Test"]);
        self.git(&["config", "user.email", "runbook@example.com"]);
        self
    }

    /// Every file's path outside `.git/` and `.runbook/`, without reading any.
    pub fn paths(&self) -> Vec<String> {
        walkdir::WalkDir::new(self.path())
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                !(e.depth() == 1 && (name == ".git" || name == ".runbook"))
            })
            .flatten()
            .filter(|e| !e.file_type().is_dir())
            .map(|e| {
                e.path()
                    .strip_prefix(self.path())
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            })
            .collect()
    }

    /// Every file outside `.git/` and `.runbook/`, with its bytes (links as their target).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(self.path())
            .into_iter()
            .filter_entry(|e| {
                let name = e.file_name().to_string_lossy();
                !(e.depth() == 1 && (name == ".git" || name == ".runbook"))
            })
            .flatten()
        {
            let rel = e
                .path()
                .strip_prefix(self.path())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if e.file_type().is_file() {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            } else if e.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(e.path())
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                );
            }
        }
        out
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Ws {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Write an executable file (a script a runbook runs).
    pub fn write_executable(&self, rel: &str, text: &str) -> &Ws {
        use std::os::unix::fs::PermissionsExt;
        self.write(rel, text);
        std::fs::set_permissions(self.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.join(rel).exists()
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// Every file (including `.git/`) with its bytes, permissions and modification time,
    /// and every directory, except `.runbook/`. (A directory's own mtime is left out: making
    /// `.runbook/` for the run log changes the root's.)
    pub fn snapshot(&self) -> Snapshot {
        use std::os::unix::fs::PermissionsExt;
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(self.path()).into_iter().flatten() {
            let rel = e
                .path()
                .strip_prefix(self.path())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if rel.starts_with(".runbook") {
                continue;
            }
            let md = e.metadata().unwrap();
            let entry = if md.is_file() {
                (
                    std::fs::read(e.path()).unwrap(),
                    md.permissions().mode(),
                    Some(md.modified().unwrap()),
                )
            } else {
                (Vec::new(), md.permissions().mode(), None)
            };
            out.insert(rel, entry);
        }
        Snapshot(out)
    }

    /// The events of the only run log, or of the newest one. Newest by the `run_start`
    /// timestamp (microseconds): run ids from the same second sort by their random suffix.
    pub fn last_log(&self) -> Vec<serde_json::Value> {
        let dir = self.join(".runbook/runs");
        let logs: Vec<Vec<serde_json::Value>> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap();
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .collect();
        // RFC 3339 in UTC with a fixed number of digits sorts as text.
        logs.into_iter()
            .max_by_key(|events: &Vec<serde_json::Value>| {
                events
                    .first()
                    .map(|e| e["ts"].as_str().unwrap_or("").to_string())
            })
            .expect("a run log")
    }

    pub fn production(&self, model: &str) -> Option<String> {
        let reg = self.json("models/registry.json");
        let prods: Vec<String> = reg
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == model && e["is_production"] == true)
            .map(|e| e["version"].as_str().unwrap().to_string())
            .collect();
        assert!(
            prods.len() <= 1,
            "more than one production version: {prods:?}"
        );
        prods.into_iter().next()
    }

    pub fn versions(&self, model: &str) -> Vec<String> {
        let reg = self.json("models/registry.json");
        reg.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == model)
            .map(|e| e["version"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Start building a `runbook` command run inside this workspace.
    pub fn runbook(&self, args: &[&str]) -> Cmd {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(self.path());
        Cmd { cmd }
    }
}

/// The action events of a run log whose `op` is `op`, in order.
pub fn actions<'a>(log: &'a [serde_json::Value], op: &str) -> Vec<&'a serde_json::Value> {
    log.iter()
        .filter(|e| e["event"] == "action" && e["op"] == op)
        .collect()
}

pub struct Cmd {
    cmd: Command,
}

impl Cmd {
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.cmd.arg(a);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.cmd.env(key, value);
        self
    }

    pub fn run(mut self) -> Done {
        let out: Output = self.cmd.output().unwrap();
        Done {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }
}

/// The outcome of a command, with assertions that print everything when they fail.
pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn code(self, code: i32) -> Done {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.dump());
        self
    }

    pub fn success(self) -> Done {
        self.code(0)
    }

    pub fn stdout_has(self, text: &str) -> Done {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn stderr_has(self, text: &str) -> Done {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn stdout_lacks(self, text: &str) -> Done {
        assert!(
            !self.stdout.contains(text),
            "stdout has {text:?}\n{}",
            self.dump()
        );
        self
    }
}

/// A workspace's files at one moment; `==` compares them, `{:?}` lists only the paths.
#[derive(PartialEq)]
pub struct Snapshot(BTreeMap<String, (Vec<u8>, u32, Option<std::time::SystemTime>)>);

impl Snapshot {
    /// Panic with the paths that differ, not with megabytes of bytes.
    pub fn assert_same(&self, after: &Snapshot) {
        let mut diffs = Vec::new();
        for (k, v) in &self.0 {
            match after.0.get(k) {
                None => diffs.push(format!("removed {k}")),
                Some(w) if w != v => diffs.push(format!("changed {k}")),
                _ => {}
            }
        }
        for k in after.0.keys() {
            if !self.0.contains_key(k) {
                diffs.push(format!("added {k}"));
            }
        }
        assert!(diffs.is_empty(), "the workspace changed: {diffs:#?}");
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} paths)", self.0.len())
    }
}
