//! Native evaluation of LightGBM models saved as text (`booster.save_model("model.txt")`).
//!
//! Supported: the `gbdt`-style tree ensembles LightGBM writes (random forest mode too, with
//! `average_output`), numerical splits with each of LightGBM's missing-value rules (`None`:
//! NaN counts as 0; `Zero`: 0 and NaN take the default side; `NaN`: NaN takes the default
//! side), categorical splits (the listed categories go left; NaN and negative values right),
//! and the objectives `regression` (`l2`, with `sqrt`), `regression_l1`, `huber`, `fair`,
//! `quantile`, `mape` (identity), `binary` (sigmoid with its `sigmoid:` scale),
//! `cross_entropy` (sigmoid), `poisson`, `gamma`, `tweedie` (exp) and `multiclass`
//! (softmax). Linear trees, ranking objectives and other kinds are refused by name.
//!
//! Evaluation follows LightGBM's `Tree::GetLeaf` and `ConvertOutput`: features are doubles,
//! `x <= threshold` goes left, leaf values are summed in f64 tree by tree, the output
//! transform is applied last.
//!
//! The file is untrusted input: every count is checked against the arrays it describes, and
//! every child index against the tree, before anything is evaluated.

use std::thread;

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};
use crate::validation::data::Dataset;

/// A parsed LightGBM model.
#[derive(Debug, Clone)]
pub struct Model {
    trees: Vec<Tree>,
    /// Trees per boosting round: one per class for multi-class models, else 1.
    per_iteration: usize,
    average_output: bool,
    transform: Transform,
    objective: String,
    feature_names: Vec<String>,
    source: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    Identity,
    /// `regression` with `sqrt`: the model predicts the square root, signed.
    SignedSquare,
    Sigmoid(f64),
    Exp,
    Softmax,
}

#[derive(Debug, Clone)]
struct Tree {
    /// Internal nodes; a child `< 0` is the leaf `!child`.
    nodes: Vec<Node>,
    leaf_values: Vec<f64>,
    /// Bit sets of categorical splits, as `cat_threshold` words, indexed by `cat_boundaries`.
    cat_boundaries: Vec<usize>,
    cat_threshold: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    feature: usize,
    threshold: f64,
    decision_type: u8,
    left: i32,
    right: i32,
}

const CATEGORICAL_MASK: u8 = 1;
const DEFAULT_LEFT_MASK: u8 = 2;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;
/// LightGBM's `kZeroThreshold`: values within it count as zero. It is the float `1e-35f`,
/// compared as a double (`1.0000000180025095e-35`, which the `zero_as_missing` fixture has
/// a row exactly on).
const ZERO_THRESHOLD: f64 = 1e-35f32 as f64;

/// Rows per thread below which scoring stays on the calling thread.
const MIN_ROWS_PER_THREAD: usize = 20_000;

/// Whether `bytes` start like a LightGBM text model (its first line is `tree`).
pub fn looks_like_lightgbm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n")
}

impl Model {
    /// Parse a LightGBM text model. `display_path` names the file in messages.
    pub fn from_text(bytes: &[u8], display_path: &str) -> Result<Model> {
        let parse_error = |line: usize, message: String| Error::Parse {
            path: display_path.to_string(),
            format: "LightGBM model",
            line,
            column: 1,
            message,
        };
        let refuse = |kind: String| {
            Error::invalid(
                format!("LightGBM model `{display_path}`"),
                format!("{kind} cannot be evaluated natively; evaluate it with `validate::external_model` and lightgbm itself"),
            )
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| parse_error(0, format!("the file is not UTF-8 text ({e})")))?;
        let mut header: Vec<(usize, &str, &str)> = Vec::new();
        let mut tree_blocks: Vec<Vec<(usize, &str, &str)>> = Vec::new();
        let mut in_parameters = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let number = i + 1;
            if line == "end of trees" {
                in_parameters = true;
                continue;
            }
            if in_parameters || line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                if number == 1 && line == "tree" {
                    continue;
                }
                continue;
            };
            if key == "Tree" {
                tree_blocks.push(Vec::new());
                continue;
            }
            match tree_blocks.last_mut() {
                Some(block) => block.push((number, key, value)),
                None => header.push((number, key, value)),
            }
        }
        let get = |key: &str| {
            header
                .iter()
                .find(|(_, k, _)| *k == key)
                .map(|(n, _, v)| (*n, *v))
        };
        let count = |key: &str| -> Result<usize> {
            let (n, v) =
                get(key).ok_or_else(|| parse_error(0, format!("the header has no `{key}`")))?;
            v.trim()
                .parse()
                .map_err(|_| parse_error(n, format!("`{key}` is `{v}`, not a count")))
        };
        let num_class = count("num_class")?;
        let per_iteration = count("num_tree_per_iteration")?;
        let max_feature_idx = count("max_feature_idx")?;
        if per_iteration == 0 || (num_class > 1 && per_iteration != num_class) {
            return Err(parse_error(
                0,
                format!("`num_tree_per_iteration` is {per_iteration} for {num_class} classes"),
            ));
        }
        // A real model lists something per feature (`feature_names`, `feature_infos`), so
        // it never has more features than bytes: this bounds the names made up below. The
        // `lightgbm` fuzz target found a 241-byte file claiming 270 million features.
        let num_features = max_feature_idx
            .checked_add(1)
            .filter(|&n| n <= bytes.len())
            .ok_or_else(|| {
                parse_error(
                    0,
                    format!("`max_feature_idx` is {max_feature_idx}, more features than the file could describe"),
                )
            })?;
        let feature_names: Vec<String> = match get("feature_names") {
            Some((n, v)) => {
                let names: Vec<String> = v.split(' ').map(str::to_string).collect();
                if names.len() != num_features {
                    return Err(parse_error(
                        n,
                        format!(
                            "it names {} features but `max_feature_idx` says {num_features}",
                            names.len()
                        ),
                    ));
                }
                names
            }
            None => (0..num_features).map(|i| format!("Column_{i}")).collect(),
        };
        let (_, objective_line) = get("objective")
            .ok_or_else(|| parse_error(0, "the header has no `objective`".into()))?;
        let mut words = objective_line.split(' ');
        let objective = words.next().unwrap_or("").to_string();
        let options: Vec<&str> = words.collect();
        let option = |name: &str| {
            options
                .iter()
                .find_map(|o| o.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        };
        let transform = match objective.as_str() {
            "regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse" | "rmse"
                if options.contains(&"sqrt") =>
            {
                Transform::SignedSquare
            }
            "regression"
            | "regression_l2"
            | "l2"
            | "mean_squared_error"
            | "mse"
            | "rmse"
            | "regression_l1"
            | "l1"
            | "mean_absolute_error"
            | "mae"
            | "huber"
            | "fair"
            | "quantile"
            | "mape"
            | "mean_absolute_percentage_error" => Transform::Identity,
            "binary" => {
                let scale = option("sigmoid").map_or(Ok(1.0), |s| {
                    s.parse::<f64>()
                        .map_err(|_| parse_error(0, format!("`sigmoid:{s}` is not a number")))
                })?;
                Transform::Sigmoid(scale)
            }
            "cross_entropy" | "xentropy" => Transform::Sigmoid(1.0),
            "poisson" | "gamma" | "tweedie" => Transform::Exp,
            "multiclass" | "softmax" => Transform::Softmax,
            other => return Err(refuse(format!("objective `{other}`"))),
        };
        if (transform == Transform::Softmax) != (num_class > 1) {
            return Err(parse_error(
                0,
                format!("objective `{objective}` does not fit `num_class` {num_class}"),
            ));
        }
        let average_output = header.iter().any(|(_, k, _)| *k == "average_output")
            || text.lines().any(|l| l.trim_end() == "average_output");

        let mut trees = Vec::with_capacity(tree_blocks.len());
        for (t, block) in tree_blocks.iter().enumerate() {
            let tree = parse_tree(block, num_features)
                .map_err(|(line, m)| parse_error(line, format!("tree {t}: {m}")))?;
            if block
                .iter()
                .any(|(_, k, v)| *k == "is_linear" && v.trim() != "0")
            {
                return Err(refuse(format!("tree {t} is a linear tree, which")));
            }
            trees.push(tree);
        }
        if trees.len() % per_iteration != 0 {
            return Err(parse_error(
                0,
                format!(
                    "it has {} trees, not a whole number of rounds of {per_iteration}",
                    trees.len()
                ),
            ));
        }
        Ok(Model {
            trees,
            per_iteration,
            average_output,
            transform,
            objective,
            feature_names,
            source: display_path.to_string(),
        })
    }

    /// The feature names the model stores.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The training objective, e.g. `regression` or `binary`.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// How many trees are summed.
    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The number of classes of a multi-class model, else `None`.
    pub fn num_classes(&self) -> Option<usize> {
        (self.per_iteration > 1).then_some(self.per_iteration)
    }

    /// Whether predictions are class probabilities (log loss and accuracy apply).
    pub fn is_classifier(&self) -> bool {
        self.objective == "binary" || self.transform == Transform::Softmax
    }

    /// Predict every row of `data`, its columns picked by the model's feature names. For a
    /// multi-class model, the value is the most probable class and the probabilities come
    /// with it.
    pub fn predict_output(&self, data: &Dataset) -> Result<super::xgboost::Output> {
        let columns = data.columns_for(&self.feature_names, &self.source)?;
        let n = data.n_rows();
        let k = self.per_iteration;
        let mut raw = vec![0.0f64; n * k];
        let threads = thread::available_parallelism().map_or(1, |t| t.get());
        let threads = (n / MIN_ROWS_PER_THREAD).clamp(1, threads);
        let per = n.div_ceil(threads).max(1);
        let x = data.x.view();
        let columns = &columns;
        thread::scope(|scope| {
            for (i, part) in raw.chunks_mut(per * k).enumerate() {
                scope.spawn(move || {
                    let mut row_values = vec![0.0f64; self.feature_names.len()];
                    for (r, out) in part.chunks_mut(k).enumerate() {
                        let row = x.row(i * per + r);
                        for (v, &c) in row_values.iter_mut().zip(columns) {
                            *v = row[c];
                        }
                        for (t, tree) in self.trees.iter().enumerate() {
                            out[t % k] += tree.predict(&row_values);
                        }
                    }
                });
            }
        });
        if self.average_output && !self.trees.is_empty() {
            let rounds = (self.trees.len() / k) as f64;
            raw.iter_mut().for_each(|v| *v /= rounds);
        }
        Ok(match self.transform {
            Transform::Softmax => {
                let mut probs = Array2::<f64>::zeros((n, k));
                let mut values = Array1::<f64>::zeros(n);
                for (r, row) in raw.chunks_exact(k).enumerate() {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
                    let mut best = 0;
                    for (c, v) in row.iter().enumerate() {
                        probs[[r, c]] = (v - max).exp() / sum;
                        if row[c] > row[best] {
                            best = c;
                        }
                    }
                    values[r] = best as f64;
                }
                super::xgboost::Output {
                    values,
                    probabilities: Some(probs),
                }
            }
            t => super::xgboost::Output {
                values: raw
                    .into_iter()
                    .map(|v| match t {
                        Transform::SignedSquare => v.signum() * v * v,
                        Transform::Sigmoid(s) => 1.0 / (1.0 + (-s * v).exp()),
                        Transform::Exp => v.exp(),
                        _ => v,
                    })
                    .collect(),
                probabilities: None,
            },
        })
    }

    /// Predict one value per row; see [`Model::predict_output`].
    pub fn predict(&self, data: &Dataset) -> Result<Array1<f64>> {
        Ok(self.predict_output(data)?.values)
    }
}

impl Tree {
    fn predict(&self, row: &[f64]) -> f64 {
        if self.nodes.is_empty() {
            return self.leaf_values[0];
        }
        let mut node = 0i32;
        // `parse_tree` checked that every path ends at a leaf without revisiting a node, so
        // this loop ends within `nodes.len()` steps.
        while node >= 0 {
            let n = &self.nodes[node as usize];
            let v = row[n.feature];
            node = if n.decision_type & CATEGORICAL_MASK != 0 {
                self.categorical(n, v)
            } else {
                numerical(n, v)
            };
        }
        self.leaf_values[!node as usize]
    }

    fn categorical(&self, n: &Node, v: f64) -> i32 {
        // NaN, negative values and values past i32 (undefined in C++, negative on x86) go
        // right, as in LightGBM.
        if !(0.0..2_147_483_648.0).contains(&v) {
            return n.right;
        }
        let category = v as usize;
        let set = n.threshold as usize;
        let (start, end) = (self.cat_boundaries[set], self.cat_boundaries[set + 1]);
        let word = category / 32;
        if start + word < end && (self.cat_threshold[start + word] >> (category % 32)) & 1 == 1 {
            n.left
        } else {
            n.right
        }
    }
}

fn numerical(n: &Node, v: f64) -> i32 {
    let missing = (n.decision_type >> 2) & 3;
    let v = if v.is_nan() && missing != MISSING_NAN {
        0.0
    } else {
        v
    };
    let is_missing = (missing == MISSING_ZERO && (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&v))
        || (missing == MISSING_NAN && v.is_nan());
    if is_missing {
        if n.decision_type & DEFAULT_LEFT_MASK != 0 {
            n.left
        } else {
            n.right
        }
    } else if v <= n.threshold {
        n.left
    } else {
        n.right
    }
}

type Lines<'a> = [(usize, &'a str, &'a str)];

fn parse_tree(block: &Lines, num_features: usize) -> Result<Tree, (usize, String)> {
    let first = block.first().map_or(0, |(n, _, _)| *n);
    let field = |key: &str| {
        block
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(n, _, v)| (*n, *v))
    };
    let list = |key: &str, want: usize| -> Result<Vec<&str>, (usize, String)> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let (n, v) = field(key).ok_or((first, format!("it has no `{key}`")))?;
        let items: Vec<&str> = v.split(' ').collect();
        if items.len() != want {
            return Err((
                n,
                format!("`{key}` has {} entries, expected {want}", items.len()),
            ));
        }
        Ok(items)
    };
    fn numbers<T: std::str::FromStr>(
        items: &[&str],
        key: &str,
        line: usize,
    ) -> Result<Vec<T>, (usize, String)> {
        items
            .iter()
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| (line, format!("`{key}` holds `{s}`, not a number")))
            })
            .collect()
    }
    let line_of = |key: &str| field(key).map_or(first, |(n, _)| n);
    let (nl_line, leaves) =
        field("num_leaves").ok_or((first, "it has no `num_leaves`".to_string()))?;
    let leaves: usize = leaves
        .trim()
        .parse()
        .ok()
        .filter(|&l| l >= 1)
        .ok_or((nl_line, format!("`num_leaves` is `{leaves}`")))?;
    // A tree is never larger than its lines: this bounds every allocation by the file.
    let longest = block.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    if leaves > longest / 2 + 2 {
        return Err((
            nl_line,
            format!("`num_leaves` is {leaves}, more than its lists hold"),
        ));
    }
    let leaf_values: Vec<f64> = numbers(
        &list("leaf_value", leaves)?,
        "leaf_value",
        line_of("leaf_value"),
    )?;
    let internal = leaves - 1;
    let features: Vec<usize> = numbers(
        &list("split_feature", internal)?,
        "split_feature",
        line_of("split_feature"),
    )?;
    let thresholds: Vec<f64> = numbers(
        &list("threshold", internal)?,
        "threshold",
        line_of("threshold"),
    )?;
    let decisions: Vec<u8> = numbers(
        &list("decision_type", internal)?,
        "decision_type",
        line_of("decision_type"),
    )?;
    let lefts: Vec<i32> = numbers(
        &list("left_child", internal)?,
        "left_child",
        line_of("left_child"),
    )?;
    let rights: Vec<i32> = numbers(
        &list("right_child", internal)?,
        "right_child",
        line_of("right_child"),
    )?;
    let num_cat: usize = field("num_cat")
        .map(|(n, v)| {
            v.trim()
                .parse()
                .map_err(|_| (n, format!("`num_cat` is `{v}`")))
        })
        .transpose()?
        .unwrap_or(0);
    let (cat_boundaries, cat_threshold) = if num_cat > 0 {
        if num_cat > internal {
            return Err((
                line_of("num_cat"),
                format!("`num_cat` is {num_cat} for {internal} splits"),
            ));
        }
        let boundaries: Vec<usize> = numbers(
            &list("cat_boundaries", num_cat + 1)?,
            "cat_boundaries",
            line_of("cat_boundaries"),
        )?;
        let (bn, words) =
            field("cat_threshold").ok_or((first, "it has no `cat_threshold`".to_string()))?;
        let words: Vec<u32> = numbers(&words.split(' ').collect::<Vec<_>>(), "cat_threshold", bn)?;
        if boundaries[0] != 0
            || boundaries.windows(2).any(|w| w[0] > w[1])
            || boundaries[num_cat] != words.len()
        {
            return Err((
                line_of("cat_boundaries"),
                "`cat_boundaries` do not partition `cat_threshold`".into(),
            ));
        }
        (boundaries, words)
    } else {
        (vec![0], Vec::new())
    };
    let mut nodes = Vec::with_capacity(internal);
    for i in 0..internal {
        if features[i] >= num_features {
            return Err((
                line_of("split_feature"),
                format!(
                    "node {i} splits on feature {}, but the model has {num_features}",
                    features[i]
                ),
            ));
        }
        if decisions[i] & CATEGORICAL_MASK != 0 {
            let t = thresholds[i];
            if !(t >= 0.0 && (t as usize) < num_cat) || t.fract() != 0.0 {
                return Err((
                    line_of("threshold"),
                    format!(
                        "categorical node {i} names category set {t}, but the tree has {num_cat}"
                    ),
                ));
            }
        }
        nodes.push(Node {
            feature: features[i],
            threshold: thresholds[i],
            decision_type: decisions[i],
            left: lefts[i],
            right: rights[i],
        });
    }
    // Every node and every leaf reached exactly once from the root: a tree, no cycles.
    if internal > 0 {
        let mut seen_node = vec![false; internal];
        let mut seen_leaf = vec![false; leaves];
        let mut stack = vec![0i32];
        while let Some(at) = stack.pop() {
            if at >= 0 {
                let i = at as usize;
                if i >= internal || std::mem::replace(&mut seen_node[i], true) {
                    return Err((
                        line_of("left_child"),
                        format!("node {i} is out of range or reached twice, so it is not a tree"),
                    ));
                }
                stack.push(nodes[i].left);
                stack.push(nodes[i].right);
            } else {
                let leaf = !at as usize;
                if leaf >= leaves || std::mem::replace(&mut seen_leaf[leaf], true) {
                    return Err((
                        line_of("left_child"),
                        format!(
                            "leaf {leaf} is out of range or reached twice, so it is not a tree"
                        ),
                    ));
                }
            }
        }
    }
    Ok(Tree {
        nodes,
        leaf_values,
        cat_boundaries,
        cat_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        // Found by the `lightgbm` fuzz target: no feature names, 270 million features.
        let text = b"tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=270267589\nobjective=regression\n";
        let err = Model::from_text(text, "m.txt").unwrap_err().to_string();
        assert!(
            err.contains(
                "`max_feature_idx` is 270267589, more features than the file could describe"
            ),
            "{err}"
        );
        let text = b"tree\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=0\nobjective=lambdarank\n";
        let err = Model::from_text(text, "m.txt").unwrap_err().to_string();
        assert_eq!(err, "LightGBM model `m.txt`: objective `lambdarank` cannot be evaluated natively; evaluate it with `validate::external_model` and lightgbm itself");
    }
}
