//! The user's `git`, driven as a child process, for runbooks that restore code from history
//! (plan §3.3.2: `git checkout HEAD~1 -- src/sl/`) and record their work (§4.2: `git add -A`,
//! `git commit`, `git tag -a`). We run the installed `git` rather than link a git library so
//! that the user's own configuration, hooks, filters and credentials behave exactly as they do
//! on the command line, and so that a dry run can predict what the real command will do.
//!
//! Every command runs in the workspace directory with arguments passed as a list (no shell),
//! with `GIT_TERMINAL_PROMPT=0` and a closed stdin so nothing ever waits for a person, with
//! `core.quotepath=off` and `-z` output wherever paths come back, so that unusual file names
//! arrive verbatim. Reads never write the index: `GIT_OPTIONAL_LOCKS=0` keeps `git status`
//! from refreshing it and `diff.autoRefreshIndex=false` does the same for `git diff`. Paths given to and returned by [`Repo`] are relative to the workspace
//! directory, even when it is a subdirectory of a larger repository, and are taken literally
//! (`GIT_LITERAL_PATHSPECS=1`): `*.py` names a file called `*.py`, not a glob.
//!
//! This module never decides whether a change is allowed or what a dry run does: the git
//! effects (`effects/git.rs`) do, and only they can call the commands that change the
//! repository (`checkout`, `add`, `commit`, `tag_annotated`, `apply_patch` are private to the
//! effect layer).

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Variables that would point `git` at another repository, index or object store than the
/// one in the work directory (they are set, for example, while a git hook runs).
const REDIRECTING_VARIABLES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
];

/// A git work tree, addressed through the directory the runbook works in.
#[derive(Debug, Clone)]
pub struct Repo {
    workdir: PathBuf,
    /// Where `workdir` sits inside the repository (`""` at the top, else `"sub/dir/"`).
    /// `git status --porcelain` always prints paths from the top; this is stripped from them.
    prefix: String,
    /// Extra environment for every command; tests use it to hide the machine's git config.
    env: Vec<(String, String)>,
}

/// One entry of `git status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// Relative to the work directory. An untracked directory is listed once, ending in `/`.
    pub path: String,
    /// The two-letter porcelain code `XY`: `X` is the index, `Y` the work tree
    /// (`" M"` modified and not staged, `"A "` added, `"D "` deleted and staged, `"??"` untracked).
    pub code: String,
    /// True for files git does not track (`??`).
    pub untracked: bool,
}

/// A file that `git checkout REV -- PATHS` would change in the work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Relative to the work directory.
    pub path: String,
    /// As `git diff REV` names the difference between the revision and the work tree:
    /// `'M'` the content or mode differs and will be overwritten, `'D'` the file is missing
    /// from the work tree and will be restored, `'T'` a file/symlink swap will be undone,
    /// `'U'` an unmerged file will be replaced.
    pub status: char,
    /// Lines the checkout writes that the work tree does not have now (0 for binary files).
    pub added: u64,
    /// Lines the work tree has now that the checkout removes (0 for binary files).
    pub deleted: u64,
    /// True when git treats the file as binary, so the line counts mean nothing.
    pub binary: bool,
}

/// One commit of `git log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Full sha.
    pub commit: String,
    /// Author name.
    pub author: String,
    /// Author e-mail.
    pub email: String,
    /// Author date, strict ISO 8601 (`2024-05-01T12:00:00+02:00`).
    pub date: String,
    /// First line of the message.
    pub subject: String,
}

impl Repo {
    /// Open the git work tree that contains `workdir`.
    ///
    /// Fails when `git` is not installed, when `workdir` does not exist, and when it is not
    /// inside a git work tree.
    pub fn open(workdir: impl AsRef<Path>) -> Result<Repo> {
        Repo::open_with_env(workdir.as_ref(), Vec::new())
    }

    fn open_with_env(workdir: &Path, env: Vec<(String, String)>) -> Result<Repo> {
        let shown = workdir.display().to_string();
        match std::fs::metadata(workdir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    format!("git work directory `{shown}`"),
                    "is a file, not a directory; give the directory of the repository",
                ))
            }
            Err(source) => return Err(Error::io(shown, "open", source)),
        }
        let mut repo = Repo {
            workdir: workdir.to_path_buf(),
            prefix: String::new(),
            env,
        };
        let args = ["rev-parse", "--is-inside-work-tree", "--show-prefix"];
        let output = repo.output(&args, None)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut lines = stdout.lines();
        if !output.status.success() || lines.next() != Some("true") {
            let mut message = format!(
                "`{shown}` is not inside a git work tree; run `git init` there, or run the runbook in a clone of the repository"
            );
            // Git's own words matter when the cause is something else, such as a repository
            // owned by another user (`safe.directory`).
            if !output.status.success() {
                message.push_str(&format!(" (git said: {})", stderr_message(&output)));
            }
            return Err(Error::Git {
                command: command_line(&args),
                message,
            });
        }
        repo.prefix = lines.next().unwrap_or("").to_string();
        Ok(repo)
    }

    /// The directory commands run in.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    // ----- reads -------------------------------------------------------------------------

    /// The full sha of `HEAD`.
    pub fn head(&self) -> Result<String> {
        match self.try_resolve("HEAD")? {
            Some(sha) => Ok(sha),
            None => Err(self.no_commits_yet("git rev-parse HEAD")),
        }
    }

    /// The current branch, or `None` when `HEAD` is detached.
    pub fn branch(&self) -> Result<Option<String>> {
        let args = ["symbolic-ref", "--quiet", "--short", "HEAD"];
        let output = self.output(&args, None)?;
        match output.status.code() {
            Some(0) => Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_string(),
            )),
            // Exit status 1 with `--quiet` means HEAD is not a symbolic ref: detached.
            Some(1) => Ok(None),
            _ => Err(failure(&args, &output)),
        }
    }

    /// Every change in the work directory: staged, unstaged and untracked files (ignored files
    /// are left out). An untracked directory is listed once, as `dir/`.
    pub fn status(&self) -> Result<Vec<StatusEntry>> {
        self.status_of(&["--untracked-files=normal"], &[] as &[&str])
    }

    /// True when [`Repo::status`] is empty: nothing staged, modified or untracked.
    pub fn is_clean(&self) -> Result<bool> {
        Ok(self.status()?.is_empty())
    }

    /// The full sha of the commit `rev` names (`HEAD~1`, a tag, a branch, a short sha).
    pub fn resolve(&self, rev: &str) -> Result<String> {
        check_rev(rev)?;
        self.try_resolve(rev)?.ok_or_else(|| Error::Git {
            command: format!("git rev-parse --verify {rev}"),
            message: format!(
                "unknown revision `{rev}`; list candidates with `git log --oneline` or `git tag`"
            ),
        })
    }

    /// Exactly the files that `git checkout REV -- PATHS` would change in the work tree, with
    /// the lines it would add and remove.
    ///
    /// Such a checkout writes every file under `paths` that exists in `rev`, overwriting
    /// uncommitted changes; files that exist only in the work tree are left alone. Fails, as the
    /// checkout would, when `rev` is unknown or a path matches nothing in `rev`.
    pub fn checkout_changes<S: AsRef<str>>(
        &self,
        rev: &str,
        paths: &[S],
    ) -> Result<Vec<FileChange>> {
        let paths = checkout_paths(paths)?;
        let commit = self.resolve(rev)?;
        self.require_paths_in(rev, &commit, &paths)?;

        // `git diff REV` compares the revision with the work tree. `--no-renames` keeps a
        // renamed file as the pair it is to checkout: one path to restore, one left alone.
        let mut args = vec![
            "diff",
            "--no-renames",
            "--relative",
            "--name-status",
            "-z",
            &commit,
            "--",
        ];
        args.extend(paths.iter().map(String::as_str));
        let names = self.run(&args)?;
        // Reversed (`-R`) so that the counts read as what the checkout writes over what is there.
        let mut args = vec![
            "diff",
            "-R",
            "--no-renames",
            "--relative",
            "--numstat",
            "-z",
            "--no-ext-diff",
            "--no-textconv",
            &commit,
            "--",
        ];
        args.extend(paths.iter().map(String::as_str));
        let counts = parse_numstat(&self.run(&args)?);

        let fields = split_nul(&names);
        let mut changes = Vec::new();
        for pair in fields.chunks(2) {
            let [status, path] = pair else { break };
            let status = status.chars().next().unwrap_or('M');
            // 'A': the file is in the work tree but not in REV, so the checkout leaves it alone.
            if status == 'A' {
                continue;
            }
            let path = path.to_string();
            let on_disk = std::fs::symlink_metadata(self.workdir.join(&path));
            if status == 'D' && on_disk.is_ok_and(|meta| meta.is_file()) {
                // In REV and on disk, but not in the index (untracked now): `git diff` calls it
                // deleted, yet the checkout overwrites the file on disk. Compare for ourselves.
                if let Some(change) = self.compare_untracked(&commit, &path)? {
                    changes.push(change);
                }
                continue;
            }
            let Some(&(added, deleted, binary)) = counts.get(&path) else {
                // Without the index refresh (see `command`), a file whose timestamps changed
                // but whose content did not is named `M` here, though `--numstat`, which
                // compares content, leaves it out: nothing would change.
                if status == 'M' {
                    continue;
                }
                changes.push(FileChange {
                    path,
                    status,
                    added: 0,
                    deleted: 0,
                    binary: false,
                });
                continue;
            };
            changes.push(FileChange {
                path,
                status,
                added,
                deleted,
                binary,
            });
        }
        Ok(changes)
    }

    /// The content of `path` at `rev`, as a checkout would write it (smudge filters and
    /// end-of-line conversion applied).
    pub fn show(&self, rev: &str, path: &str) -> Result<Vec<u8>> {
        let commit = self.resolve(rev)?;
        // `./` makes the path relative to the work directory rather than the repository top.
        let object = format!("{commit}:./{}", path.trim_start_matches("./"));
        let args = ["cat-file", "--filters", object.as_str()];
        let output = self.output(&args, None)?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(Error::Git {
            command: format!("git show {rev}:{path}"),
            message: format!(
                "`{path}` does not exist as a file in `{rev}`; list the files there with `git ls-tree -r --name-only {rev}` ({})",
                stderr_message(&output)
            ),
        })
    }

    /// The staged content of `path` (the index entry), or `None` when the index has none.
    pub fn show_staged(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let object = format!(":./{}", path.trim_start_matches("./"));
        let args = ["cat-file", "--filters", object.as_str()];
        let output = self.output(&args, None)?;
        Ok(output.status.success().then_some(output.stdout))
    }

    /// The files under `paths` in `rev` (all files under the work directory when `paths` is
    /// empty), relative to the work directory.
    pub fn files_at<S: AsRef<str>>(&self, rev: &str, paths: &[S]) -> Result<Vec<String>> {
        let commit = self.resolve(rev)?;
        let mut args = vec!["ls-tree", "-r", "--name-only", "-z", &commit, "--"];
        args.extend(paths.iter().map(AsRef::as_ref));
        Ok(split_nul(&self.run(&args)?))
    }

    /// The last `n` commits reachable from `HEAD`, newest first; empty in a repository
    /// without commits.
    pub fn log(&self, n: usize) -> Result<Vec<LogEntry>> {
        if n == 0 || self.try_resolve("HEAD")?.is_none() {
            return Ok(Vec::new());
        }
        let count = n.to_string();
        let args = [
            "log",
            "-z",
            "--no-color",
            "-n",
            &count,
            "--format=%H%x00%an%x00%ae%x00%aI%x00%s",
            "HEAD",
            "--",
        ];
        let stdout = self.run(&args)?;
        // With `-z` each commit ends in NUL and our format separates fields with NUL too, so
        // the output is a flat list of five fields per commit.
        let fields = split_nul(&stdout);
        Ok(fields
            .chunks_exact(5)
            .map(|f| LogEntry {
                commit: f[0].to_string(),
                author: f[1].to_string(),
                email: f[2].to_string(),
                date: f[3].to_string(),
                subject: f[4].to_string(),
            })
            .collect())
    }

    /// All tag names, sorted.
    pub fn tags(&self) -> Result<Vec<String>> {
        let args = ["for-each-ref", "--format=%(refname:strip=2)", "refs/tags"];
        let stdout = self.run(&args)?;
        // Ref names cannot contain newlines, so lines are safe here.
        Ok(String::from_utf8_lossy(&stdout)
            .lines()
            .map(String::from)
            .collect())
    }

    /// Files under `paths` (the whole work directory when empty) with uncommitted changes,
    /// staged or not, plus untracked files there; each file once, sorted.
    pub fn dirty_paths<S: AsRef<str>>(&self, paths: &[S]) -> Result<Vec<String>> {
        // `all` lists each untracked file rather than collapsing a directory to `dir/`, so
        // callers get real file names; the pathspec keeps that walk small.
        let entries = self.status_of(&["--untracked-files=all"], paths)?;
        let mut files: Vec<String> = entries.into_iter().map(|e| e.path).collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// The uncommitted changes to tracked files under `paths` (all of the work directory when
    /// empty), staged or not, as a binary-safe patch against `HEAD`. Applying it with
    /// [`Repo::apply_patch`] (or `git apply` in the work directory) on a clean `HEAD` puts the
    /// changes back. Untracked files are not in it. Empty when nothing changed. Paths inside
    /// the patch are relative to the repository top, as `git diff` prints them.
    pub fn diff_patch<S: AsRef<str>>(&self, paths: &[S]) -> Result<Vec<u8>> {
        self.patch(paths, false)
    }

    /// Like [`Repo::diff_patch`], but of the index against `HEAD`: the staged changes only.
    /// A checkout overwrites the index too, so a file staged in one state and then edited
    /// further has a staged state that neither the work tree nor `HEAD` holds.
    pub fn staged_patch<S: AsRef<str>>(&self, paths: &[S]) -> Result<Vec<u8>> {
        self.patch(paths, true)
    }

    fn patch<S: AsRef<str>>(&self, paths: &[S], cached: bool) -> Result<Vec<u8>> {
        self.head()?;
        // Every option a user's config could change in a way `git apply` would not accept is
        // fixed here: prefixes, colour, external diff drivers, textconv, submodule logs.
        let mut args = vec![
            "diff",
            "--binary",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--no-renames",
            "--submodule=short",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        ];
        if cached {
            args.push("--cached");
        }
        args.extend(["HEAD", "--"]);
        // Paths in the patch stay relative to the repository top (no `--relative`): that is
        // what `git apply` expects even when run in a subdirectory, where it silently skips
        // paths outside that directory. The pathspec keeps the patch inside the work directory.
        if paths.is_empty() {
            args.push(".");
        }
        args.extend(paths.iter().map(AsRef::as_ref));
        self.run(&args)
    }

    // ----- changes -----------------------------------------------------------------------

    /// `git checkout REV -- PATHS`: write the files under `paths` as they are in `rev` into the
    /// index and the work tree. Files only in the work tree are left alone; uncommitted
    /// changes to the others are overwritten (see [`Repo::checkout_changes`]).
    pub(in crate::effects) fn checkout<S: AsRef<str>>(&self, rev: &str, paths: &[S]) -> Result<()> {
        let paths = checkout_paths(paths)?;
        let commit = self.resolve(rev)?;
        self.require_paths_in(rev, &commit, &paths)?;
        let mut args = vec!["checkout", "--quiet", &commit, "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args)
            .map_err(|err| rename_command(err, rev, &commit))?;
        Ok(())
    }

    /// `git add -A -- PATHS`: stage new, modified and deleted files under `paths`, or
    /// everything in the work directory (`git add -A .`) when `paths` is empty.
    pub(in crate::effects) fn add<S: AsRef<str>>(&self, paths: &[S]) -> Result<()> {
        let mut args = vec!["add", "-A", "--"];
        if paths.is_empty() {
            // A bare `git add -A` in a subdirectory would stage the whole repository, reaching
            // past the workspace the runbook was given.
            args.push(".");
        }
        args.extend(paths.iter().map(AsRef::as_ref));
        self.run(&args)?;
        Ok(())
    }

    /// Commit what is staged; returns the new commit's full sha.
    ///
    /// Fails when nothing is staged and when git does not know the user's name and e-mail.
    /// The repository's hooks run as they would for `git commit`.
    pub(in crate::effects) fn commit(&self, message: &str) -> Result<String> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "commit message",
                "is empty; say what the commit changes",
            ));
        }
        self.require_identity("git commit")?;
        // `diff --cached --quiet` exits 1 when the index differs from HEAD (or, before the
        // first commit, from the empty tree).
        let args = ["diff", "--cached", "--quiet", "--ignore-submodules=none"];
        let output = self.output(&args, None)?;
        match output.status.code() {
            Some(1) => {}
            Some(0) => {
                return Err(Error::Git {
                    command: "git commit".into(),
                    message: format!(
                        "nothing is staged to commit in `{}`; stage changes with `git add` first (`git status` shows what changed)",
                        self.workdir.display()
                    ),
                })
            }
            _ => return Err(failure(&args, &output)),
        }
        self.run(&["commit", "--quiet", "-m", message])?;
        self.head()
    }

    /// `git tag -a NAME -m MESSAGE` on `HEAD`. Fails when the tag exists already.
    pub(in crate::effects) fn tag_annotated(&self, name: &str, message: &str) -> Result<()> {
        self.check_new_tag(name)?;
        if message.trim().is_empty() {
            return Err(Error::invalid(
                format!("message of tag `{name}`"),
                "is empty; an annotated tag needs a message",
            ));
        }
        self.head()?;
        self.require_identity(&format!("git tag -a {name}"))?;
        self.run(&["tag", "-a", name, "-m", message])?;
        Ok(())
    }

    /// Fail as [`Repo::tag_annotated`] would because of the name: an invalid tag name or a
    /// tag that exists already. Changes nothing, so a runbook can check before it commits,
    /// and a dry run can predict the failure.
    pub fn check_new_tag(&self, name: &str) -> Result<()> {
        let what = format!("tag name `{name}`");
        let valid = !name.is_empty()
            && !name.starts_with('-')
            && self
                .output(&["check-ref-format", &format!("refs/tags/{name}")], None)?
                .status
                .success();
        if !valid {
            return Err(Error::invalid(
                what,
                "is not a valid git tag name; use letters, digits, `.`, `-`, `_` and `/` (for example `sl-v1.0`)",
            ));
        }
        let command = format!("git tag -a {name}");
        if let Some(existing) = self.try_resolve(&format!("refs/tags/{name}"))? {
            return Err(Error::Git {
                command,
                message: format!(
                    "tag `{name}` already exists (on {}); choose another name, or delete it with `git tag -d {name}`",
                    short(&existing)
                ),
            });
        }
        Ok(())
    }

    /// Fail with instructions when git does not know the user's name and e-mail, as
    /// [`Repo::commit`] and [`Repo::tag_annotated`] would. `command` names the command in the
    /// message.
    pub fn check_identity(&self, command: &str) -> Result<()> {
        self.require_identity(command)
    }

    /// The files under the work directory whose staged content differs from `HEAD` (all
    /// staged files before the first commit): what `git commit` would record from here.
    pub fn staged_paths(&self) -> Result<Vec<String>> {
        let entries = self.status_of(&["--untracked-files=no"], &[] as &[&str])?;
        let mut files: Vec<String> = entries
            .into_iter()
            .filter(|e| !matches!(e.code.as_bytes().first(), Some(b' ' | b'?' | b'!')))
            .map(|e| e.path)
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// Whether `.gitignore` rules (or `info/exclude`, or `core.excludesFile`) ignore `path`,
    /// which need not exist. Tracked files are never ignored.
    pub fn is_ignored(&self, path: &str) -> Result<bool> {
        let args = ["check-ignore", "--quiet", "--", path];
        // `check-ignore` takes path names, never patterns, and refuses to run at all under
        // `GIT_LITERAL_PATHSPECS`.
        let mut cmd = self.command();
        cmd.env_remove("GIT_LITERAL_PATHSPECS").args(args);
        let output = self.spawn(cmd, &args, None)?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failure(&args, &output)),
        }
    }

    /// Apply a patch made by [`Repo::diff_patch`] to the work tree (`git apply`). An empty
    /// patch changes nothing.
    #[cfg(test)]
    pub(in crate::effects) fn apply_patch(&self, patch: &[u8]) -> Result<()> {
        self.apply(patch, false)
    }

    /// Apply a patch made by [`Repo::staged_patch`] to the index only (`git apply --cached`):
    /// how `runbook undo` stages again what was staged before a checkout.
    pub(in crate::effects) fn apply_patch_to_index(&self, patch: &[u8]) -> Result<()> {
        self.apply(patch, true)
    }

    /// `git reset -q COMMIT -- PATHS`: the index entries of `paths` as they are in `commit`
    /// (a path `commit` lacks leaves the index); the work tree is not touched.
    pub(in crate::effects) fn reset_index(&self, commit: &str, paths: &[String]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut args = vec!["reset", "-q", commit, "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args)?;
        Ok(())
    }

    fn apply(&self, patch: &[u8], cached: bool) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        let args: &[&str] = if cached {
            &["apply", "--cached", "--whitespace=nowarn", "-"]
        } else {
            &["apply", "--whitespace=nowarn", "-"]
        };
        let args = args.to_vec();
        let output = self.output(&args, Some(patch))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failure(&args, &output))
        }
    }

    // ----- plumbing ----------------------------------------------------------------------

    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-c")
            .arg("core.quotepath=off")
            // `git diff` against the work tree rewrites the index to refresh its cached file
            // timestamps, `GIT_OPTIONAL_LOCKS=0` notwithstanding; a dry run must not touch it.
            .arg("-c")
            .arg("diff.autoRefreshIndex=false")
            .current_dir(&self.workdir)
            .env("GIT_TERMINAL_PROMPT", "0")
            // Reads such as `git status` may otherwise take the index lock to refresh it, and
            // collide with a git command the user runs at the same time.
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in REDIRECTING_VARIABLES {
            cmd.env_remove(var);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Run `git ARGS`, feeding `input` on stdin (or nothing), and return its output whatever
    /// its exit status. Only failing to start `git` is an error here.
    fn output(&self, args: &[&str], input: Option<&[u8]>) -> Result<Output> {
        let mut cmd = self.command();
        cmd.args(args);
        self.spawn(cmd, args, input)
    }

    /// Run a prepared `cmd` (whose arguments are `args`, for messages) as [`Repo::output`] does.
    fn spawn(&self, mut cmd: Command, args: &[&str], input: Option<&[u8]>) -> Result<Output> {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let start_failed = |source: io::Error| Error::Git {
            command: command_line(args),
            message: if source.kind() == io::ErrorKind::NotFound {
                "`git` was not found on PATH; install git".to_string()
            } else {
                format!("could not start `git`: {source}")
            },
        };
        let mut child = cmd.spawn().map_err(start_failed)?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A git that exits early (a malformed patch) closes the pipe; its exit status and
            // stderr explain that better than the broken pipe would.
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().map_err(start_failed)
    }

    /// Run `git ARGS` and return stdout; a non-zero exit is an error carrying git's stderr.
    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let output = self.output(args, None)?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(failure(args, &output))
        }
    }

    /// The commit `rev` names, or `None` when it names none.
    fn try_resolve(&self, rev: &str) -> Result<Option<String>> {
        let peeled = format!("{rev}^{{commit}}");
        // Callers have refused revisions that start with `-`, so this cannot be read as an option.
        let args = ["rev-parse", "--verify", "--quiet", peeled.as_str()];
        let output = self.output(&args, None)?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
    }

    fn status_of<S: AsRef<str>>(&self, options: &[&str], paths: &[S]) -> Result<Vec<StatusEntry>> {
        let mut args = vec!["status", "--porcelain=v1", "-z", "--no-renames"];
        args.extend_from_slice(options);
        args.push("--");
        if paths.is_empty() {
            // Stay inside the work directory when it is a subdirectory of the repository.
            args.push(".");
        }
        args.extend(paths.iter().map(AsRef::as_ref));
        let stdout = self.run(&args)?;
        let mut entries = Vec::new();
        let mut fields = split_nul(&stdout).into_iter();
        while let Some(field) = fields.next() {
            let (Some(code), Some(path)) = (field.get(..2), field.get(3..)) else {
                continue;
            };
            if code.contains('R') || code.contains('C') {
                // Renames are turned off, but a rename entry carries its source as the next
                // field; skip it so the parse stays aligned whatever git does.
                fields.next();
            }
            let path = path
                .strip_prefix(self.prefix.as_str())
                .unwrap_or(path)
                .to_string();
            entries.push(StatusEntry {
                path,
                code: code.to_string(),
                untracked: code == "??",
            });
        }
        Ok(entries)
    }

    /// Fail as `git checkout REV -- PATH` would when a path matches nothing in `rev`, but
    /// with a message that says what to do.
    fn require_paths_in(&self, rev: &str, commit: &str, paths: &[String]) -> Result<()> {
        for path in paths {
            let args = [
                "ls-tree",
                "-r",
                "--name-only",
                "-z",
                commit,
                "--",
                path.as_str(),
            ];
            if self.run(&args)?.is_empty() {
                return Err(Error::Git {
                    command: format!("git checkout {rev} -- {path}"),
                    message: format!(
                        "`{path}` does not exist in `{rev}`; list what is there with `git ls-tree -r --name-only {rev}`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// For a file that exists in `commit` and on disk but is not tracked now: what checking it
    /// out would change, or `None` when the content is the same already.
    fn compare_untracked(&self, commit: &str, path: &str) -> Result<Option<FileChange>> {
        let new = self.show(commit, path)?;
        let old = std::fs::read(self.workdir.join(path))
            .map_err(|source| Error::io(path, "read", source))?;
        if new == old {
            return Ok(None);
        }
        let binary = new.contains(&0) || old.contains(&0);
        let (mut added, mut deleted) = (0, 0);
        if !binary {
            let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
            let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
            for change in diff.iter_all_changes() {
                match change.tag() {
                    similar::ChangeTag::Insert => added += 1,
                    similar::ChangeTag::Delete => deleted += 1,
                    similar::ChangeTag::Equal => {}
                }
            }
        }
        Ok(Some(FileChange {
            path: path.to_string(),
            status: 'M',
            added,
            deleted,
            binary,
        }))
    }

    /// Fail with instructions when git has no user name or e-mail to record.
    fn require_identity(&self, command: &str) -> Result<()> {
        for var in ["GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"] {
            if !self.output(&["var", var], None)?.status.success() {
                return Err(Error::Git {
                    command: command.to_string(),
                    message: "git does not know who you are; set it with `git config --global user.name \"Your Name\"` and `git config --global user.email you@example.com` (leave out `--global` for this repository only)".to_string(),
                });
            }
        }
        Ok(())
    }

    fn no_commits_yet(&self, command: &str) -> Error {
        Error::Git {
            command: command.to_string(),
            message: format!(
                "the repository at `{}` has no commits yet; commit something first",
                self.workdir.display()
            ),
        }
    }
}

/// Revisions are passed as arguments; one starting with `-` would be read as an option.
fn check_rev(rev: &str) -> Result<()> {
    if rev.trim().is_empty() || rev.starts_with('-') {
        return Err(Error::invalid(
            format!("git revision `{rev}`"),
            "is not a revision; give a commit, branch or tag such as `HEAD~1` or `sl-v1.0`",
        ));
    }
    Ok(())
}

/// `git checkout REV` without paths switches branches; a runbook that meant to restore files
/// must never do that by passing an empty list.
fn checkout_paths<S: AsRef<str>>(paths: &[S]) -> Result<Vec<String>> {
    if paths.is_empty() || paths.iter().any(|p| p.as_ref().is_empty()) {
        return Err(Error::invalid(
            "paths to check out",
            "are missing or empty; name the files or directories to restore, such as `src/sl/`",
        ));
    }
    Ok(paths.iter().map(|p| p.as_ref().to_string()).collect())
}

/// Name the revision the user wrote rather than the sha we passed, in a failed checkout.
fn rename_command(err: Error, rev: &str, commit: &str) -> Error {
    match err {
        Error::Git { command, message } => Error::Git {
            command: command.replacen(commit, rev, 1),
            message,
        },
        other => other,
    }
}

/// `git ARGS` as a person would type it, for messages.
fn command_line(args: &[&str]) -> String {
    let mut line = String::from("git");
    for arg in args {
        line.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            line.push_str(&format!("{arg:?}"));
        } else {
            line.push_str(arg);
        }
    }
    line
}

fn failure(args: &[&str], output: &Output) -> Error {
    Error::Git {
        command: command_line(args),
        message: stderr_message(output),
    }
}

/// Git's own explanation, without its `fatal:`/`error:` prefixes, on one line.
fn stderr_message(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(|line| {
            let line = line.trim();
            ["fatal: ", "error: "]
                .iter()
                .find_map(|p| line.strip_prefix(p))
                .unwrap_or(line)
        })
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        match output.status.code() {
            Some(code) => format!("git exited with status {code}"),
            None => "git was killed by a signal".to_string(),
        }
    } else {
        lines.join("; ")
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The fields of `-z` output. Paths are returned as UTF-8, invalid bytes replaced.
fn split_nul(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// `--numstat -z` without renames: `ADDED\tDELETED\tPATH\0`, with `-` counts for binary files.
fn parse_numstat(bytes: &[u8]) -> HashMap<String, (u64, u64, bool)> {
    let mut counts = HashMap::new();
    for field in split_nul(bytes) {
        let mut parts = field.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let binary = added == "-" || deleted == "-";
        let added = added.parse().unwrap_or(0);
        let deleted = deleted.parse().unwrap_or(0);
        counts.insert(path.to_string(), (added, deleted, binary));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    /// Hide the machine's git configuration so that tests see only what they set themselves.
    fn isolated_env() -> Vec<(String, String)> {
        vec![
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ]
    }

    /// Run a git command for test setup; panics with git's stderr when it fails.
    fn sh(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(isolated_env())
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read(dir: &Path, rel: &str) -> String {
        fs::read_to_string(dir.join(rel)).unwrap()
    }

    fn commit_all(dir: &Path, message: &str) {
        sh(dir, &["add", "-A"]);
        sh(dir, &["commit", "-q", "-m", message]);
    }

    /// An empty repository on branch `main` with a user name and e-mail.
    fn init(dir: &Path) {
        sh(dir, &["init", "-q", "-b", "main"]);
        sh(dir, &["config", "user.name", "Test Person"]);
        sh(dir, &["config", "user.email", "test@example.invalid"]);
    }

    fn open(dir: &Path) -> Repo {
        Repo::open_with_env(dir, isolated_env()).unwrap()
    }

    /// Two commits: the first has `src/a.txt`, `src/b.txt`, `src/c.txt`; the second changes
    /// `a.txt` and adds `src/d.txt`.
    fn two_commits() -> (TempDir, Repo) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init(dir);
        write(dir, "src/a.txt", "1\n2\n3\n");
        write(dir, "src/b.txt", "b\n");
        write(dir, "src/c.txt", "c\n");
        write(dir, "README", "top\n");
        commit_all(dir, "first");
        write(dir, "src/a.txt", "1\nX\n3\nY\n");
        write(dir, "src/d.txt", "d\n");
        commit_all(dir, "second");
        let repo = open(dir);
        (tmp, repo)
    }

    fn git_message(err: Error) -> (String, String) {
        match err {
            Error::Git { command, message } => (command, message),
            other => panic!("expected a git error, got {other:?}"),
        }
    }

    #[test]
    fn open_names_a_directory_that_is_not_a_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().parent().unwrap().display().to_string();
        let mut env = isolated_env();
        // Never find a repository above the temporary directory, wherever it lives.
        env.push(("GIT_CEILING_DIRECTORIES".into(), parent));
        let (_, message) = git_message(Repo::open_with_env(tmp.path(), env).unwrap_err());
        assert!(
            message.contains(&format!("`{}`", tmp.path().display())),
            "{message}"
        );
        assert!(message.contains("not inside a git work tree"), "{message}");
    }

    #[test]
    fn open_reports_a_missing_directory_and_a_missing_git() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Repo::open(tmp.path().join("nope")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");

        let env = vec![("PATH".to_string(), "/nonexistent-bin".to_string())];
        let (_, message) = git_message(Repo::open_with_env(tmp.path(), env).unwrap_err());
        assert_eq!(message, "`git` was not found on PATH; install git");
    }

    #[test]
    fn reads_head_branch_log_and_tags() {
        let (tmp, repo) = two_commits();
        let head = repo.head().unwrap();
        assert_eq!(head, sh(tmp.path(), &["rev-parse", "HEAD"]));
        assert_eq!(head.len(), 40);
        assert_eq!(repo.branch().unwrap().as_deref(), Some("main"));

        let log = repo.log(10).unwrap();
        let subjects: Vec<&str> = log.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(subjects, ["second", "first"]);
        assert_eq!(log[0].commit, head);
        assert_eq!(log[0].author, "Test Person");
        assert_eq!(log[0].email, "test@example.invalid");
        assert!(log[0].date.contains('T'), "{}", log[0].date);
        assert_eq!(repo.log(1).unwrap().len(), 1);

        assert!(repo.tags().unwrap().is_empty());
        repo.tag_annotated("sl-v1.0", "SL Model Version 1.0")
            .unwrap();
        assert_eq!(repo.tags().unwrap(), ["sl-v1.0"]);
        assert_eq!(repo.resolve("sl-v1.0").unwrap(), head);
        assert_eq!(sh(tmp.path(), &["cat-file", "-t", "sl-v1.0"]), "tag");
        let (_, message) = git_message(repo.tag_annotated("sl-v1.0", "again").unwrap_err());
        assert!(
            message.contains("tag `sl-v1.0` already exists"),
            "{message}"
        );
        let err = repo.tag_annotated("bad name", "x").unwrap_err();
        assert!(err.to_string().contains("`bad name`"), "{err}");

        sh(tmp.path(), &["checkout", "-q", "--detach", "HEAD~1"]);
        assert_eq!(repo.branch().unwrap(), None);
    }

    #[test]
    fn an_empty_repository_has_no_head_and_no_log() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path());
        let repo = open(tmp.path());
        assert!(repo.log(5).unwrap().is_empty());
        let (_, message) = git_message(repo.head().unwrap_err());
        assert!(message.contains("no commits yet"), "{message}");
        assert_eq!(repo.branch().unwrap().as_deref(), Some("main"));

        // The first commit has no HEAD to compare the index with.
        write(tmp.path(), "a.txt", "a\n");
        repo.add(&[] as &[&str]).unwrap();
        let sha = repo.commit("first").unwrap();
        assert_eq!(repo.log(5).unwrap()[0].commit, sha);
    }

    #[test]
    fn resolve_names_an_unknown_revision() {
        let (_tmp, repo) = two_commits();
        assert_eq!(repo.resolve("HEAD~1").unwrap().len(), 40);
        let (_, message) = git_message(repo.resolve("no-such-tag").unwrap_err());
        assert!(
            message.contains("unknown revision `no-such-tag`"),
            "{message}"
        );
        assert!(repo.resolve("HEAD~5").is_err());
        assert!(matches!(
            repo.resolve("--all").unwrap_err(),
            Error::Invalid { .. }
        ));
    }

    #[test]
    fn status_parses_odd_names_and_dirty_paths_covers_staged_and_untracked() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        assert!(repo.is_clean().unwrap());
        write(dir, "src/a.txt", "changed\n");
        write(dir, "src/new dir/ünï code.txt", "u\n");
        write(dir, "src/line\nbreak.txt", "n\n");
        write(dir, "src/staged.txt", "s\n");
        sh(dir, &["add", "src/staged.txt"]);
        fs::remove_file(dir.join("src/b.txt")).unwrap();
        write(dir, "elsewhere.txt", "e\n");

        let status = repo.status().unwrap();
        let codes: Vec<(&str, &str, bool)> = status
            .iter()
            .map(|e| (e.code.as_str(), e.path.as_str(), e.untracked))
            .collect();
        assert!(codes.contains(&(" M", "src/a.txt", false)), "{codes:?}");
        assert!(codes.contains(&(" D", "src/b.txt", false)), "{codes:?}");
        assert!(
            codes.contains(&("A ", "src/staged.txt", false)),
            "{codes:?}"
        );
        assert!(codes.contains(&("??", "src/new dir/", true)), "{codes:?}");
        assert!(
            codes.contains(&("??", "src/line\nbreak.txt", true)),
            "{codes:?}"
        );
        assert!(!repo.is_clean().unwrap());

        let dirty = repo.dirty_paths(&["src/"]).unwrap();
        assert_eq!(
            dirty,
            [
                "src/a.txt",
                "src/b.txt",
                "src/line\nbreak.txt",
                "src/new dir/ünï code.txt",
                "src/staged.txt"
            ]
        );
        assert!(repo
            .dirty_paths(&[] as &[&str])
            .unwrap()
            .contains(&"elsewhere.txt".to_string()));
    }

    #[test]
    fn checkout_changes_lists_exactly_what_checkout_writes() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        // Uncommitted edit that the checkout overwrites, a deleted file it restores, an
        // untracked file and a file added after HEAD~1 that it leaves alone.
        write(dir, "src/c.txt", "c edited\n");
        fs::remove_file(dir.join("src/b.txt")).unwrap();
        write(dir, "src/e.txt", "untracked\n");

        let changes = repo.checkout_changes("HEAD~1", &["src/"]).unwrap();
        let expected = vec![
            FileChange {
                path: "src/a.txt".into(),
                status: 'M',
                added: 1,
                deleted: 2,
                binary: false,
            },
            FileChange {
                path: "src/b.txt".into(),
                status: 'D',
                added: 1,
                deleted: 0,
                binary: false,
            },
            FileChange {
                path: "src/c.txt".into(),
                status: 'M',
                added: 1,
                deleted: 1,
                binary: false,
            },
        ];
        assert_eq!(changes, expected);
        // A single file, and the same answer when nothing differs.
        assert_eq!(
            repo.checkout_changes("HEAD~1", &["src/a.txt"]).unwrap(),
            expected[..1]
        );
        assert!(repo
            .checkout_changes("HEAD", &["README"])
            .unwrap()
            .is_empty());

        repo.checkout("HEAD~1", &["src/"]).unwrap();
        assert_eq!(read(dir, "src/a.txt"), "1\n2\n3\n");
        assert_eq!(read(dir, "src/b.txt"), "b\n");
        assert_eq!(read(dir, "src/c.txt"), "c\n");
        assert_eq!(read(dir, "src/d.txt"), "d\n");
        assert_eq!(read(dir, "src/e.txt"), "untracked\n");
        assert!(repo
            .checkout_changes("HEAD~1", &["src/"])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn checkout_changes_sees_an_untracked_file_the_checkout_would_overwrite() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        sh(dir, &["rm", "-q", "--cached", "src/c.txt"]);
        // Same content as in HEAD~1: nothing would change.
        assert!(repo
            .checkout_changes("HEAD~1", &["src/c.txt"])
            .unwrap()
            .is_empty());
        write(dir, "src/c.txt", "c\nmore\n");
        let changes = repo.checkout_changes("HEAD~1", &["src/c.txt"]).unwrap();
        let expected = FileChange {
            path: "src/c.txt".into(),
            status: 'M',
            added: 0,
            deleted: 1,
            binary: false,
        };
        assert_eq!(changes, [expected]);
    }

    #[test]
    fn reads_leave_the_index_alone_and_ignore_timestamp_only_changes() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        let index = || fs::read(dir.join(".git/index")).unwrap();
        let before = index();
        // New timestamps, same content: git's cached stat data no longer matches.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        for f in ["src/a.txt", "src/b.txt", "src/d.txt"] {
            fs::File::options()
                .write(true)
                .open(dir.join(f))
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
        let changes = repo.checkout_changes("HEAD~1", &["src/"]).unwrap();
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["src/a.txt"]);
        assert!(repo.diff_patch(&["src/"]).unwrap().is_empty());
        assert!(repo.is_clean().unwrap());
        assert!(repo.dirty_paths(&["src/"]).unwrap().is_empty());
        assert!(index() == before, "a read rewrote .git/index");
    }

    #[test]
    fn checkout_refuses_unknown_paths_and_an_empty_list() {
        let (_tmp, repo) = two_commits();
        let (command, message) =
            git_message(repo.checkout_changes("HEAD~1", &["src/d.txt"]).unwrap_err());
        assert_eq!(command, "git checkout HEAD~1 -- src/d.txt");
        assert!(
            message.contains("`src/d.txt` does not exist in `HEAD~1`"),
            "{message}"
        );
        assert!(repo.checkout("HEAD~1", &["nope/"]).is_err());
        assert!(matches!(
            repo.checkout("HEAD~1", &[] as &[&str]).unwrap_err(),
            Error::Invalid { .. }
        ));
        // Paths are literal: `*.txt` is not a glob.
        assert!(repo.checkout_changes("HEAD~1", &["src/*.txt"]).is_err());
    }

    #[test]
    fn show_and_files_at_read_a_revision() {
        let (_tmp, repo) = two_commits();
        assert_eq!(repo.show("HEAD~1", "src/a.txt").unwrap(), b"1\n2\n3\n");
        assert_eq!(repo.show("HEAD", "./src/d.txt").unwrap(), b"d\n");
        let (_, message) = git_message(repo.show("HEAD~1", "src/d.txt").unwrap_err());
        assert!(message.contains("`src/d.txt` does not exist"), "{message}");

        assert_eq!(
            repo.files_at("HEAD~1", &["src"]).unwrap(),
            ["src/a.txt", "src/b.txt", "src/c.txt"]
        );
        assert_eq!(repo.files_at("HEAD", &[] as &[&str]).unwrap().len(), 5);
    }

    #[test]
    fn commit_needs_staged_changes_and_an_identity() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        let (_, message) = git_message(repo.commit("nothing").unwrap_err());
        assert!(message.contains("nothing is staged"), "{message}");

        write(dir, "src/a.txt", "new\n");
        fs::remove_file(dir.join("src/b.txt")).unwrap();
        write(dir, "other.txt", "not staged\n");
        repo.add(&["src"]).unwrap();
        let sha = repo
            .commit("Backup before SL model implementation")
            .unwrap();
        assert_eq!(sha, repo.head().unwrap());
        assert_eq!(
            repo.log(1).unwrap()[0].subject,
            "Backup before SL model implementation"
        );
        assert_eq!(repo.dirty_paths(&[] as &[&str]).unwrap(), ["other.txt"]);
        repo.add(&[] as &[&str]).unwrap();
        repo.commit("everything").unwrap();
        assert!(repo.is_clean().unwrap());

        sh(dir, &["config", "--unset", "user.name"]);
        sh(dir, &["config", "--unset", "user.email"]);
        // Without this git would make up a name from the login and host name.
        sh(dir, &["config", "user.useConfigOnly", "true"]);
        write(dir, "src/a.txt", "again\n");
        repo.add(&["src/a.txt"]).unwrap();
        let (_, message) = git_message(repo.commit("who?").unwrap_err());
        assert!(
            message.contains("git config --global user.name"),
            "{message}"
        );
        assert!(repo.tag_annotated("v2", "who?").is_err());
    }

    #[test]
    fn staged_paths_ignored_paths_and_tag_checks() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        write(dir, ".gitignore", "*.log\n");
        write(dir, "src/a.txt", "staged\n");
        write(dir, "src/c.txt", "not staged\n");
        sh(dir, &["add", "src/a.txt", ".gitignore"]);
        assert_eq!(repo.staged_paths().unwrap(), [".gitignore", "src/a.txt"]);
        assert!(repo.is_ignored("run.log").unwrap());
        assert!(repo.is_ignored("deep/dir/never-written.log").unwrap());
        assert!(!repo.is_ignored("src/c.txt").unwrap());

        repo.check_new_tag("sl-v1.1").unwrap();
        assert!(matches!(
            repo.check_new_tag("bad name").unwrap_err(),
            Error::Invalid { .. }
        ));
        sh(dir, &["tag", "sl-v1.1"]);
        let (_, message) = git_message(repo.check_new_tag("sl-v1.1").unwrap_err());
        assert!(message.contains("already exists"), "{message}");
        repo.check_identity("git commit").unwrap();
    }

    #[test]
    fn staged_patch_keeps_a_staged_state_the_work_tree_no_longer_has() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        write(dir, "src/a.txt", "staged\n");
        sh(dir, &["add", "src/a.txt"]);
        write(dir, "src/a.txt", "edited after staging\n");
        let staged = repo.staged_patch(&["src/a.txt"]).unwrap();
        let worktree = repo.diff_patch(&["src/a.txt"]).unwrap();
        assert!(String::from_utf8_lossy(&staged).contains("+staged"));
        assert!(String::from_utf8_lossy(&worktree).contains("+edited after staging"));
        sh(dir, &["reset", "-q", "--hard", "HEAD"]);
        repo.apply_patch(&staged).unwrap();
        assert_eq!(read(dir, "src/a.txt"), "staged\n");
    }

    #[test]
    fn diff_patch_restores_staged_unstaged_and_binary_changes() {
        let (tmp, repo) = two_commits();
        let dir = tmp.path();
        assert!(repo.diff_patch(&["src"]).unwrap().is_empty());
        fs::write(dir.join("src/blob.bin"), [0u8, 1, 2, 255]).unwrap();
        commit_all(dir, "binary");
        write(dir, "src/a.txt", "staged\n");
        sh(dir, &["add", "src/a.txt"]);
        write(dir, "src/c.txt", "unstaged\n");
        fs::write(dir.join("src/blob.bin"), [9u8, 0, 8]).unwrap();
        fs::remove_file(dir.join("src/b.txt")).unwrap();
        write(dir, "README", "outside the paths\n");

        let patch = repo.diff_patch(&["src/"]).unwrap();
        let text = String::from_utf8_lossy(&patch);
        assert!(text.contains("GIT binary patch"), "{text}");
        assert!(!text.contains("README"), "{text}");

        sh(dir, &["reset", "-q", "--hard", "HEAD"]);
        repo.apply_patch(&patch).unwrap();
        assert_eq!(read(dir, "src/a.txt"), "staged\n");
        assert_eq!(read(dir, "src/c.txt"), "unstaged\n");
        assert_eq!(fs::read(dir.join("src/blob.bin")).unwrap(), [9u8, 0, 8]);
        assert!(!dir.join("src/b.txt").exists());
        assert_eq!(read(dir, "README"), "top\n");
        assert!(repo.apply_patch(b"not a patch").is_err());
    }

    #[test]
    fn a_workspace_in_a_subdirectory_sees_paths_relative_to_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path();
        init(top);
        write(top, "ml/ws/src/m.py", "old\n");
        write(top, "other/x.txt", "x\n");
        commit_all(top, "first");
        write(top, "ml/ws/src/m.py", "new\n");
        commit_all(top, "second");
        let ws = top.join("ml/ws");
        let repo = open(&ws);

        write(&ws, "src/m.py", "edited\n");
        write(top, "other/x.txt", "outside\n");
        let paths: Vec<String> = repo.status().unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["src/m.py"]);
        assert_eq!(repo.files_at("HEAD", &[] as &[&str]).unwrap(), ["src/m.py"]);
        assert_eq!(repo.show("HEAD~1", "src/m.py").unwrap(), b"old\n");
        let patch = repo.diff_patch(&[] as &[&str]).unwrap();

        let changes = repo.checkout_changes("HEAD~1", &["src/"]).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "src/m.py");
        repo.checkout("HEAD~1", &["src/"]).unwrap();
        assert_eq!(read(&ws, "src/m.py"), "old\n");

        sh(top, &["checkout", "-q", "HEAD", "--", "ml"]);
        repo.apply_patch(&patch).unwrap();
        assert_eq!(read(&ws, "src/m.py"), "edited\n");

        // Staging everything stays inside the workspace.
        repo.add(&[] as &[&str]).unwrap();
        assert_eq!(
            sh(top, &["diff", "--cached", "--name-only"]),
            "ml/ws/src/m.py"
        );
    }

    /// The benchmark workspace: HEAD~1 holds the previous `src/sl/` (plan §3.3.2).
    #[test]
    fn restores_src_sl_in_the_benchmark_workspace() {
        let script = Path::new("/work/shared/bench/make_workspace.py");
        let python = Command::new("python3").arg("--version").output();
        if !script.exists() || !python.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: needs python3 and {}", script.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let status = Command::new("python3")
            .arg(script)
            .arg(&ws)
            .status()
            .unwrap();
        assert!(status.success());
        let repo = open(&ws);
        assert_eq!(repo.tags().unwrap(), ["sl-v1.0"]);

        let changes = repo.checkout_changes("HEAD~1", &["src/sl/"]).unwrap();
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "src/sl/models/traditional.py",
                "src/sl/models/tree_based.py"
            ]
        );
        assert!(changes
            .iter()
            .all(|c| c.status == 'M' && c.added == 1 && c.deleted == 1));

        repo.checkout("HEAD~1", &["src/sl/"]).unwrap();
        assert_eq!(
            read(&ws, "src/sl/models/traditional.py"),
            "def fit(X, y):\n    return 'ridge'\n"
        );
        assert_eq!(
            read(&ws, "src/sl/models/tree_based.py"),
            "def fit(X, y):\n    return 'xgboost'\n"
        );
        assert_eq!(
            repo.dirty_paths(&["src/sl/"]).unwrap(),
            [
                "src/sl/models/traditional.py",
                "src/sl/models/tree_based.py"
            ]
        );
    }
}
