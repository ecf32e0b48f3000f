//! Native evaluation of XGBoost models saved with `Booster.save_model`, as JSON
//! (`model.json`) or UBJSON (`model.ubj`, the default for other names since xgboost 2.1),
//! so validating a tree model needs neither Python nor the XGBoost library.
//!
//! Supported: the `gbtree`, `dart` (each tree scaled by its `weight_drop`) and `gblinear`
//! boosters; single-output regression, binary and multi-class classification; numerical
//! and categorical splits; missing values (NaN follows each split's `default_left`); and
//! the objectives `reg:squarederror` (`reg:linear`), `reg:squaredlogerror`,
//! `reg:absoluteerror`, `reg:pseudohubererror`, `reg:quantileerror` (one quantile),
//! `reg:logistic`, `binary:logistic`, `binary:logitraw`, `binary:hinge`, `count:poisson`,
//! `reg:gamma`, `reg:tweedie`, `multi:softprob` and `multi:softmax`. Anything else
//! (multi-target models, ranking and survival objectives, vector leaves) is refused with an
//! error naming the kind and the file, never evaluated approximately.
//!
//! A model trained through scikit-learn with early stopping records `best_iteration`;
//! `XGBRegressor.predict` then uses only the trees of rounds `0..=best_iteration`, and so
//! does this evaluator ([`Booster::note`] says so for the run log). Inputs that xgboost
//! refuses (`inf`, or beyond the range of `f32`) are refused here too, naming the row.
//!
//! Evaluation follows XGBoost's own arithmetic so predictions agree to float precision:
//! features are compared as `f32` (XGBoost stores its matrix as `f32`) with the rule
//! `x < split_condition` → left; a categorical split sends the categories it lists right
//! and every other one left; the margin starts at `base_score` mapped through the inverse
//! link (the logit for `binary:logistic` and `reg:logistic`, the log for count and
//! gamma-like ones, none for the rest) and the
//! leaf values are added in `f32`, tree by tree; the output transform is applied last, in
//! `f32` as XGBoost does. A leaf's value is its `split_conditions` entry.
//!
//! The trees are flattened into one array of 16-byte nodes, and rows are split across
//! threads, so scoring a million rows stays fast.

use std::collections::HashMap;
use std::thread;

use ndarray::{Array1, Array2, ArrayView2};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::validation::data::Dataset;

/// A parsed XGBoost model, ready to predict.
#[derive(Debug, Clone)]
pub struct Booster {
    nodes: Vec<Node>,
    /// The trees that predict (after the `best_iteration` cut), in file order.
    trees: Vec<Tree>,
    /// Category sets of categorical splits, as bit sets: `cat_sets[k]` is `(first word, words)`
    /// in `cat_bits`, and a categorical node holds `k` in its value's bits.
    cat_sets: Vec<(u32, u32)>,
    cat_bits: Vec<u32>,
    has_categorical: bool,
    /// For `gblinear`: one weight per (feature, group), then one bias per group.
    linear: Option<Vec<f32>>,
    /// The starting margin of each output group: `base_score` through the inverse link.
    base_margin: Vec<f32>,
    n_groups: usize,
    transform: Transform,
    objective: String,
    booster: &'static str,
    num_feature: usize,
    feature_names: Option<Vec<String>>,
    /// Trees in the file, and the best iteration when early stopping recorded one.
    trees_in_file: usize,
    best_iteration: Option<usize>,
    source: String,
}

/// One tree node, 16 bytes. A numerical split sends `x < value` to `left`, NaN to the
/// default side, and the rest to `right`. A leaf holds its value in `value` and points to
/// itself on both sides, so a walk that takes more steps than the path is long just stays
/// on the leaf.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: f32,
    /// The model's feature index, with `DEFAULT_LEFT` set when missing values go left and
    /// `CATEGORICAL` when the split tests a category set (whose index `value`'s bits hold).
    feature: u32,
    left: u32,
    right: u32,
}

const DEFAULT_LEFT: u32 = 1 << 31;
const CATEGORICAL: u32 = 1 << 30;
const FEATURE_MASK: u32 = CATEGORICAL - 1;

/// A tree: where its root is, how many steps reach its deepest leaf, its output group and
/// its weight (1 except for `dart`).
#[derive(Debug, Clone, Copy)]
struct Tree {
    root: u32,
    depth: u32,
    group: u32,
    weight: f32,
}

/// Rows scored together, tree by tree, so that one tree's nodes stay in cache for the
/// whole block.
const BLOCK_ROWS: usize = 64;

/// Rows walked down a tree in lockstep. Each walk is a chain of dependent loads; eight
/// independent chains interleaved keep the processor busy while each waits.
const LANES: usize = 8;

/// Rows per thread below which scoring stays on the calling thread.
const MIN_ROWS_PER_THREAD: usize = 20_000;

/// Categories at or above this are out of range for XGBoost (`OutOfRangeCat`, 2^24) and go
/// left, like any category the split does not list.
const MAX_CATEGORY: f32 = 16_777_216.0;

/// What turns the summed margin into a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Identity,
    Sigmoid,
    Exp,
    /// `binary:hinge`: 1 when the margin is positive, else 0.
    Hinge,
    /// `multi:softprob`: class probabilities; the prediction is the most probable class.
    Softprob,
    /// `multi:softmax`: the most probable class.
    Softmax,
}

/// What a prediction is: one value per row, and for classifiers the probability of each
/// class (one column per class; for a binary model, of class 1 in the only column).
#[derive(Debug, Clone)]
pub struct Output {
    pub values: Array1<f64>,
    /// Multi-class models only: `rows × classes`.
    pub probabilities: Option<Array2<f64>>,
}

// --- The JSON document, as far as prediction needs it. Unknown fields are ignored. ---

#[derive(Deserialize)]
pub(crate) struct LearnerJson {
    #[serde(default)]
    feature_names: Vec<String>,
    #[serde(default)]
    attributes: HashMap<String, serde_json::Value>,
    gradient_booster: GradientBoosterJson,
    learner_model_param: LearnerModelParamJson,
    objective: ObjectiveJson,
}

#[derive(Deserialize)]
struct GradientBoosterJson {
    name: String,
    /// `gbtree`: the trees; `gblinear`: the weights. One struct reads both shapes, so the
    /// trees are parsed straight into it (no intermediate document: a 300-tree model took
    /// 27 MB more that way).
    #[serde(default)]
    model: Option<GbTreeModelJson>,
    /// `dart`: the tree model it wraps, and a weight per tree.
    #[serde(default)]
    gbtree: Option<Box<GradientBoosterJson>>,
    #[serde(default)]
    weight_drop: Vec<f32>,
}

#[derive(Deserialize, Default)]
struct GbTreeModelJson {
    #[serde(default)]
    trees: Vec<TreeJson>,
    #[serde(default)]
    tree_info: Vec<i64>,
    /// Since xgboost 2.0: where each boosting round's trees start.
    #[serde(default)]
    iteration_indptr: Vec<i64>,
    #[serde(default)]
    gbtree_model_param: Option<GbTreeParamJson>,
    /// `gblinear` only.
    #[serde(default)]
    weights: Vec<f32>,
}

#[derive(Deserialize)]
struct GbTreeParamJson {
    #[serde(default)]
    num_parallel_tree: Option<String>,
}

#[derive(Deserialize)]
struct LearnerModelParamJson {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct ObjectiveJson {
    name: String,
    #[serde(default)]
    reg_loss_param: Option<serde_json::Value>,
    #[serde(default)]
    quantile_loss_param: Option<QuantileParamJson>,
}

#[derive(Deserialize)]
struct QuantileParamJson {
    #[serde(default)]
    quantile_alpha: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TreeJson {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    categories: Vec<i64>,
    #[serde(default)]
    categories_nodes: Vec<i64>,
    #[serde(default)]
    categories_segments: Vec<i64>,
    #[serde(default)]
    categories_sizes: Vec<i64>,
    #[serde(default)]
    tree_param: Option<TreeParamJson>,
}

#[derive(Deserialize)]
struct TreeParamJson {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// `default_left` entries: `0`/`1` in XGBoost 1.6 and later, `true`/`false` before.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
        }
        deserializer.deserialize_any(FlagVisitor)
    }
}

/// The top level of a saved model: `{"learner": {...}, "version": [...]}`.
#[derive(Deserialize)]
struct DocumentJson {
    learner: LearnerJson,
}

/// serde_json's message without the ` at line L column C` it appends, since
/// [`Error::Parse`] states the position itself.
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

impl Booster {
    /// Parse an XGBoost model, JSON or UBJSON (told from the bytes). `display_path` names
    /// the file in messages.
    pub fn from_bytes(bytes: &[u8], display_path: &str) -> Result<Booster> {
        if crate::validation::ubjson::looks_like_ubjson(bytes) {
            let value = crate::validation::ubjson::parse(bytes).map_err(|m| Error::Parse {
                path: display_path.to_string(),
                format: "XGBoost UBJSON",
                line: 0,
                column: 0,
                message: m,
            })?;
            let doc: DocumentJson = serde_json::from_value(value).map_err(|e| Error::Parse {
                path: display_path.to_string(),
                format: "XGBoost UBJSON",
                line: 0,
                column: 0,
                message: json_message(&e),
            })?;
            return Booster::from_learner(doc.learner, display_path);
        }
        Booster::from_json_bytes(bytes, display_path)
    }

    /// Parse an XGBoost JSON model. `display_path` names the file in messages.
    pub fn from_json_bytes(bytes: &[u8], display_path: &str) -> Result<Booster> {
        let doc: DocumentJson = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            path: display_path.to_string(),
            format: "XGBoost JSON",
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        Booster::from_learner(doc.learner, display_path)
    }

    /// Build from the `learner` object, already parsed (by [`crate::validation::model`]).
    pub(crate) fn from_learner(learner: LearnerJson, display_path: &str) -> Result<Booster> {
        let unsupported =
            |message: String| Error::invalid(format!("XGBoost model `{display_path}`"), message);
        let refuse = |kind: String| {
            unsupported(format!(
                "{kind} cannot be evaluated natively; evaluate it with `validate::external_model` and xgboost itself"
            ))
        };
        let objective = learner.objective.name.clone();
        let transform = match objective.as_str() {
            "reg:squarederror"
            | "reg:linear"
            | "reg:squaredlogerror"
            | "reg:absoluteerror"
            | "reg:pseudohubererror"
            | "reg:quantileerror"
            | "binary:logitraw" => Transform::Identity,
            "reg:logistic" | "binary:logistic" => Transform::Sigmoid,
            "count:poisson" | "reg:gamma" | "reg:tweedie" => Transform::Exp,
            "binary:hinge" => Transform::Hinge,
            "multi:softprob" => Transform::Softprob,
            "multi:softmax" => Transform::Softmax,
            other => return Err(refuse(format!("objective `{other}`"))),
        };
        // A quantile model with several quantiles predicts one output per quantile.
        if let Some(alpha) = learner
            .objective
            .quantile_loss_param
            .as_ref()
            .and_then(|q| q.quantile_alpha.as_ref())
        {
            let text = alpha
                .as_str()
                .map_or_else(|| alpha.to_string(), str::to_string);
            if text.contains(',') {
                return Err(refuse(format!(
                    "a `reg:quantileerror` model with several quantiles ({text})"
                )));
            }
        }
        let _ = &learner.objective.reg_loss_param;
        let param = &learner.learner_model_param;
        let count = |name: &str, text: Option<&str>| -> Result<usize> {
            let text = text.unwrap_or("0");
            text.trim().parse::<usize>().map_err(|_| {
                unsupported(format!(
                    "`learner_model_param.{name}` is `{text}`, not a count"
                ))
            })
        };
        let num_class = count("num_class", param.num_class.as_deref())?;
        let num_target = count("num_target", param.num_target.as_deref())?;
        if num_target > 1 {
            return Err(refuse(format!(
                "a multi-target model ({num_target} targets)"
            )));
        }
        let multi = matches!(transform, Transform::Softprob | Transform::Softmax);
        let n_groups = if multi {
            if num_class < 2 {
                return Err(unsupported(format!(
                    "objective `{objective}` needs `num_class` of at least 2, but it is {num_class}"
                )));
            }
            num_class
        } else if num_class > 1 {
            return Err(unsupported(format!(
                "it has {num_class} classes but objective `{objective}` is not a multi-class one"
            )));
        } else {
            1
        };
        let num_feature = count("num_feature", Some(&param.num_feature))?;
        let base_scores = parse_base_score(&param.base_score).ok_or_else(|| {
            unsupported(format!(
                "`base_score` is `{}`; expected a number such as `5E-1` or a list such as `[5E-1]`",
                param.base_score
            ))
        })?;
        let base_scores = match base_scores.len() {
            1 => vec![base_scores[0]; n_groups],
            n if n == n_groups => base_scores,
            n => {
                return Err(unsupported(format!(
                    "`base_score` has {n} values but the model has {n_groups} outputs"
                )))
            }
        };
        let base_margin = base_scores
            .iter()
            .map(|&b| match transform {
                Transform::Sigmoid => {
                    if !(b > 0.0 && b < 1.0) {
                        return Err(unsupported(format!(
                            "`base_score` is {b}, but a logistic objective needs it strictly between 0 and 1"
                        )));
                    }
                    Ok((b / (1.0 - b)).ln() as f32)
                }
                // `binary:logitraw` takes `base_score` as a margin, untransformed: xgboost
                // 3.2 does so (checked by the `binary_logitraw` fixture).
                Transform::Exp => {
                    if b.is_nan() || b <= 0.0 {
                        return Err(unsupported(format!(
                            "`base_score` is {b}, but objective `{objective}` needs it positive"
                        )));
                    }
                    Ok(b.ln() as f32)
                }
                _ => Ok(b as f32),
            })
            .collect::<Result<Vec<f32>>>()?;

        let feature_names = if learner.feature_names.is_empty() {
            None
        } else if learner.feature_names.len() != num_feature {
            return Err(unsupported(format!(
                "it names {} features but `num_feature` is {num_feature}",
                learner.feature_names.len()
            )));
        } else {
            Some(learner.feature_names)
        };
        let best_iteration = match learner.attributes.get("best_iteration") {
            None => None,
            Some(v) => {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                Some(text.trim().parse::<usize>().map_err(|_| {
                    unsupported(format!(
                        "`attributes.best_iteration` is `{text}`, not a round number"
                    ))
                })?)
            }
        };

        let mut booster = Booster {
            nodes: Vec::new(),
            trees: Vec::new(),
            cat_sets: Vec::new(),
            cat_bits: Vec::new(),
            has_categorical: false,
            linear: None,
            base_margin,
            n_groups,
            transform,
            objective,
            booster: "gbtree",
            num_feature,
            feature_names,
            trees_in_file: 0,
            best_iteration: None,
            source: display_path.to_string(),
        };

        let gb = learner.gradient_booster;
        let (tree_booster, weights) = match gb.name.as_str() {
            "gbtree" => (gb, None),
            "dart" => {
                let Some(inner) = gb.gbtree else {
                    return Err(unsupported(
                        "the `dart` booster has no `gbtree` model inside it".into(),
                    ));
                };
                booster.booster = "dart";
                (*inner, Some(gb.weight_drop))
            }
            "gblinear" => {
                booster.booster = "gblinear";
                let model = gb
                    .model
                    .ok_or_else(|| unsupported("the `gblinear` booster has no `model`".into()))?;
                let want = (num_feature + 1) * n_groups;
                if model.weights.len() != want {
                    return Err(unsupported(format!(
                        "the `gblinear` model has {} weights, but {num_feature} features and {n_groups} outputs need {want}",
                        model.weights.len()
                    )));
                }
                // gblinear ignores the iteration range, so `best_iteration` changes nothing.
                booster.linear = Some(model.weights);
                return Ok(booster);
            }
            other => return Err(refuse(format!("booster `{other}`"))),
        };
        let model = tree_booster.model.unwrap_or_default();
        let n_trees = model.trees.len();
        booster.trees_in_file = n_trees;
        if model.tree_info.len() != n_trees {
            return Err(unsupported(format!(
                "`tree_info` has {} entries for {n_trees} trees",
                model.tree_info.len()
            )));
        }
        if let Some(w) = &weights {
            if w.len() != n_trees {
                return Err(unsupported(format!(
                    "`weight_drop` has {} entries for {n_trees} trees",
                    w.len()
                )));
            }
        }
        // Which trees to use: rounds `0..=best_iteration`, as XGBRegressor.predict does.
        let mut tree_end = n_trees;
        if let Some(best) = best_iteration {
            let end = if model.iteration_indptr.len() > 1 {
                model
                    .iteration_indptr
                    .get(best + 1)
                    .map(|&e| usize::try_from(e).unwrap_or(usize::MAX))
            } else {
                let parallel = model
                    .gbtree_model_param
                    .as_ref()
                    .and_then(|p| p.num_parallel_tree.as_deref())
                    .map_or(Ok(1), |t| count("num_parallel_tree", Some(t)))?
                    .max(1);
                (best + 1)
                    .checked_mul(parallel)
                    .and_then(|n| n.checked_mul(n_groups))
            };
            match end {
                Some(end) if end <= n_trees => {
                    tree_end = end;
                    booster.best_iteration = Some(best);
                }
                _ => {
                    return Err(unsupported(format!(
                        "`best_iteration` is {best}, past the {n_trees} trees the file holds"
                    )))
                }
            }
        }
        for (t, tree) in model.trees[..tree_end].iter().enumerate() {
            let group = model.tree_info[t];
            if group < 0 || group as usize >= n_groups {
                return Err(unsupported(format!(
                    "tree {t} belongs to output group {group}, but the model has {n_groups}"
                )));
            }
            let weight = weights.as_ref().map_or(1.0, |w| w[t]);
            let mut flat = booster
                .flatten_tree(tree, num_feature)
                .map_err(|m| unsupported(format!("tree {t}: {m}")))?;
            flat.group = group as u32;
            flat.weight = weight;
            booster.trees.push(flat);
        }
        Ok(booster)
    }

    /// The feature names stored in the model (`learner.feature_names`), if any.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    /// How many features the model was trained on.
    pub fn num_features(&self) -> usize {
        self.num_feature
    }

    /// How many trees are summed (after the `best_iteration` cut).
    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The training objective, e.g. `reg:squarederror`.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// `gbtree`, `dart` or `gblinear`.
    pub fn booster(&self) -> &'static str {
        self.booster
    }

    /// The number of classes of a multi-class model, else `None`.
    pub fn num_classes(&self) -> Option<usize> {
        (self.n_groups > 1).then_some(self.n_groups)
    }

    /// Whether predictions are probabilities or classes (log loss and accuracy apply).
    pub fn is_classifier(&self) -> bool {
        matches!(
            self.transform,
            Transform::Sigmoid | Transform::Hinge | Transform::Softprob | Transform::Softmax
        ) && self.objective != "reg:logistic"
    }

    /// The round early stopping chose, when the model records one (and it is honoured).
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// What a person reading the run log should know about how the model is evaluated:
    /// the `best_iteration` cut, when there is one.
    pub fn note(&self) -> Option<String> {
        self.best_iteration.map(|best| {
            format!(
                "best_iteration {best}: {} of {} trees used (rounds 0..={best}), as XGBRegressor.predict does",
                self.trees.len(),
                self.trees_in_file
            )
        })
    }

    /// The data's column for each model feature: by name when the model stores names,
    /// else the data's columns in order (then their count must match).
    fn columns(&self, data: &Dataset) -> Result<Vec<usize>> {
        match &self.feature_names {
            Some(names) => data.columns_for(names, &self.source),
            None => {
                if data.n_features() != self.num_feature {
                    return Err(Error::invalid(
                        format!("model `{}`", self.source),
                        format!(
                            "it was trained on {} features and stores no feature names, but data `{}` has {} feature columns; give data with exactly the model's features in training order",
                            self.num_feature,
                            data.source,
                            data.n_features()
                        ),
                    ));
                }
                Ok((0..self.num_feature).collect())
            }
        }
    }

    /// Predict every row of `data`: see [`Booster::predict_output`].
    pub fn predict(&self, data: &Dataset) -> Result<Array1<f64>> {
        Ok(self.predict_output(data)?.values)
    }

    /// Predict every row of `data`. With feature names in the model, columns are picked by
    /// name (the data may hold more, in any order); without, the data must have exactly the
    /// model's number of features, taken in order. A feature value that is infinite or
    /// beyond `f32` is refused, naming its row, as xgboost refuses it.
    pub fn predict_output(&self, data: &Dataset) -> Result<Output> {
        let columns = self.columns(data)?;
        self.score(data.x.view(), &columns).map_err(|(row, column)| {
            let feature = &data.features[columns[column]];
            let value = data.x[[row, columns[column]]];
            Error::invalid(
                format!("data `{}`", data.source),
                format!(
                    "{} has {value} in feature `{feature}`, which xgboost refuses (it holds features as 32-bit floats, and infinity is not a missing value); fix or drop that row",
                    data.describe_row(row)
                ),
            )
        })
    }

    /// Predict rows of `x`, where model feature `f` is column `columns[f]`: the unchecked
    /// core of [`Booster::predict`] for callers that matched columns themselves. A value
    /// out of `f32` range gives `Err(row)`.
    ///
    /// # Panics
    /// If `columns` does not hold exactly one entry per model feature, or names a column
    /// that `x` does not have.
    pub fn predict_columns(
        &self,
        x: ArrayView2<f64>,
        columns: &[usize],
    ) -> Result<Array1<f64>, usize> {
        Ok(self.score(x, columns).map_err(|(row, _)| row)?.values)
    }

    /// Score every row, on several threads, each writing its own rows of the output; or
    /// the first `(row, model feature)` whose value xgboost would refuse. Margins live only
    /// in a block-sized buffer per thread, so the memory taken is the output's.
    fn score(&self, x: ArrayView2<f64>, columns: &[usize]) -> Result<Output, (usize, usize)> {
        assert_eq!(
            columns.len(),
            self.num_feature,
            "one column per model feature"
        );
        let n = x.nrows();
        let g = self.n_groups;
        let multi = g > 1;
        let mut values = vec![0.0f64; n];
        let mut probs = vec![0.0f64; if multi { n * g } else { 0 }];
        let threads = thread::available_parallelism().map_or(1, |t| t.get());
        let threads = (n / MIN_ROWS_PER_THREAD).clamp(1, threads);
        if threads == 1 {
            self.score_range(x, columns, 0, &mut values, &mut probs)?;
        } else {
            let per = n.div_ceil(threads);
            let prob_chunk = if multi { per * g } else { 0 };
            let results: Vec<_> = thread::scope(|scope| {
                let mut prob_parts: Vec<&mut [f64]> = if multi {
                    probs.chunks_mut(prob_chunk).collect()
                } else {
                    Vec::new()
                };
                let handles: Vec<_> = values
                    .chunks_mut(per)
                    .enumerate()
                    .map(|(i, part)| {
                        let probs = if multi {
                            std::mem::take(&mut prob_parts[i])
                        } else {
                            &mut []
                        };
                        scope.spawn(move || self.score_range(x, columns, i * per, part, probs))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Err((0, 0))))
                    .collect()
            });
            // The first bad row in file order, whatever the thread timing.
            if let Some(bad) = results.into_iter().find_map(Result::err) {
                return Err(bad);
            }
        }
        Ok(Output {
            values: Array1::from_vec(values),
            probabilities: multi.then(|| {
                Array2::from_shape_vec((n, g), probs).unwrap_or_else(|_| Array2::zeros((n, g)))
            }),
        })
    }

    /// Turn one block's margins (`rows × groups`) into predictions, as XGBoost's output
    /// transform does, in f32.
    fn finish_block(&self, margins: &[f32], values: &mut [f64], probs: &mut [f64]) {
        let g = self.n_groups;
        match self.transform {
            Transform::Softprob | Transform::Softmax => {
                for (r, row) in margins.chunks_exact(g).enumerate() {
                    // XGBoost's softmax, in f32: shift by the largest margin, exponentiate,
                    // normalise. The class is the first largest margin.
                    let (mut best, mut max) = (0, row[0]);
                    for (k, &m) in row.iter().enumerate() {
                        if m > max {
                            (best, max) = (k, m);
                        }
                    }
                    let mut sum = 0.0f32;
                    for &m in row {
                        sum += (m - max).exp();
                    }
                    for (k, &m) in row.iter().enumerate() {
                        probs[r * g + k] = f64::from((m - max).exp() / sum);
                    }
                    values[r] = best as f64;
                }
            }
            t => {
                for (slot, &m) in values.iter_mut().zip(margins) {
                    *slot = f64::from(match t {
                        Transform::Sigmoid => 1.0 / (1.0 + (-m).exp()),
                        Transform::Exp => m.exp(),
                        Transform::Hinge => {
                            if m > 0.0 {
                                1.0
                            } else {
                                0.0
                            }
                        }
                        _ => m,
                    });
                }
            }
        }
    }

    fn score_range(
        &self,
        x: ArrayView2<f64>,
        columns: &[usize],
        first_row: usize,
        out: &mut [f64],
        probs: &mut [f64],
    ) -> Result<(), (usize, usize)> {
        let g = self.n_groups;
        // One slot at least, so that a leaf's feature index 0 is always in bounds.
        let width = self.num_feature.max(1);
        let mut values = vec![0.0f32; BLOCK_ROWS * width];
        let mut margins = vec![0.0f32; BLOCK_ROWS * g];
        debug_assert_eq!(BLOCK_ROWS % LANES, 0);
        for (b, block) in out.chunks_mut(BLOCK_ROWS).enumerate() {
            let rows = block.len();
            let block_start = first_row + b * BLOCK_ROWS;
            convert_rows(x, columns, block_start, rows, width, &mut values)?;
            // The margin starts at base_score and takes the trees in order, in f32, as in
            // XGBoost, so that sums round the same way.
            for r in 0..rows {
                margins[r * g..(r + 1) * g].copy_from_slice(&self.base_margin);
            }
            if let Some(weights) = &self.linear {
                self.linear_block(weights, &values, rows, &mut margins);
            } else {
                let lane_groups = rows.div_ceil(LANES);
                for tree in &self.trees {
                    let group = tree.group as usize;
                    for lane_group in 0..lane_groups {
                        let rows_in =
                            &values[lane_group * LANES * width..(lane_group + 1) * LANES * width];
                        let leaves = if self.has_categorical {
                            self.walk_lanes::<true>(*tree, rows_in, width)
                        } else {
                            self.walk_lanes::<false>(*tree, rows_in, width)
                        };
                        // Lanes past the block's last row walk stale values into slots
                        // that are never read (the buffer holds whole lane groups).
                        let first = lane_group * LANES;
                        for (k, leaf) in leaves.into_iter().enumerate() {
                            // Weight 1 (every tree but dart's) multiplies exactly.
                            margins[(first + k) * g + group] +=
                                self.nodes[leaf as usize].value * tree.weight;
                        }
                    }
                }
            }
            let p = if probs.is_empty() {
                &mut [][..]
            } else {
                &mut probs[b * BLOCK_ROWS * g..(b * BLOCK_ROWS + rows) * g]
            };
            self.finish_block(&margins[..rows * g], block, p);
        }
        Ok(())
    }

    /// `gblinear`: bias plus base, then each present (non-NaN) feature times its weight,
    /// summed in feature order in f32, as xgboost's `GBLinear::Pred` does. `margins`
    /// already holds the base.
    fn linear_block(&self, weights: &[f32], values: &[f32], rows: usize, margins: &mut [f32]) {
        let g = self.n_groups;
        let nf = self.num_feature;
        let width = nf.max(1);
        for r in 0..rows {
            let row = &values[r * width..r * width + nf];
            for group in 0..g {
                let mut sum = weights[nf * g + group] + margins[r * g + group];
                for (f, &v) in row.iter().enumerate() {
                    if !v.is_nan() {
                        sum += v * weights[f * g + group];
                    }
                }
                margins[r * g + group] = sum;
            }
        }
    }

    /// Walk `tree` for `LANES` rows at once (`rows` holds them, `width` values each) and
    /// return the leaf each reaches. Every walk takes exactly `depth` steps, leaves looping
    /// to themselves, and the side is picked by a select, not a branch: nothing depends on
    /// the data's control flow, so nothing is mispredicted. Scoring 1M rows with 100 trees
    /// of depth 6 took 3.2 s with a walk that stops at the leaf, about 0.3 s like this.
    /// Models with categorical splits take the `CAT` variant, which tests a category set
    /// where a node says so.
    #[inline]
    fn walk_lanes<const CAT: bool>(&self, tree: Tree, rows: &[f32], width: usize) -> [u32; LANES] {
        let mut at = [tree.root; LANES];
        for _ in 0..tree.depth {
            for (lane, i) in at.iter_mut().enumerate() {
                let node = self.nodes[*i as usize];
                let v = rows[lane * width + (node.feature & FEATURE_MASK) as usize];
                let missing_left = v.is_nan() & (node.feature & DEFAULT_LEFT != 0);
                let left = if CAT && node.feature & CATEGORICAL != 0 {
                    // Listed categories go right; any other (and out-of-range ones) left.
                    missing_left || (!v.is_nan() && !self.in_category_set(node.value, v))
                } else {
                    // NaN compares false, so it goes left only when that is its default side.
                    (v < node.value) | missing_left
                };
                *i = if left { node.left } else { node.right };
            }
        }
        at
    }

    fn in_category_set(&self, set: f32, v: f32) -> bool {
        if !(0.0..MAX_CATEGORY).contains(&v) {
            return false;
        }
        let category = v as u32;
        let (start, words) = self.cat_sets[set.to_bits() as usize];
        let word = category / 32;
        word < words && self.cat_bits[(start + word) as usize] & (1 << (category % 32)) != 0
    }

    /// Check one tree and append its nodes to `self.nodes`, with child indices made
    /// absolute, and return where its root is and how deep it goes. The check walks the
    /// tree from its root, so a malformed file (a child out of range, a node reached twice)
    /// is refused here instead of looping or panicking at prediction time.
    fn flatten_tree(&mut self, tree: &TreeJson, num_feature: usize) -> Result<Tree, String> {
        let n = tree.left_children.len();
        if n == 0 {
            return Err("it has no nodes".into());
        }
        let lengths = [
            ("right_children", tree.right_children.len()),
            ("split_indices", tree.split_indices.len()),
            ("split_conditions", tree.split_conditions.len()),
            ("default_left", tree.default_left.len()),
        ];
        if let Some((name, len)) = lengths.iter().find(|(_, len)| *len != n) {
            return Err(format!(
                "`{name}` has {len} entries but `left_children` has {n}"
            ));
        }
        if !tree.split_type.is_empty() && tree.split_type.len() != n {
            return Err(format!(
                "`split_type` has {} entries but `left_children` has {n}",
                tree.split_type.len()
            ));
        }
        if let Some(p) = &tree.tree_param {
            if let Some(size) = &p.size_leaf_vector {
                if size.trim().parse::<usize>().map_or(true, |s| s > 1) {
                    return Err(format!("its leaves are vectors (size_leaf_vector {size}), which cannot be evaluated natively; use `validate::external_model`"));
                }
            }
        }
        // Category sets of the categorical nodes, as bit sets.
        let mut set_of_node = HashMap::new();
        let cats = [
            tree.categories_nodes.len(),
            tree.categories_segments.len(),
            tree.categories_sizes.len(),
        ];
        if cats[0] != cats[1] || cats[0] != cats[2] {
            return Err(format!(
                "`categories_nodes`, `categories_segments` and `categories_sizes` have {}, {} and {} entries; they must match",
                cats[0], cats[1], cats[2]
            ));
        }
        for k in 0..cats[0] {
            let node = tree.categories_nodes[k];
            let (seg, size) = (tree.categories_segments[k], tree.categories_sizes[k]);
            let range = usize::try_from(seg)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(s, z)| Some(s..s.checked_add(z)?))
                .filter(|r| r.end <= tree.categories.len())
                .ok_or_else(|| {
                    format!("the categories of node {node} (segment {seg}, size {size}) lie outside `categories`")
                })?;
            let mut words: Vec<u32> = Vec::new();
            for &c in &tree.categories[range] {
                if !(0..i64::from(MAX_CATEGORY as u32)).contains(&c) {
                    return Err(format!("node {node} lists category {c}, outside 0..2^24"));
                }
                let c = c as usize;
                if words.len() <= c / 32 {
                    words.resize(c / 32 + 1, 0);
                }
                words[c / 32] |= 1 << (c % 32);
            }
            let start = u32::try_from(self.cat_bits.len()).map_err(|_| "too many categories")?;
            self.cat_bits.extend_from_slice(&words);
            set_of_node.insert(node, self.cat_sets.len() as u32);
            self.cat_sets.push((start, words.len() as u32));
        }
        let offset = self.nodes.len();
        let base = u32::try_from(offset + n)
            .ok()
            .filter(|&end| end < CATEGORICAL)
            .map(|_| offset as u32)
            .ok_or_else(|| "the model has too many nodes".to_string())?;
        let mut seen = vec![false; n];
        let mut depth = 0;
        let mut stack = vec![(0usize, 0u32)];
        while let Some((i, d)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice, so it is not a tree"));
            }
            let (l, r) = (tree.left_children[i], tree.right_children[i]);
            if l == -1 {
                depth = depth.max(d);
                continue;
            }
            for child in [l, r] {
                if child < 0 || child as usize >= n {
                    return Err(format!(
                        "node {i} has child {child}, outside the tree's {n} nodes"
                    ));
                }
                stack.push((child as usize, d + 1));
            }
            let f = tree.split_indices[i];
            if f < 0 || f as usize >= num_feature {
                return Err(format!(
                    "node {i} splits on feature {f}, but the model has {num_feature} features"
                ));
            }
            if tree.split_type.get(i).is_some_and(|&t| t != 0)
                && !set_of_node.contains_key(&(i as i64))
            {
                return Err(format!(
                    "node {i} is a categorical split without categories"
                ));
            }
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let at = base + i as u32;
            if tree.left_children[i] == -1 || !seen[i] {
                // A leaf (or a node no path reaches): both sides lead back to it.
                nodes.push(Node {
                    value: tree.split_conditions[i],
                    feature: 0,
                    left: at,
                    right: at,
                });
                continue;
            }
            let mut feature = tree.split_indices[i] as u32;
            if tree.default_left[i].0 {
                feature |= DEFAULT_LEFT;
            }
            let mut value = tree.split_conditions[i];
            if tree.split_type.get(i).is_some_and(|&t| t != 0) {
                feature |= CATEGORICAL;
                value = f32::from_bits(set_of_node[&(i as i64)]);
                self.has_categorical = true;
            }
            nodes.push(Node {
                value,
                feature,
                left: base + tree.left_children[i] as u32,
                right: base + tree.right_children[i] as u32,
            });
        }
        self.nodes.extend(nodes);
        Ok(Tree {
            root: base,
            depth,
            group: 0,
            weight: 1.0,
        })
    }
}

/// Convert `rows` rows from `start` to f32, as XGBoost holds them, into `values` (`width`
/// per row). A value beyond `f32` (infinity included) is xgboost's error, returned as
/// `(row, model feature)`; NaN is a missing value.
#[inline]
fn convert_rows(
    x: ArrayView2<f64>,
    columns: &[usize],
    start: usize,
    rows: usize,
    width: usize,
    values: &mut [f32],
) -> Result<(), (usize, usize)> {
    let limit = f64::from(f32::MAX);
    for r in 0..rows {
        let row = x.row(start + r);
        let mut bad = false;
        for (v, &c) in values[r * width..].iter_mut().zip(columns) {
            let value = row[c];
            bad |= value.abs() > limit;
            *v = value as f32;
        }
        if bad {
            let f = columns
                .iter()
                .position(|&c| row[c].abs() > limit)
                .unwrap_or(0);
            return Err((start + r, f));
        }
    }
    Ok(())
}

/// `base_score` as XGBoost writes it: `"5E-1"`, or since 3.0 a bracketed list `"[5E-1]"`
/// (one value per output).
fn parse_base_score(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    let values = inner
        .split(',')
        .map(|v| v.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<Vec<f64>>>()?;
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::data::load_csv;
    use std::path::PathBuf;

    fn fixture(case: &str, file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/xgboost")
            .join(case)
            .join(file)
    }

    #[test]
    fn columns_are_taken_by_name() {
        // Reversed column order and an extra column: predictions must not change.
        let data = load_csv(&fixture("regression", "data.csv"), "data.csv", "y").unwrap();
        let mut text = String::from("extra,f4,f3,f2,f1,f0,y\n");
        for (row, y) in data.x.rows().into_iter().zip(&data.y) {
            let cell = |v: f64| {
                if v.is_nan() {
                    String::new()
                } else {
                    format!("{v:?}")
                }
            };
            let cells: Vec<String> = row.iter().rev().map(|&v| cell(v)).collect();
            text.push_str(&format!("7,{},{y:?}\n", cells.join(",")));
        }
        let shuffled =
            crate::validation::data::parse_csv(text.as_bytes(), "shuffled.csv", "y").unwrap();
        let booster = Booster::from_json_bytes(
            &std::fs::read(fixture("regression", "model.json")).unwrap(),
            "m.json",
        )
        .unwrap();
        assert_eq!(
            booster.predict(&shuffled).unwrap(),
            booster.predict(&data).unwrap()
        );
    }

    #[test]
    fn missing_feature_is_named() {
        let booster = Booster::from_json_bytes(
            &std::fs::read(fixture("regression", "model.json")).unwrap(),
            "m.json",
        )
        .unwrap();
        let data =
            crate::validation::data::parse_csv(b"f0,f1,f2,y\n1,2,3,4\n", "d.csv", "y").unwrap();
        let err = booster.predict(&data).unwrap_err().to_string();
        assert!(
            err.contains("`f3`, `f4`") && err.contains("m.json") && err.contains("d.csv"),
            "{err}"
        );
    }

    /// A hand-written model: one stump on feature 0 at 0.5, leaves -1 / +1, NaN goes right.
    fn stump(objective: &str, base_score: &str, extra: &str) -> String {
        format!(
            r#"{{"learner": {{"feature_names": [], "gradient_booster": {{"name": "gbtree", "model": {{
              "tree_info": [0], "trees": [{{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
              "split_indices": [0, 0, 0], "split_conditions": [0.5, -1.0, 1.0], "default_left": [false, false, false]
              {extra}}}]}}}},
              "learner_model_param": {{"base_score": "{base_score}", "num_class": "0", "num_feature": "2"}},
              "objective": {{"name": "{objective}"}}}}, "version": [1, 7, 0]}}"#
        )
    }

    fn data(rows: &[[f64; 2]]) -> Dataset {
        let mut text = String::from("a,b,y\n");
        for r in rows {
            let cell = |v: f64| {
                if v.is_nan() {
                    String::new()
                } else {
                    v.to_string()
                }
            };
            text.push_str(&format!("{},{},0\n", cell(r[0]), cell(r[1])));
        }
        crate::validation::data::parse_csv(text.as_bytes(), "d.csv", "y").unwrap()
    }

    #[test]
    fn hand_written_stump_with_bool_default_left() {
        let b =
            Booster::from_json_bytes(stump("reg:squarederror", "5E-1", "").as_bytes(), "s.json")
                .unwrap();
        let p = b
            .predict(&data(&[[0.0, 9.0], [0.5, 9.0], [f64::NAN, 9.0]]))
            .unwrap();
        // 0 < 0.5 → left (-1); 0.5 is not < 0.5 → right (+1); NaN → default (right).
        assert_eq!(p.to_vec(), vec![-0.5, 1.5, 1.5]);
    }

    #[test]
    fn logistic_base_score_goes_through_the_logit() {
        let b =
            Booster::from_json_bytes(stump("reg:logistic", "[2.5E-1]", "").as_bytes(), "s.json")
                .unwrap();
        let p = b.predict(&data(&[[0.0, 0.0]])).unwrap()[0];
        let margin = (0.25f64 / 0.75).ln() - 1.0;
        assert!((p - 1.0 / (1.0 + (-margin).exp())).abs() < 1e-7, "{p}");
    }

    #[test]
    fn without_names_the_column_count_must_match() {
        let b = Booster::from_json_bytes(stump("reg:squarederror", "0", "").as_bytes(), "s.json")
            .unwrap();
        let three =
            crate::validation::data::parse_csv(b"a,b,c,y\n1,2,3,4\n", "d.csv", "y").unwrap();
        let err = b.predict(&three).unwrap_err().to_string();
        assert!(
            err.contains("trained on 2 features") && err.contains("3 feature columns"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_models_are_refused_by_name() {
        let err = Booster::from_json_bytes(stump("rank:pairwise", "1", "").as_bytes(), "p.json")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "XGBoost model `p.json`: objective `rank:pairwise` cannot be evaluated natively; evaluate it with `validate::external_model` and xgboost itself"
        );
        assert!(!err.contains("fix the file"));
        let cat = stump("reg:squarederror", "0", r#", "split_type": [1, 0, 0]"#);
        let err = Booster::from_json_bytes(cat.as_bytes(), "c.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("categorical split without categories"),
            "{err}"
        );
        let dart =
            stump("reg:squarederror", "0", "").replace(r#""name": "gbtree""#, r#""name": "dart""#);
        let err = Booster::from_json_bytes(dart.as_bytes(), "d.json").unwrap_err();
        assert!(
            err.to_string().contains("no `gbtree` model inside it"),
            "{err}"
        );
        let other = stump("reg:squarederror", "0", "")
            .replace(r#""name": "gbtree""#, r#""name": "gbmagic""#);
        let err = Booster::from_json_bytes(other.as_bytes(), "o.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("booster `gbmagic` cannot be evaluated natively"),
            "{err}"
        );
        let multi = stump("reg:squarederror", "[1,2]", "");
        let err = Booster::from_json_bytes(multi.as_bytes(), "m.json").unwrap_err();
        assert!(err.to_string().contains("base_score"), "{err}");
    }

    #[test]
    fn malformed_trees_are_refused() {
        let cyclic = stump("reg:squarederror", "0", "").replace("[1, -1, -1]", "[0, -1, -1]");
        let err = Booster::from_json_bytes(cyclic.as_bytes(), "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tree 0: node 0 is reached twice"), "{err}");
        let err = Booster::from_json_bytes(b"{\"learner\": }", "x.json")
            .unwrap_err()
            .to_string();
        // The position once, from the error itself, not repeated by serde_json's text.
        assert_eq!(err.matches("line 1").count(), 1, "{err}");
        let out_of_range = stump("reg:squarederror", "0", "").replace("[2, -1, -1]", "[7, -1, -1]");
        let err = Booster::from_json_bytes(out_of_range.as_bytes(), "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("child 7"), "{err}");
        let err = Booster::from_json_bytes(b"{\"learner\": 3}", "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x.json` is not valid XGBoost JSON"), "{err}");
    }

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score("5E-1"), Some(vec![0.5]));
        assert_eq!(
            parse_base_score("[-2.9433351E-2]"),
            Some(vec![-2.9433351e-2])
        );
        assert_eq!(parse_base_score("[1,2]"), Some(vec![1.0, 2.0]));
        assert_eq!(parse_base_score("abc"), None);
        assert_eq!(parse_base_score("[]"), None);
    }

    #[test]
    fn infinite_and_out_of_range_inputs_are_refused_naming_the_row() {
        let b = Booster::from_json_bytes(stump("reg:squarederror", "0", "").as_bytes(), "s.json")
            .unwrap();
        for bad in [f64::INFINITY, -1e39] {
            let err = b
                .predict(&data(&[[0.0, 1.0], [0.0, 2.0], [0.0, bad]]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("row 3 has") && err.contains("feature `b`"),
                "{err}"
            );
        }
        // NaN is a missing value, and f32::MAX itself is in range.
        assert!(b.predict(&data(&[[f64::NAN, f64::from(f32::MAX)]])).is_ok());
    }

    #[test]
    fn unlisted_and_out_of_range_categories_go_left() {
        let cat = stump(
            "reg:squarederror",
            "0",
            r#", "split_type": [1, 0, 0], "categories": [2, 40], "categories_nodes": [0], "categories_segments": [0], "categories_sizes": [2]"#,
        );
        let b = Booster::from_json_bytes(cat.as_bytes(), "c.json").unwrap();
        let p = b
            .predict(&data(&[
                [2.0, 0.0],
                [40.0, 0.0],
                [3.0, 0.0],
                [-1.0, 0.0],
                [1e9, 0.0],
                [2.7, 0.0],
                [f64::NAN, 0.0],
            ]))
            .unwrap();
        // Listed (2, 40, and 2.7 truncated to 2) go right (+1); others left (-1); NaN right
        // (its default side here).
        assert_eq!(p.to_vec(), vec![1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0]);
    }

    #[test]
    fn best_iteration_past_the_trees_is_refused() {
        let m = stump("reg:squarederror", "0", "").replace(
            r#""feature_names": []"#,
            r#""feature_names": [], "attributes": {"best_iteration": "5"}"#,
        );
        let err = Booster::from_json_bytes(m.as_bytes(), "b.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`best_iteration` is 5, past the 1 trees"),
            "{err}"
        );
    }
}
