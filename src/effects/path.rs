//! Workspace-relative paths, as the effect layer names files.
//!
//! A [`RelPath`] is `/`-separated, has no `.` or `..` components and no leading or trailing
//! slash; the empty path is the workspace root. Scripts never build one themselves: every
//! path they give goes through [`super::Workspace::resolve`], which normalises it here and
//! then resolves its symlinks against the workspace's directory handle (`sandbox.rs`), so a
//! `RelPath` a primitive holds always names a place inside the workspace.

use crate::error::{Error, Result};
use std::path::{Component, Path};

/// A normalised workspace-relative path: `/`-separated, no `.` or `..`, no trailing slash.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// The workspace root.
    pub fn root() -> RelPath {
        RelPath(String::new())
    }

    /// A path the effect layer built itself from plain components (trash names, run logs).
    pub(in crate::effects) fn from_trusted(path: String) -> RelPath {
        debug_assert!(!path.starts_with('/') && !path.split('/').any(|c| c == ".."));
        RelPath(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `self/child`; `child` is one plain name or a relative path of plain names.
    pub fn join(&self, child: &str) -> RelPath {
        if self.0.is_empty() {
            RelPath(child.to_string())
        } else {
            RelPath(format!("{}/{}", self.0, child))
        }
    }

    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(RelPath(
            self.0
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default(),
        ))
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// True when `self` is `dir` or lies below it.
    pub fn is_within(&self, dir: &RelPath) -> bool {
        dir.0.is_empty()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    pub fn first_component(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Whether `path` is already a normal relative path: non-empty `/`-separated names,
    /// none of them `.` or `..`, no leading, trailing or doubled slash. `normalize` returns
    /// such a path as it is.
    pub fn is_plain(path: &str) -> bool {
        !path.is_empty()
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
    }

    /// The lexical half of resolving a script's path: no I/O. Refuses empty and absolute
    /// paths and a `..` that climbs above the root; drops `.`.
    pub fn normalize(path: &str) -> Result<RelPath> {
        let trimmed = path.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid(
                "path",
                "an empty path was given; name a file inside the workspace",
            ));
        }
        if RelPath::is_plain(trimmed) {
            // Already normal (what scripts and registries almost always give): one scan,
            // no component list to build and join.
            return Ok(RelPath(trimmed.to_string()));
        }
        let mut parts: Vec<&str> = Vec::new();
        for comp in Path::new(trimmed).components() {
            match comp {
                Component::Normal(s) => {
                    let s = s.to_str().ok_or_else(|| {
                        Error::invalid(format!("path `{trimmed}`"), "is not valid UTF-8")
                    })?;
                    parts.push(s);
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(Error::sandbox(trimmed, "`..` leads out of the workspace"));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::sandbox(
                        trimmed,
                        "absolute paths are not allowed; give a path relative to the workspace",
                    ));
                }
            }
        }
        Ok(RelPath(parts.join("/")))
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_refuses_escapes() {
        assert_eq!(
            RelPath::normalize("models/../models/./a.json")
                .unwrap()
                .as_str(),
            "models/a.json"
        );
        assert!(matches!(
            RelPath::normalize("models/../../x"),
            Err(Error::Sandbox { .. })
        ));
        assert!(matches!(
            RelPath::normalize("/etc/passwd"),
            Err(Error::Sandbox { .. })
        ));
        assert!(RelPath::normalize("  ").is_err());
        assert!(RelPath::normalize(".").unwrap().is_root());
    }

    #[test]
    fn within_and_parent() {
        let p = RelPath::normalize("a/b/c").unwrap();
        assert!(p.is_within(&RelPath::normalize("a/b").unwrap()));
        assert!(!p.is_within(&RelPath::normalize("a/bc").unwrap()));
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.file_name(), "c");
    }
}
