//! Regression metrics over a pair of vectors `(y_true, y_pred)`: MSE, RMSE, MAE, R² and the
//! largest absolute error; and for classifiers, log loss (over class probabilities) and
//! accuracy (over predicted classes), as scikit-learn computes them.
//!
//! A rollback decision hangs on these numbers, so they refuse input that would make them
//! meaningless instead of returning NaN: vectors of different lengths, empty vectors, and any
//! NaN or infinite value (a NaN MSE compares false against every threshold, so a check like
//! `mse > limit` would let a broken model through). The error names the first bad row,
//! counting from 1, so it can be found in the data file.

use ndarray::{ArrayView1, ArrayView2, Zip};

use crate::error::{Error, Result};

/// Mean squared error.
pub fn mse(y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<f64> {
    check("mse", y_true, y_pred)?;
    let sum = Zip::from(y_true)
        .and(y_pred)
        .fold(0.0, |acc, &t, &p| acc + (t - p) * (t - p));
    Ok(sum / y_true.len() as f64)
}

/// Root of the mean squared error, in the target's own unit.
pub fn rmse(y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<f64> {
    mse(y_true, y_pred).map(f64::sqrt)
}

/// Mean absolute error.
pub fn mae(y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<f64> {
    check("mae", y_true, y_pred)?;
    let sum = Zip::from(y_true)
        .and(y_pred)
        .fold(0.0, |acc, &t, &p| acc + (t - p).abs());
    Ok(sum / y_true.len() as f64)
}

/// The largest absolute error over all rows.
pub fn max_abs_error(y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<f64> {
    check("max_abs_error", y_true, y_pred)?;
    let max = Zip::from(y_true)
        .and(y_pred)
        .fold(0.0f64, |acc, &t, &p| acc.max((t - p).abs()));
    Ok(max)
}

/// Coefficient of determination, `1 - SS_res / SS_tot`: 1 for perfect predictions, 0 for
/// predicting the mean, negative for worse than that.
///
/// When `y_true` is constant, `SS_tot` is zero and the ratio is undefined. Following
/// scikit-learn's `r2_score` (with its default `force_finite=True`), the result is then 1.0
/// if the predictions are exact and 0.0 otherwise, so the value stays finite and
/// comparable to a threshold.
pub fn r2(y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<f64> {
    check("r2", y_true, y_pred)?;
    let mean = y_true.sum() / y_true.len() as f64;
    let (ss_res, ss_tot) = Zip::from(y_true)
        .and(y_pred)
        .fold((0.0, 0.0), |(res, tot), &t, &p| {
            (res + (t - p) * (t - p), tot + (t - mean) * (t - mean))
        });
    if ss_tot == 0.0 {
        return Ok(if ss_res == 0.0 { 1.0 } else { 0.0 });
    }
    Ok(1.0 - ss_res / ss_tot)
}

/// Log loss of class probabilities: the mean of `-ln p[row, y_true[row]]`, with each
/// probability clipped to `[eps, 1 - eps]` (`eps` the f64 machine epsilon, as
/// scikit-learn's `log_loss` does for float64). `probabilities` has one column per class;
/// the targets must be the class numbers `0..classes`.
pub fn log_loss(y_true: ArrayView1<f64>, probabilities: ArrayView2<f64>) -> Result<f64> {
    let what = || "metric `log_loss`".to_string();
    if y_true.len() != probabilities.nrows() {
        return Err(Error::invalid(
            what(),
            format!(
                "the targets have {} values but the probabilities have {} rows; predict one row per target",
                y_true.len(),
                probabilities.nrows()
            ),
        ));
    }
    if y_true.is_empty() {
        return Err(Error::invalid(
            what(),
            "there are no rows to score; validate on non-empty data",
        ));
    }
    let classes = probabilities.ncols();
    let eps = f64::EPSILON;
    let mut sum = 0.0;
    for (i, (&t, row)) in y_true.iter().zip(probabilities.rows()).enumerate() {
        let class = class_of(t, classes).ok_or_else(|| {
            Error::invalid(
                what(),
                format!("the target of row {} is {t}, not a class number from 0 to {}; give class numbers as the target", i + 1, classes.saturating_sub(1)),
            )
        })?;
        let p = row[class];
        if !p.is_finite() {
            return Err(Error::invalid(
                what(),
                format!("the probability for row {} is {p}", i + 1),
            ));
        }
        sum -= p.clamp(eps, 1.0 - eps).ln();
    }
    Ok(sum / y_true.len() as f64)
}

/// Log loss of a binary classifier whose predictions are the probability of class 1; the
/// targets must be 0 or 1.
pub fn log_loss_binary(y_true: ArrayView1<f64>, p_one: ArrayView1<f64>) -> Result<f64> {
    check("log_loss", y_true, p_one)?;
    let probabilities = ndarray::stack(ndarray::Axis(1), &[p_one.mapv(|p| 1.0 - p).view(), p_one])
        .map_err(|e| Error::invalid("metric `log_loss`", e.to_string()))?;
    log_loss(y_true, probabilities.view())
}

/// The share of rows whose predicted class equals the target.
pub fn accuracy(y_true: ArrayView1<f64>, predicted: ArrayView1<f64>) -> Result<f64> {
    check("accuracy", y_true, predicted)?;
    let hits = Zip::from(y_true)
        .and(predicted)
        .fold(0usize, |n, &t, &p| n + usize::from(t == p));
    Ok(hits as f64 / y_true.len() as f64)
}

fn class_of(t: f64, classes: usize) -> Option<usize> {
    (t >= 0.0 && t.fract() == 0.0 && (t as usize) < classes).then_some(t as usize)
}

fn check(metric: &str, y_true: ArrayView1<f64>, y_pred: ArrayView1<f64>) -> Result<()> {
    let what = || format!("metric `{metric}`");
    if y_true.len() != y_pred.len() {
        return Err(Error::invalid(
            what(),
            format!(
                "the targets have {} values but the predictions have {}; predict one value per row",
                y_true.len(),
                y_pred.len()
            ),
        ));
    }
    if y_true.is_empty() {
        return Err(Error::invalid(
            what(),
            "there are no rows to score; validate on non-empty data",
        ));
    }
    if let Some(i) = y_true.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            what(),
            format!(
                "the target of row {} is {}; fill or drop rows without a finite target before scoring",
                i + 1,
                y_true[i]
            ),
        ));
    }
    if let Some(i) = y_pred.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            what(),
            format!(
                "the prediction for row {} is {}; a missing feature value reaches a linear model as NaN, so check that row's features",
                i + 1,
                y_pred[i]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    const T: [f64; 4] = [3.0, -0.5, 2.0, 7.0];
    const P: [f64; 4] = [2.5, 0.0, 2.0, 8.0];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed_values() {
        let (t, p) = (ArrayView1::from(&T), ArrayView1::from(&P));
        // errors: 0.5, -0.5, 0, -1 → squares 0.25, 0.25, 0, 1 → sum 1.5
        close(mse(t, p).unwrap(), 0.375);
        close(rmse(t, p).unwrap(), 0.375f64.sqrt());
        close(mae(t, p).unwrap(), 0.5); // (0.5 + 0.5 + 0 + 1) / 4
        close(max_abs_error(t, p).unwrap(), 1.0);
        // mean 2.875; SS_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875
        close(r2(t, p).unwrap(), 1.0 - 1.5 / 29.1875);
    }

    #[test]
    fn perfect_predictions() {
        let t = array![1.0, 2.0, 3.0];
        assert_eq!(mse(t.view(), t.view()).unwrap(), 0.0);
        assert_eq!(r2(t.view(), t.view()).unwrap(), 1.0);
        assert_eq!(max_abs_error(t.view(), t.view()).unwrap(), 0.0);
    }

    #[test]
    fn r2_with_constant_target() {
        let t = array![2.0, 2.0, 2.0];
        assert_eq!(r2(t.view(), t.view()).unwrap(), 1.0);
        assert_eq!(r2(t.view(), array![2.0, 2.0, 3.0].view()).unwrap(), 0.0);
    }

    #[test]
    fn r2_can_be_negative() {
        let t = array![1.0, 2.0, 3.0];
        // SS_res = 4 + 0 + 4 = 8, SS_tot = 2 → 1 - 4 = -3
        close(r2(t.view(), array![3.0, 2.0, 1.0].view()).unwrap(), -3.0);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = mse(array![1.0, 2.0].view(), array![1.0].view())
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 values") && err.contains("have 1"), "{err}");
    }

    #[test]
    fn empty_input_is_an_error() {
        let e = ArrayView1::<f64>::from(&[]);
        let err = r2(e, e).unwrap_err().to_string();
        assert!(err.contains("no rows"), "{err}");
    }

    #[test]
    fn nan_names_the_row() {
        let err = mae(
            array![1.0, 2.0, 3.0].view(),
            array![1.0, f64::NAN, 3.0].view(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("row 2") && err.contains("NaN"), "{err}");
        let err = mse(array![1.0, f64::INFINITY].view(), array![1.0, 1.0].view())
            .unwrap_err()
            .to_string();
        assert!(err.contains("target of row 2"), "{err}");
    }

    #[test]
    fn classifier_metrics_match_scikit_learn() {
        // sklearn.metrics.log_loss([0, 2, 1], [[.7, .2, .1], [.1, .1, .8], [.3, .4, .3]])
        let t = array![0.0, 2.0, 1.0];
        let p = array![[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]];
        close(log_loss(t.view(), p.view()).unwrap(), 0.49870307570903244);
        // log_loss([1, 0], [0.9, 0.2]) = (-ln .9 - ln .8) / 2
        close(
            log_loss_binary(array![1.0, 0.0].view(), array![0.9, 0.2].view()).unwrap(),
            (-(0.9f64.ln()) - 0.8f64.ln()) / 2.0,
        );
        // A certain wrong answer is clipped, not infinite.
        assert!(log_loss_binary(array![1.0].view(), array![0.0].view())
            .unwrap()
            .is_finite());
        close(
            accuracy(t.view(), array![0.0, 1.0, 1.0].view()).unwrap(),
            2.0 / 3.0,
        );
        let err = log_loss(array![3.0].view(), array![[0.5, 0.5]].view())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 1 is 3, not a class number from 0 to 1"),
            "{err}"
        );
    }
}
