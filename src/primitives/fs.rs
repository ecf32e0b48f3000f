//! `fs::` — files in the workspace: test, read, write, list, find, copy, back up, move,
//! remove.
//!
//! Every path is relative to the workspace and checked by the effect layer's sandbox. Nothing
//! here destroys data: `remove` moves into `.runbook/trash/<run-id>/`, `write` keeps the old
//! content there, and `copy`/`move` refuse to overwrite. In a dry run all of it is simulated
//! in the overlay, so `fs::exists` after `fs::remove` answers false there too.

use super::{Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::effects::{Effect, Record, RelPath, WalkFilter};
use crate::error::{Error, Result};
use rhai::{Array, Dynamic, NativeCallContext};
use serde_json::json;

/// Files under `dir` modified after `reference` was, optionally only those whose file name
/// matches `name_glob`: the plan's `find DIR -name GLOB -newer REF`.
pub fn newer(
    ctx: &RunContext,
    dir: &str,
    reference: &str,
    name_glob: Option<&str>,
) -> Result<Vec<String>> {
    let dir = ctx.ws.resolve(dir)?;
    let reference = ctx.ws.resolve(reference)?;
    let since = ctx.ws.mtime(&reference)?;
    let name = match name_glob {
        Some(g) => Some(
            glob::Pattern::new(g)
                .map_err(|e| Error::invalid(format!("name pattern `{g}`"), e.to_string()))?,
        ),
        None => None,
    };
    if !ctx.ws.is_dir(&dir) {
        return Err(Error::invalid(format!("`{dir}`"), "is not a directory"));
    }
    let filter = WalkFilter {
        name,
        newer_than: Some(since),
    };
    Ok(ctx
        .ws
        .walk(&dir, &filter)?
        .into_iter()
        .map(|f| f.path.as_str().to_string())
        .collect())
}

/// `fs::size`: the bytes and file count of a file or a tree, as the run sees them.
fn size(ctx: &RunContext, path: &str) -> Result<rhai::Map> {
    let rel = ctx.ws.resolve(path)?;
    let (bytes, files) = if ctx.ws.is_dir(&rel) {
        let mut bytes = 0u64;
        let listed = ctx.ws.walk_files(&rel)?;
        for f in &listed {
            // A link is listed but not followed; it counts as a file of no size.
            bytes += ctx.ws.size(&f.path).unwrap_or(0);
        }
        (bytes, listed.len() as u64)
    } else {
        (ctx.ws.size(&rel)?, 1)
    };
    let mut m = rhai::Map::new();
    m.insert(
        "bytes".into(),
        (i64::try_from(bytes).unwrap_or(i64::MAX)).into(),
    );
    m.insert("files".into(), (files as i64).into());
    Ok(m)
}

/// Where `fs::backup` puts a copy of `src`: `backups/<name>_<stamp><ext>`, following the
/// plan's §4.1 names (`registry_<ts>.json`, `models_<ts>/`, `src_sl_<ts>/`).
fn backup_destination(
    ctx: &RunContext,
    src: &RelPath,
    dest_dir: &str,
    is_dir: bool,
) -> Result<RelPath> {
    let stamp = ctx.stamp();
    let (stem, ext) = if is_dir {
        (src.as_str().replace('/', "_"), String::new())
    } else {
        let name = src.file_name();
        match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
            _ => (name.to_string(), String::new()),
        }
    };
    let mut n = 0;
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("_{n}")
        };
        let candidate = ctx
            .ws
            .resolve_writable(&format!("{dest_dir}/{stem}_{stamp}{suffix}{ext}"))?;
        if !ctx.ws.exists(&candidate) {
            return Ok(candidate);
        }
        n += 1;
    }
}

fn backup(ctx: &RunContext, src: &str, dest_dir: &str) -> Result<String> {
    let src = ctx.ws.resolve(src)?;
    if !ctx.ws.exists(&src) {
        return Err(Error::io(
            src.to_string(),
            "back up",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let is_dir = ctx.ws.is_dir(&src);
    let dst = backup_destination(ctx, &src, dest_dir, is_dir)?;
    let effect = Effect::Copy {
        src: src.clone(),
        dst: dst.clone(),
    };
    ctx.ws.perform(effect, |out| {
        let count = out.files;
        let what = if is_dir {
            format!("`{src}/` ({count} files)")
        } else {
            format!("`{src}`")
        };
        Record::new(
            "fs.backup",
            json!({"src": src.as_str(), "dst": dst.as_str(), "files": count}),
            format!("back up {what} to `{dst}`"),
        )
    })?;
    Ok(dst.as_str().to_string())
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "fs",
        "Files in the workspace. Paths are relative to the workspace; nothing is destroyed.",
    );

    let c = ctx.clone();
    f.add(
        "exists",
        &["path: &str", "bool"],
        "Whether a file or directory exists (in a dry run: would exist at this point).\n```rhai\nif fs::exists(\"configs/sl/training_configs.yaml.backup\") { print(\"backup found\"); }\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<bool> {
            let rel = c.ws.resolve(path).map_err(|e| c.fail_at(&call, e))?;
            Ok(c.ws.exists(&rel))
        },
    );
    let c = ctx.clone();
    f.add(
        "is_dir",
        &["path: &str", "bool"],
        "Whether `path` is a directory.\n```rhai\nassert(fs::is_dir(\"models\"), \"no models/ directory\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<bool> {
            let rel = c.ws.resolve(path).map_err(|e| c.fail_at(&call, e))?;
            Ok(c.ws.is_dir(&rel))
        },
    );
    let c = ctx.clone();
    f.add(
        "read",
        &["path: &str", "String"],
        "The text of a file (UTF-8).\n```rhai\nlet ts = fs::read(\"backup_timestamp.txt\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<String> {
            let rel = c.ws.resolve(path).map_err(|e| c.fail_at(&call, e))?;
            c.ws.read_string(&rel).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "write",
        &["path: &str", "text: &str", "()"],
        "Write a text file atomically (temp file, then rename), creating parent directories. An existing file's old content is kept in the trash.\n```rhai\nfs::write(\"backup_timestamp.txt\", timestamp());\n```",
        move |call: NativeCallContext, path: &str, text: &str| -> RhaiResult<()> {
            let rel = c.ws.resolve_writable(path).map_err(|e| c.fail_at(&call, e))?;
            let effect = Effect::Write { path: rel.clone(), bytes: text.as_bytes().to_vec() };
            c.ws.perform(effect, |out| {
                let summary = match &out.kept {
                    Some(t) => format!("write `{rel}` ({} bytes; old content kept at `{t}`)", text.len()),
                    None => format!("write `{rel}` ({} bytes)", text.len()),
                };
                Record::new(
                    "fs.write",
                    json!({"path": rel.as_str(), "bytes": text.len(), "previous_kept_at": out.kept.as_ref().map(|t| t.as_str().to_string())}),
                    summary,
                )
            }).map_err(|e| c.fail_at(&call, e))?;
            Ok(())
        },
    );
    let c = ctx.clone();
    f.add(
        "size",
        &["path: &str", "Map"],
        "The size of a file, or of every file below a directory, as the run sees them: `#{ bytes, files }` (links are not followed). For reports and for checking the disk before a copy.\n```rhai\nlet s = fs::size(\"models\");\nprint(`models/: ${s.files} file(s), ${s.bytes} bytes`);\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<rhai::Map> {
            size(&c, path).map_err(|e| c.fail_at(&call, e))
        },
    );
    let c = ctx.clone();
    f.add(
        "free_space",
        &["int"],
        "Bytes still free for writing on the filesystem that holds the workspace (as `df` shows them). A dry run reports the disk as it is.\n```rhai\nassert(fs::free_space() > fs::size(\"models\").bytes, \"no room to back up models/\");\n```",
        move |call: NativeCallContext| -> RhaiResult<i64> {
            let free = c.ws.free_bytes().map_err(|e| c.fail_at(&call, e))?;
            Ok(i64::try_from(free).unwrap_or(i64::MAX))
        },
    );
    let c = ctx.clone();
    f.add(
        "glob",
        &["pattern: &str", "Array"],
        "Paths matching a glob pattern (`*`, `?`, `[..]`, `**`), sorted. `*` does not cross `/`.\n```rhai\nfor p in fs::glob(\"models/sl_model_v5*\") { print(p); }\n```",
        move |call: NativeCallContext, pattern: &str| -> RhaiResult<Array> {
            let found = c.ws.glob(pattern).map_err(|e| c.fail_at(&call, e))?;
            Ok(found.into_iter().map(|p| Dynamic::from(p.as_str().to_string())).collect())
        },
    );
    let c = ctx.clone();
    f.add(
        "newer",
        &["dir: &str", "reference: &str", "Array"],
        "Files under `dir` (recursively) modified after `reference` was: the plan's `find DIR -newer REF`.\n```rhai\nlet fresh = fs::newer(\"models\", \"backup_timestamp.txt\");\n```",
        move |call: NativeCallContext, dir: &str, reference: &str| -> RhaiResult<Array> {
            let found = newer(&c, dir, reference, None).map_err(|e| c.fail_at(&call, e))?;
            Ok(found.into_iter().map(Dynamic::from).collect())
        },
    );
    let c = ctx.clone();
    f.add(
        "newer",
        &["dir: &str", "reference: &str", "name_glob: &str", "Array"],
        "Like `fs::newer(dir, reference)`, keeping files whose name matches `name_glob`: `find DIR -name GLOB -newer REF`.\n```rhai\nlet pkls = fs::newer(\"models\", \"backup_timestamp.txt\", \"*.pkl\");\n```",
        move |call: NativeCallContext, dir: &str, reference: &str, name_glob: &str| -> RhaiResult<Array> {
            let found = newer(&c, dir, reference, Some(name_glob)).map_err(|e| c.fail_at(&call, e))?;
            Ok(found.into_iter().map(Dynamic::from).collect())
        },
    );
    let c = ctx.clone();
    f.add(
        "copy",
        &["src: &str", "dst: &str", "i64"],
        "Copy a file or a directory tree; the destination must not exist. A tree appears whole or not at all. Returns the number of files copied.\n```rhai\nfs::copy(\"configs/sl\", \"backups/configs_sl_manual\");\n```",
        move |call: NativeCallContext, src: &str, dst: &str| -> RhaiResult<i64> {
            let s = c.ws.resolve(src).map_err(|e| c.fail_at(&call, e))?;
            let d = c.ws.resolve_writable(dst).map_err(|e| c.fail_at(&call, e))?;
            let out = c.ws.perform(Effect::Copy { src: s.clone(), dst: d.clone() }, |out| {
                let n = out.files;
                Record::new("fs.copy", json!({"src": s.as_str(), "dst": d.as_str(), "files": n}), format!("copy `{s}` to `{d}` ({n} file(s))"))
            }).map_err(|e| c.fail_at(&call, e))?;
            Ok(out.files as i64)
        },
    );
    let c = ctx.clone();
    f.add(
        "backup",
        &["src: &str", "String"],
        "Copy a file or directory into `backups/`, named after it and the run's timestamp as in the plan's §4.1 (`models/registry.json` → `backups/registry_<ts>.json`, `src/sl` → `backups/src_sl_<ts>/`). Never overwrites. Returns the backup's path.\n```rhai\nlet b = fs::backup(\"models/registry.json\");\n```",
        move |call: NativeCallContext, src: &str| -> RhaiResult<String> { backup(&c, src, "backups").map_err(|e| c.fail_at(&call, e)) },
    );
    let c = ctx.clone();
    f.add(
        "backup",
        &["src: &str", "dest_dir: &str", "String"],
        "Like `fs::backup(src)`, into `dest_dir` instead of `backups/`.\n```rhai\nfs::backup(\"configs/sl\", \"backups/pre_rollback\");\n```",
        move |call: NativeCallContext, src: &str, dest_dir: &str| -> RhaiResult<String> { backup(&c, src, dest_dir).map_err(|e| c.fail_at(&call, e)) },
    );
    let c = ctx.clone();
    f.add(
        "move",
        &["src: &str", "dst: &str", "()"],
        "Move (rename) a file or directory; the destination must not exist.\n```rhai\nfs::move(\"models/sl_model_v6.json\", \"models/quarantine/sl_model_v6.json\");\n```",
        move |call: NativeCallContext, src: &str, dst: &str| -> RhaiResult<()> {
            let s = c.ws.resolve_entry(src).map_err(|e| c.fail_at(&call, e))?;
            let d = c.ws.resolve_entry(dst).map_err(|e| c.fail_at(&call, e))?;
            c.ws.perform(Effect::Move { src: s.clone(), dst: d.clone() }, |_| {
                Record::new("fs.move", json!({"src": s.as_str(), "dst": d.as_str()}), format!("move `{s}` to `{d}`"))
            }).map_err(|e| c.fail_at(&call, e))?;
            Ok(())
        },
    );
    let c = ctx.clone();
    f.add(
        "mkdir",
        &["path: &str", "bool"],
        "Make a directory and its parents. Returns false when it already existed.\n```rhai\nfs::mkdir(\"backups\");\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<bool> {
            let rel = c.ws.resolve_writable(path).map_err(|e| c.fail_at(&call, e))?;
            let out = c.ws.perform(Effect::Mkdir { path: rel.clone() }, |_| {
                Record::new("fs.mkdir", json!({"path": rel.as_str()}), format!("create directory `{rel}`"))
            }).map_err(|e| c.fail_at(&call, e))?;
            Ok(out.made)
        },
    );
    let c = ctx.clone();
    f.add(
        "remove",
        &["path: &str", "String"],
        "Remove a file or directory by moving it to `.runbook/trash/<run-id>/<path>`, where `runbook trash restore` can bring it back. Returns the trash path.\n```rhai\nfor p in fs::glob(\"models/sl_model_v5*\") { fs::remove(p); }\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<String> {
            let rel = c.ws.resolve_entry(path).map_err(|e| c.fail_at(&call, e))?;
            let out = c.ws.perform(Effect::Remove { path: rel.clone() }, |out| {
                let trash = out.kept.as_ref().map(|t| t.as_str()).unwrap_or_default();
                Record::new("fs.remove", json!({"path": rel.as_str(), "trash": trash}), format!("remove `{rel}` (kept at `{trash}`)"))
            }).map_err(|e| c.fail_at(&call, e))?;
            Ok(out.kept.map(|t| t.as_str().to_string()).unwrap_or_default())
        },
    );
    f
}
