//! Models that validation can evaluate natively: the linear model the SL pipeline writes
//! (`{"type": "linear", "weights": [...], "bias": b, "features": [...]}`), XGBoost boosters
//! (`Booster.save_model`, JSON or UBJSON) and LightGBM text models
//! (`booster.save_model("model.txt")`).
//!
//! The format is told from the bytes themselves, not from the file name, because registries
//! name artifacts freely (`sl_model_v3.json` may hold any of them). Before predicting, the
//! model's feature names are matched against the data's columns by name, so a model is
//! never silently fed columns in the wrong order; a model without names gets the data's
//! columns in order, and then their number must match exactly. Other formats go through
//! [`crate::effects::command`].

use ndarray::Array1;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::validation::data::Dataset;
use crate::validation::lightgbm;
use crate::validation::xgboost::{json_message, Booster, LearnerJson, Output};

/// Model files larger than this are refused before they are read: the largest XGBoost or
/// LightGBM model a team validates is tens of megabytes, and a parsed document takes several
/// times its size in memory.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// A model ready to predict.
#[derive(Debug, Clone)]
pub enum Model {
    /// `prediction = bias + Σ weights[i] * feature_i`.
    Linear {
        weights: Vec<f64>,
        bias: f64,
        /// The feature each weight applies to; without names, weight `i` applies to data
        /// column `i`.
        features: Option<Vec<String>>,
        /// The model file as the user named it, for messages.
        source: String,
    },
    /// A gradient-boosted tree ensemble (or linear booster) from XGBoost.
    XGBoost(Box<Booster>),
    /// A gradient-boosted tree ensemble from LightGBM.
    LightGbm(Box<lightgbm::Model>),
}

/// Everything a supported model document may hold at its top level; which fields are present
/// tells the format. Unknown fields are ignored.
#[derive(Deserialize)]
struct ModelDocument {
    #[serde(rename = "type")]
    kind: Option<String>,
    weights: Option<Vec<f64>>,
    bias: Option<f64>,
    features: Option<Vec<String>>,
    learner: Option<LearnerJson>,
}

impl Model {
    /// Read and parse a model file (at most [`MAX_MODEL_BYTES`]). See [`Model::from_bytes`].
    pub fn load(input: impl crate::validation::data::Input, display_path: &str) -> Result<Model> {
        let file = input.open(display_path)?;
        let bytes =
            crate::validation::data::read_bounded(file, display_path, MAX_MODEL_BYTES, "model")?;
        Model::from_bytes(&bytes, display_path)
    }

    /// Parse a model, telling the format from its bytes: a LightGBM text model starts with
    /// the line `tree`, a UBJSON document with `{` and a length marker, and a JSON object
    /// with `"type": "linear"` is a linear model, one with `learner` an XGBoost model.
    pub fn from_bytes(bytes: &[u8], display_path: &str) -> Result<Model> {
        if lightgbm::looks_like_lightgbm(bytes) {
            return lightgbm::Model::from_text(bytes, display_path)
                .map(|m| Model::LightGbm(Box::new(m)));
        }
        if crate::validation::ubjson::looks_like_ubjson(bytes) {
            return Booster::from_bytes(bytes, display_path).map(|b| Model::XGBoost(Box::new(b)));
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some() && first != Some(&b'{') && !bytes.starts_with(b"\xEF\xBB\xBF{") {
            return Err(Error::invalid(
                format!("model `{display_path}`"),
                "it is neither JSON, UBJSON nor a LightGBM text model (XGBoost's deprecated binary format, pickles and ONNX files are not read natively); re-save an XGBoost model with `save_model(\"model.json\")`, or use `validate::external_model`",
            ));
        }
        Model::from_json_bytes(bytes, display_path)
    }

    /// Parse a model from JSON, telling the format from its content: an object with
    /// `"type": "linear"` is a linear model, one with `learner` an XGBoost model.
    pub fn from_json_bytes(bytes: &[u8], display_path: &str) -> Result<Model> {
        let doc: ModelDocument = serde_json::from_slice(bytes).map_err(|e| Error::Parse {
            path: display_path.to_string(),
            format: "model JSON",
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let invalid = |message: String| Error::invalid(format!("model `{display_path}`"), message);
        if let Some(learner) = doc.learner {
            return Booster::from_learner(learner, display_path)
                .map(|b| Model::XGBoost(Box::new(b)));
        }
        match doc.kind.as_deref() {
            Some("linear") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "model type `{other}` cannot be evaluated natively (supported: `linear`, XGBoost JSON or UBJSON, LightGBM text); use `validate::external_model` for it"
                )))
            }
            None => {
                return Err(invalid(
                    "the file is neither a linear model (`{\"type\": \"linear\", ...}`) nor an XGBoost JSON model (with `learner`); use an external predictor for other formats".into(),
                ))
            }
        }
        let Some(weights) = doc.weights else {
            return Err(invalid(
                "the linear model has no `weights`; add the list of weights".into(),
            ));
        };
        let Some(bias) = doc.bias else {
            return Err(invalid(
                "the linear model has no `bias`; add it (0 for none)".into(),
            ));
        };
        if let Some(names) = &doc.features {
            if names.len() != weights.len() {
                return Err(invalid(format!(
                    "the linear model has {} weights but {} feature names; give one name per weight",
                    weights.len(),
                    names.len()
                )));
            }
            if let Some(dup) = names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n))
            {
                return Err(invalid(format!("feature `{}` is named twice", dup.1)));
            }
        }
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(invalid(format!(
                "weight {i} is {}; every weight must be a finite number",
                weights[i]
            )));
        }
        Ok(Model::Linear {
            weights,
            bias,
            features: doc.features,
            source: display_path.to_string(),
        })
    }

    /// The feature names the model expects, when it records them.
    pub fn feature_names(&self) -> Option<&[String]> {
        match self {
            Model::Linear { features, .. } => features.as_deref(),
            Model::XGBoost(b) => b.feature_names(),
            Model::LightGbm(m) => Some(m.feature_names()),
        }
    }

    /// A short name for the kind of model, for logs: `linear`, `xgboost` or `lightgbm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Linear { .. } => "linear",
            Model::XGBoost(_) => "xgboost",
            Model::LightGbm(_) => "lightgbm",
        }
    }

    /// Whether the model predicts class probabilities or classes, so that log loss and
    /// accuracy apply (binary and multi-class classifiers).
    pub fn is_classifier(&self) -> bool {
        match self {
            Model::Linear { .. } => false,
            Model::XGBoost(b) => b.is_classifier(),
            Model::LightGbm(m) => m.is_classifier(),
        }
    }

    /// The number of classes of a multi-class model, else `None`.
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Model::Linear { .. } => None,
            Model::XGBoost(b) => b.num_classes(),
            Model::LightGbm(m) => m.num_classes(),
        }
    }

    /// What the run log should say about how the model is evaluated (XGBoost's
    /// `best_iteration` cut), if anything.
    pub fn note(&self) -> Option<String> {
        match self {
            Model::XGBoost(b) => b.note(),
            _ => None,
        }
    }

    /// Predict, with class probabilities for multi-class models (`values` is then the most
    /// probable class).
    pub fn predict_output(&self, data: &Dataset) -> Result<Output> {
        match self {
            Model::XGBoost(b) => b.predict_output(data),
            Model::LightGbm(m) => m.predict_output(data),
            Model::Linear { .. } => Ok(Output {
                values: self.predict(data)?,
                probabilities: None,
            }),
        }
    }

    /// Predict one value per row of `data`, after checking that the data has the model's
    /// features (by name when the model names them, by count otherwise).
    pub fn predict(&self, data: &Dataset) -> Result<Array1<f64>> {
        match self {
            Model::XGBoost(b) => b.predict(data),
            Model::LightGbm(m) => m.predict(data),
            Model::Linear {
                weights,
                bias,
                features,
                source,
            } => {
                let columns = match features {
                    Some(names) => data.columns_for(names, source)?,
                    None => {
                        if data.n_features() != weights.len() {
                            return Err(Error::invalid(
                                format!("model `{source}`"),
                                format!(
                                    "it has {} weights and no feature names, but data `{}` has {} feature columns; give data with exactly the model's features in training order, or add `features` to the model",
                                    weights.len(),
                                    data.source,
                                    data.n_features()
                                ),
                            ));
                        }
                        (0..weights.len()).collect()
                    }
                };
                Ok(linear_predict(data, weights, *bias, &columns))
            }
        }
    }
}

fn linear_predict(data: &Dataset, weights: &[f64], bias: f64, columns: &[usize]) -> Array1<f64> {
    let x = &data.x;
    let in_order = columns.len() == x.ncols() && columns.iter().enumerate().all(|(i, &c)| i == c);
    if in_order {
        // ndarray's matrix-vector product: one pass over the rows.
        let w = ndarray::ArrayView1::from(weights);
        return x.dot(&w) + bias;
    }
    // Columns picked by name: still one pass over the rows, never one per column.
    x.rows()
        .into_iter()
        .map(|row| {
            bias + columns
                .iter()
                .zip(weights)
                .map(|(&c, w)| w * row[c])
                .sum::<f64>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::data::parse_csv;

    const LINEAR: &str = r#"{"type": "linear", "weights": [1.0, 2.0, -1.0], "bias": 0.5, "features": ["a", "b", "c"]}"#;

    #[test]
    fn linear_model_predicts_by_name() {
        let m = Model::from_json_bytes(LINEAR.as_bytes(), "m.json").unwrap();
        assert_eq!(m.kind(), "linear");
        let d = parse_csv(b"a,b,c,y\n1,2,3,0\n0,0,0,0\n", "d.csv", "y").unwrap();
        assert_eq!(
            m.predict(&d).unwrap().to_vec(),
            vec![0.5 + 1.0 + 4.0 - 3.0, 0.5]
        );
        // Same data, columns shuffled and one extra: same predictions.
        let shuffled =
            parse_csv(b"c,extra,y,a,b\n3,100,0,1,2\n0,100,0,0,0\n", "s.csv", "y").unwrap();
        assert_eq!(m.predict(&shuffled).unwrap(), m.predict(&d).unwrap());
    }

    #[test]
    fn missing_features_are_named_with_both_files() {
        let m = Model::from_json_bytes(LINEAR.as_bytes(), "models/m.json").unwrap();
        let d = parse_csv(b"a,y\n1,0\n", "data/d.csv", "y").unwrap();
        let err = m.predict(&d).unwrap_err().to_string();
        assert!(err.contains("`b`, `c`"), "{err}");
        assert!(
            err.contains("models/m.json") && err.contains("data/d.csv"),
            "{err}"
        );
    }

    #[test]
    fn unnamed_linear_model_needs_the_same_column_count() {
        let m = Model::from_json_bytes(
            br#"{"type": "linear", "weights": [1, 1], "bias": 0}"#,
            "m.json",
        )
        .unwrap();
        let ok = parse_csv(b"p,q,y\n1,2,0\n", "d.csv", "y").unwrap();
        assert_eq!(m.predict(&ok).unwrap().to_vec(), vec![3.0]);
        let wide = parse_csv(b"p,q,r,y\n1,2,3,0\n", "d.csv", "y").unwrap();
        let err = m.predict(&wide).unwrap_err().to_string();
        assert!(
            err.contains("2 weights") && err.contains("3 feature columns"),
            "{err}"
        );
    }

    #[test]
    fn format_is_detected_from_content() {
        let xgb = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/xgboost/regression/model.json"
        ))
        .unwrap();
        assert_eq!(
            Model::from_json_bytes(&xgb, "x.json").unwrap().kind(),
            "xgboost"
        );
        let err = Model::from_json_bytes(br#"{"type": "sklearn-pickle"}"#, "p.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("model type `sklearn-pickle`"), "{err}");
        let err = Model::from_json_bytes(br#"{"hello": 1}"#, "h.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither a linear model"), "{err}");
        let err = Model::from_json_bytes(b"{\"type\": \"linear\",", "t.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`t.json` is not valid model JSON"), "{err}");
    }

    #[test]
    fn malformed_linear_models_are_refused() {
        let cases: [(&[u8], &str); 3] = [
            (br#"{"type": "linear", "bias": 0}"#, "no `weights`"),
            (br#"{"type": "linear", "weights": [1]}"#, "no `bias`"),
            (
                br#"{"type": "linear", "weights": [1], "bias": 0, "features": ["a", "b"]}"#,
                "1 weights but 2 feature names",
            ),
        ];
        for (json, want) in cases {
            let err = Model::from_json_bytes(json, "m.json")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
