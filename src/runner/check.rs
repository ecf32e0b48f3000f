//! `runbook check`: parse and check a runbook without running it, and every module it
//! imports: header, syntax, and calls to primitives or module functions that do not exist
//! or get the wrong number of arguments.

use super::{compile, load, location_in, runbooks_dir};
use crate::engine;
use crate::error::{Error, Result};
use crate::header::Header;
use rhai::AST;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) type FnTable = BTreeMap<String, Vec<usize>>;

/// What `check` found out about a runbook that is fine.
pub struct Checked {
    /// `None` for a helper module (a file under `lib/` without a header).
    pub header: Option<Header>,
    pub steps: usize,
    /// The functions a helper module defines.
    pub functions: usize,
}

/// Whether `path` is a helper module: a file in a `lib/` directory whose text has no `//!`
/// header. Those are checked like imported modules; runbooks need a header.
fn is_helper(path: &Path, text: &str) -> bool {
    let in_lib = path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "lib");
    in_lib
        && !text
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty())
            .is_some_and(|l| l.starts_with("//!"))
}

/// Parse and check a runbook without running it: header, syntax, and calls to primitives
/// (`family::function`) or imported modules that do not exist.
pub fn check(path: &Path) -> Result<Checked> {
    // A name that is no file is found as `runbook run` finds it, from the current directory.
    let path = &super::source::find(path, Path::new("."))?;
    let dir = runbooks_dir(path);
    let mut checker = Checker {
        known: super::known_functions(),
        resolver: engine::SandboxedResolver::new(&dir).or_in(Path::new("runbooks")),
        compiler: engine::compiler(&dir),
        visited: std::collections::HashSet::new(),
        params: None,
    };
    if let Ok(text) = super::source::read_text(path) {
        if is_helper(path, &text) {
            // A helper module: its imports resolve relative to itself, as when imported.
            let display = path.display().to_string();
            let ast = compile(&checker.compiler, &display, &text)?;
            let source = std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| display.clone());
            let steps = checker.check_ast(&ast, &display, &text, Some(&source))?;
            return Ok(Checked {
                header: None,
                steps,
                functions: ast.iter_functions().count(),
            });
        }
    }
    let loaded = load(path)?;
    checker.params = Some(
        loaded
            .header
            .params
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    );
    let steps = checker.check_ast(&loaded.ast, &loaded.display, &loaded.text, None)?;
    Ok(Checked {
        header: Some(loaded.header),
        steps,
        functions: loaded.ast.iter_functions().count(),
    })
}

/// Walks a script, and every module it imports, for calls that cannot work.
struct Checker {
    /// `family -> function -> arities` of the primitives.
    known: &'static BTreeMap<String, FnTable>,
    resolver: engine::SandboxedResolver,
    compiler: rhai::Engine,
    /// Modules already checked (an import graph may share or repeat them).
    visited: std::collections::HashSet<PathBuf>,
    /// The parameters the runbook's header declares (`params.x` must be one of them).
    params: Option<Vec<String>>,
}

/// The `x` of `params.x` (also at the head of `params.x.y` or `params.x.len()`).
fn params_field(dot: &rhai::BinaryExpr) -> Option<(&str, rhai::Position)> {
    use rhai::Expr;
    match &dot.lhs {
        Expr::Variable(v, _, _) if v.1 == "params" && v.2.is_empty() => {}
        _ => return None,
    }
    let prop = match &dot.rhs {
        Expr::Dot(inner, _, _) => &inner.lhs,
        other => other,
    };
    match prop {
        Expr::Property(p, pos) => Some((p.2.as_str(), *pos)),
        _ => None,
    }
}

impl Checker {
    /// Check one script; `source` is its absolute path when it is an imported module (imports
    /// inside it resolve relative to it). Returns the number of `step` blocks.
    fn check_ast(
        &mut self,
        ast: &AST,
        display: &str,
        text: &str,
        source: Option<&str>,
    ) -> Result<usize> {
        use rhai::{ASTNode, Expr, Stmt};
        let mut aliases: BTreeMap<String, Option<FnTable>> = BTreeMap::new();
        let mut imports: Vec<PathBuf> = Vec::new();
        let mut problems: Vec<(rhai::Position, String)> = Vec::new();
        let mut steps = 0;
        ast.walk(&mut |nodes: &[ASTNode]| {
            match nodes.last() {
                Some(ASTNode::Stmt(Stmt::Import(x, _))) => {
                    let (expr, alias) = &**x;
                    if let Expr::StringConstant(p, pos) = expr {
                        match self.resolver.locate(source, p) {
                            Ok(file) => {
                                let fns = super::source::read_text(&file).ok().and_then(|t| self.compiler.compile(t).ok()).map(|m| {
                                    let mut t = FnTable::new();
                                    for f in m.iter_functions() {
                                        t.entry(f.name.to_string()).or_default().push(f.params.len());
                                    }
                                    t
                                });
                                aliases.insert(alias.name.to_string(), fns);
                                imports.push(file);
                            }
                            Err(msg) => problems.push((*pos, msg)),
                        }
                    }
                }
                Some(ASTNode::Expr(Expr::Custom(c, _))) if c.tokens.first().is_some_and(|t| t == "step") => steps += 1,
                // Only the runbook itself sees `params`: a function or module has its own scope.
                Some(ASTNode::Expr(Expr::Dot(dot, _, _))) if source.is_none() => {
                    if let (Some(declared), Some((field, pos))) = (&self.params, params_field(dot)) {
                        if !declared.iter().any(|d| d == field) {
                            let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                            let hint = match crate::header::suggest(field, &names) {
                                Some(s) => format!("; did you mean `params.{s}`?"),
                                None if names.is_empty() => "; it declares none (add `//! param NAME: TYPE -- DESCRIPTION`)".to_string(),
                                None => format!("; it declares {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
                            };
                            problems.push((pos, format!("`params.{field}` is not a parameter the header declares{hint}")));
                        }
                    }
                }
                Some(ASTNode::Expr(Expr::FnCall(call, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                    if !call.namespace.is_empty() =>
                {
                    let module = call.namespace.root().to_string();
                    let name = call.name.to_string();
                    let arity = call.args.len();
                    let table = self.known.get(&module).or_else(|| aliases.get(&module).and_then(Option::as_ref));
                    match table {
                        Some(fns) => match fns.get(&name) {
                            Some(arities) if arities.contains(&arity) => {}
                            Some(arities) => problems.push((
                                *pos,
                                format!("`{module}::{name}` takes {} argument(s), not {arity}", join_arities(arities)),
                            )),
                            None => problems.push((*pos, format!("there is no primitive `{module}::{name}`; `runbook docs` lists them"))),
                        },
                        None if aliases.contains_key(&module) => {}
                        None => problems.push((
                            *pos,
                            format!("unknown module `{module}` in `{module}::{name}`; `runbook docs` lists the primitive families"),
                        )),
                    }
                }
                _ => {}
            }
            true
        });
        if let Some((pos, message)) = problems.into_iter().next() {
            let line = pos.line().unwrap_or(1);
            return Err(Error::Compile {
                location: location_in(display, text, line, pos.position().unwrap_or(1)),
                message,
            });
        }
        // Then the imported modules themselves: a typo in `runbooks/lib/` is as fatal as one
        // in the runbook, and would otherwise surface only mid-incident.
        for file in imports {
            if !self.visited.insert(file.clone()) {
                continue;
            }
            let shown = file.display().to_string();
            let text =
                super::source::read_text(&file).map_err(|e| Error::io(shown.clone(), "read", e))?;
            let ast = compile(&self.compiler, &shown, &text)?;
            self.check_ast(&ast, &shown, &text, Some(&shown))?;
        }
        Ok(steps)
    }
}

fn join_arities(a: &[usize]) -> String {
    let mut v: Vec<String> = a.iter().map(usize::to_string).collect();
    v.sort();
    v.dedup();
    v.join(" or ")
}
