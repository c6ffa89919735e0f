//! Agreement with the CARMA paper's own PyTorch implementation (issue 6).
//!
//! The paper's trained causal flows and classifiers (Loan, triangle-LIN) are
//! imported from `fixtures/reference/*_flow.json` with the recourse scaler,
//! exported to a bundle, loaded by carma-core, and compared with the 100 test
//! rows of `fixtures/reference/*_vectors.json` that the reference code
//! computed: latents, reconstructions, log-densities, classifier
//! probabilities, and counterfactuals for given masks and latent shifts.
//!
//! The paper's mean test log-likelihood (Loan -13.613997, triangle-LIN
//! -5.706336) is over 2,500 rows of the flow's own test split, standardized
//! with the causal_estimator scaler; those rows are not in the fixtures, so
//! that mean cannot be checked here. The per-row log-density in original units
//! (`log_prob_raw`) is checked instead.

use carma_core::bundle::Bundle;
use carma_train::import::{ScalerChoice, import_reference_json};
use serde_json::Value;

/// Issue 6: agreement within 1e-5, absolute, in standardized space.
const TOL_STANDARDIZED: f64 = 1e-5;
/// Per-row log-density in original units (nats); the issue asks 1e-3 for the
/// mean, we check every row at 1e-4.
const TOL_LOG_PROB_RAW: f64 = 1e-4;

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/reference/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vector(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("a list of rows")
        .iter()
        .map(vector)
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The largest absolute error per quantity, with the row it occurred in.
#[derive(Default)]
struct MaxErrors(Vec<(&'static str, f64, f64, usize)>);

impl MaxErrors {
    fn record(
        &mut self,
        quantity: &'static str,
        tol: f64,
        row: usize,
        ours: &[f32],
        reference: &[f64],
    ) {
        assert_eq!(ours.len(), reference.len(), "{quantity}: length");
        let err = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (f64::from(a) - b).abs())
            .fold(0.0, f64::max);
        match self.0.iter_mut().find(|(q, ..)| *q == quantity) {
            Some(entry) if err > entry.2 => {
                entry.2 = err;
                entry.3 = row;
            }
            Some(_) => {}
            None => self.0.push((quantity, tol, err, row)),
        }
    }

    fn check(&self, dataset: &str) {
        for (quantity, tol, err, row) in &self.0 {
            println!(
                "{dataset:>20} {quantity:<24} max abs err {err:.3e} (row {row}, tolerance {tol:.0e})"
            );
        }
        for (quantity, tol, err, row) in &self.0 {
            assert!(
                err <= tol,
                "{dataset}: {quantity} differs from the reference by {err:.3e} at row {row} (tolerance {tol:.0e})"
            );
        }
    }
}

fn agree_with_reference(dataset: &str) {
    let flow_json = std::fs::read_to_string(format!(
        "{}/fixtures/reference/{dataset}_flow.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let spec = import_reference_json(&flow_json, ScalerChoice::Recourse).unwrap();
    let bytes = spec.to_bytes().unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    let d = bundle.n_features();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];

    let v = fixture(&format!("{dataset}_vectors.json"));
    assert!(
        v["scaler"].as_str().unwrap().starts_with("recourse"),
        "the vectors use the recourse scaler"
    );
    let x_raw = matrix(&v["x_raw"]);
    let x_scaled = matrix(&v["x_scaled"]);
    let z_ref = matrix(&v["z"]);
    let recon = matrix(&v["x_reconstructed_scaled"]);
    let log_prob_scaled = vector(&v["log_prob_scaled"]);
    let log_prob_raw = vector(&v["log_prob_raw"]);
    let clf_prob = vector(&v["clf_prob"]);
    let cf = &v["cf"];
    let actionable: Vec<usize> = vector(&cf["actionable"])
        .iter()
        .map(|&i| i as usize)
        .collect();
    let mask = matrix(&cf["mask"]);
    let delta = matrix(&cf["delta"]);
    let z_cf_ref = matrix(&cf["z_cf"]);
    let x_cf_scaled = matrix(&cf["x_cf_scaled"]);
    let x_cf_raw = matrix(&cf["x_cf_raw"]);
    let cf_prob = vector(&cf["clf_prob"]);
    let cost_ref = vector(&cf["l2_cost_per_row"]);
    let range = vector(&cf["feature_range_scaled_train"]);
    // The same quantities computed by the reference in double precision.
    let z_f64 = matrix(&v["f64"]["z"]);
    let log_prob_f64 = vector(&v["f64"]["log_prob_scaled"]);
    let x_cf_f64 = matrix(&v["f64"]["x_cf_scaled"]);
    let n = x_raw.len();
    assert_eq!(n, 100, "the fixture holds 100 rows");
    assert_eq!(d, x_raw[0].len());
    for i in 0..d {
        assert_eq!(
            bundle.is_actionable(i),
            actionable.contains(&i),
            "actionable feature {i}"
        );
    }

    let sum_ln_std: f64 = (0..d).map(|j| f64::from(spec.std[j]).ln()).sum();
    let std: Vec<f64> = spec.std.iter().map(|&s| f64::from(s)).collect();

    let mut errs = MaxErrors::default();
    let (mut xs, mut z, mut x, mut z_cf, mut x_cf, mut raw) = (
        vec![0.0f32; d],
        vec![0.0f32; d],
        vec![0.0f32; d],
        vec![0.0f32; d],
        vec![0.0f32; d],
        vec![0.0f32; d],
    );
    for r in 0..n {
        bundle.standardize(&to_f32(&x_raw[r]), &mut xs).unwrap();
        errs.record("x_scaled", TOL_STANDARDIZED, r, &xs, &x_scaled[r]);

        // Abduction from the reference's scaled input.
        let x_in = to_f32(&x_scaled[r]);
        bundle.abduct(&x_in, &mut z, &mut scratch).unwrap();
        errs.record("z (abduct)", TOL_STANDARDIZED, r, &z, &z_ref[r]);
        errs.record("z vs f64 reference", TOL_STANDARDIZED, r, &z, &z_f64[r]);

        // Reconstruction: invert the reference's latent.
        bundle
            .invert(&to_f32(&z_ref[r]), &mut x, &mut scratch)
            .unwrap();
        errs.record(
            "reconstruction (invert)",
            TOL_STANDARDIZED,
            r,
            &x,
            &recon[r],
        );

        let lp = bundle.log_likelihood(&x_in, &mut scratch).unwrap();
        errs.record(
            "log_prob_scaled",
            TOL_STANDARDIZED,
            r,
            &[lp],
            &[log_prob_scaled[r]],
        );
        errs.record(
            "log_prob_scaled vs f64",
            TOL_STANDARDIZED,
            r,
            &[lp],
            &[log_prob_f64[r]],
        );
        let lp_raw = f64::from(lp) - sum_ln_std;
        errs.record(
            "log_prob_raw",
            TOL_LOG_PROB_RAW,
            r,
            &[lp_raw as f32],
            &[log_prob_raw[r]],
        );

        let p = bundle.classify(&x_in, &mut scratch).unwrap();
        errs.record("clf_prob", TOL_STANDARDIZED, r, &[p], &[clf_prob[r]]);

        // Counterfactual: z_cf = mask * delta + z, in f32 as the reference.
        for i in 0..d {
            z_cf[i] = mask[r][i] as f32 * delta[r][i] as f32 + z_ref[r][i] as f32;
        }
        errs.record("cf z_cf", TOL_STANDARDIZED, r, &z_cf, &z_cf_ref[r]);
        bundle.invert(&z_cf, &mut x_cf, &mut scratch).unwrap();
        errs.record(
            "cf x_cf_scaled (invert)",
            TOL_STANDARDIZED,
            r,
            &x_cf,
            &x_cf_scaled[r],
        );
        errs.record(
            "cf x_cf_scaled vs f64",
            TOL_STANDARDIZED,
            r,
            &x_cf,
            &x_cf_f64[r],
        );
        // Raw counterfactual, compared in standardized units.
        bundle.unstandardize(&x_cf, &mut raw).unwrap();
        let raw_err_std: Vec<f32> = (0..d)
            .map(|i| ((f64::from(raw[i]) - x_cf_raw[r][i]) / std[i]) as f32)
            .collect();
        errs.record(
            "cf x_cf_raw / std",
            TOL_STANDARDIZED,
            r,
            &raw_err_std,
            &vec![0.0; d],
        );
        let p_cf = bundle.classify(&x_cf, &mut scratch).unwrap();
        errs.record("cf clf_prob", TOL_STANDARDIZED, r, &[p_cf], &[cf_prob[r]]);

        // l2_cost_per_row: mean over the actionable features of
        // mask_k (x_k - x_cf_k)^2 / range_k (recourse_model/loss.py, weights 1).
        let cost = actionable
            .iter()
            .map(|&k| mask[r][k] * (x_scaled[r][k] - f64::from(x_cf[k])).powi(2) / range[k])
            .sum::<f64>()
            / actionable.len() as f64;
        errs.record(
            "cf l2_cost",
            TOL_STANDARDIZED,
            r,
            &[cost as f32],
            &[cost_ref[r]],
        );
    }
    errs.check(dataset);
}

#[test]
fn loan_flow_and_classifier_agree_with_the_paper_implementation() {
    agree_with_reference("loan");
}

#[test]
fn triangle_lin_flow_and_classifier_agree_with_the_paper_implementation() {
    agree_with_reference("trianglesens_linear");
}
