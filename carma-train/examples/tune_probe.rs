//! Compares CARMA settings on the recourse **validation** split (never the test split): for
//! each seed the classifier and the flow are trained once, then CARMA once per candidate
//! setting, and each is scored against the oracle on the same rejected validation
//! individuals, with and without the core's default refinement.
//!
//! ```sh
//! cargo run --release -p carma-train --example tune_probe -- chain-lin ref 0,1,2 table5 default table5+e450
//! ```
//! Arguments: dataset (`loan-weighted` for the weighted Loan row), classifier recipe (`ref`
//! or `steep`), seeds, then candidates. A candidate is `table5` (the paper's Table 5 row) or
//! `default` (the trainer's defaults, which are Loan's row), followed by `+`-separated
//! changes: `e<epochs>`, `lr<rate>`, `b<batch>`, `m<margin>`, `t<tau>`, `mh<width>x<depth>`,
//! `ah<width>x<depth>`, `wd<decay>`, `kl<weight>`. Flow overrides (every candidate): see `flow_overrides`.

use carma_train::carma::CarmaConfig;
use carma_train::evaluate::{
    Recommendations, Scores, oracle_bins, run_carma_core, run_carma_core_with, run_oracle, score,
};
use carma_train::pipeline::{
    NoProgress, PipelineConfig, Simulated, rejected_rows, retrain_carma, train_simulated,
};
use carma_train::scm::Dataset;
use ndarray::{Array1, Array2};
use std::time::Instant;

fn candidate(spec: &str, ds: Dataset, weighted: bool) -> CarmaConfig {
    let mut parts = spec.split('+');
    let mut c = match parts.next() {
        Some("table5") => CarmaConfig::table5(ds, weighted),
        Some("default") => CarmaConfig::default(),
        other => panic!("unknown base {other:?}"),
    };
    let layers = |v: &str| -> Vec<usize> {
        let (w, d) = v.split_once('x').expect("<width>x<depth>");
        vec![w.parse().expect("width"); d.parse().expect("depth")]
    };
    for p in parts {
        if let Some(v) = p.strip_prefix("mh") {
            c.mask_hidden = layers(v);
        } else if let Some(v) = p.strip_prefix("ah") {
            c.action_hidden = layers(v);
        } else if let Some(v) = p.strip_prefix("lr") {
            c.lr = v.parse().expect("lr");
        } else if let Some(v) = p.strip_prefix("kl") {
            c.kl_weight = v.parse().expect("kl weight");
        } else if let Some(v) = p.strip_prefix("wd") {
            c.weight_decay = v.parse().expect("wd");
        } else if let Some(v) = p.strip_prefix('e') {
            c.epochs = v.parse().expect("epochs");
        } else if let Some(v) = p.strip_prefix('b') {
            c.batch_size = v.parse().expect("batch");
        } else if let Some(v) = p.strip_prefix('m') {
            c.margin = v.parse().expect("margin");
        } else if let Some(v) = p.strip_prefix('t') {
            c.tau = v.parse().expect("tau");
        } else {
            panic!("unknown change {p}");
        }
    }
    c
}

/// Environment overrides of the flow stage, shared by every candidate: `FLOW_HIDDEN`
/// (widths, comma-separated), `FLOW_LAYERS`, `FLOW_EPOCHS`, `FLOW_PATIENCE`, `N_FLOW`.
fn flow_overrides(cfg: &mut PipelineConfig) {
    let var = |k: &str| std::env::var(k).ok();
    if let Some(v) = var("FLOW_HIDDEN") {
        cfg.flow.hidden = v.split(',').map(|w| w.parse().expect("a width")).collect();
    }
    if let Some(v) = var("FLOW_LAYERS") {
        cfg.flow.layers = v.parse().expect("layers");
    }
    if let Some(v) = var("FLOW_EPOCHS") {
        cfg.flow.epochs = v.parse().expect("epochs");
    }
    if let Some(v) = var("FLOW_PATIENCE") {
        cfg.flow.patience = v.parse().expect("patience");
    }
    if let Some(v) = var("N_FLOW") {
        cfg.n_flow = v.parse().expect("rows");
    }
}

fn rejected_val(sim: &Simulated) -> Array2<f64> {
    rejected_rows(&sim.trained, &sim.val.x).expect("same width")
}

/// The cheapest accepted answer among the refined recommendation and its `k - 1`
/// alternatives (`Bundle::recommend_alternatives`), per individual.
fn run_best(sim: &Simulated, x_raw: &Array2<f64>, k: usize) -> Recommendations {
    let t = &sim.trained;
    let bytes = t.to_bytes().expect("exports");
    let bundle = carma_core::bundle::Bundle::new(&bytes).expect("reads");
    let (n, d) = x_raw.dim();
    let mut scratch = vec![0f32; bundle.scratch_len()];
    let mut rows = vec![0f32; k * d];
    let mut recs = vec![None; k];
    let mut mask = Array2::zeros((n, d));
    let mut prob = Array1::zeros(n);
    let mut cost = Array1::zeros(n);
    let mut x_cf_raw = Array2::zeros((n, d));
    let options = carma_core::Options::new(
        carma_core::FeatureSet::EMPTY,
        Some(carma_core::Refine::DEFAULT),
    );
    let start = Instant::now();
    for i in 0..n {
        let x: Vec<f32> = x_raw.row(i).iter().map(|&v| v as f32).collect();
        let m = bundle
            .recommend_alternatives(&x, &options, &mut rows, &mut recs, &mut scratch)
            .expect("recommends");
        let best = (0..m)
            .filter(|&j| recs[j].is_some_and(|r| r.accepted))
            .min_by(|&a, &b| {
                let c = |j: usize| recs[j].map_or(f32::INFINITY, |r| r.cost);
                c(a).total_cmp(&c(b))
            })
            .unwrap_or(0);
        if let Some(r) = recs[best] {
            for f in r.mask.iter() {
                mask[[i, f]] = 1.0;
            }
            prob[i] = f64::from(r.prob_after);
            cost[i] = f64::from(r.cost);
        }
        for f in 0..d {
            x_cf_raw[[i, f]] = f64::from(rows[best * d + f]);
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    Recommendations {
        mask,
        x_cf: t.scaler.transform(x_cf_raw.view()).expect("same width"),
        prob,
        cost,
        us_per_individual: us,
    }
}

/// Prototype of an inference-time descent along the learned boundary, on top of the refined
/// answer: with the set `S` fixed, repeatedly linearize the logit at the current change
/// `delta_S`, jump to the cheapest change meeting the linearized constraint
/// (`delta_k ∝ g_k / c_k`), then scale it to the smallest multiple reaching `min_prob`, and keep
/// it (with the slack) when it is cheaper. Continuous features only; binary and grid ones stay.
fn run_descent(sim: &Simulated, x_raw: &Array2<f64>, iters: usize) -> Recommendations {
    let t = &sim.trained;
    let bytes = t.to_bytes().expect("exports");
    let b = carma_core::bundle::Bundle::new(&bytes).expect("reads");
    let (n, d) = x_raw.dim();
    let mut scratch = vec![0f32; b.scratch_len()];
    let r0 = carma_core::Refine::DEFAULT;
    let options = carma_core::Options::new(carma_core::FeatureSet::EMPTY, Some(r0));
    let (mut mask, mut prob, mut cost) =
        (Array2::zeros((n, d)), Array1::zeros(n), Array1::zeros(n));
    let mut x_cf_raw = Array2::zeros((n, d));
    let logit = |p: f32| (p.max(1e-7) / (1.0 - p).max(1e-7)).ln();
    let target = logit(r0.min_prob);
    let start = Instant::now();
    let mut out = vec![0f32; d];
    for i in 0..n {
        let x: Vec<f32> = x_raw.row(i).iter().map(|&v| v as f32).collect();
        let r = b
            .recommend_with(&x, &options, &mut out, &mut scratch)
            .expect("recommends");
        let mut xs = vec![0f32; d];
        b.standardize(&x, &mut xs).unwrap();
        let mut cf = vec![0f32; d];
        b.standardize(&out, &mut cf).unwrap();
        let (mut best_cost, mut best_cf, mut best_p) = (r.cost, cf.clone(), r.prob_after);
        let cont: Vec<usize> = r
            .mask
            .iter()
            .filter(|&k| !b.is_binary(k) && !b.grid().contains(k))
            .collect();
        if r.accepted && !cont.is_empty() {
            let set = r.mask;
            // c_k: the cost of a unit change of k alone.
            let c: Vec<f32> = (0..d)
                .map(|k| {
                    let mut y = xs.clone();
                    y[k] += 1.0;
                    b.cost(&xs, &y, carma_core::FeatureSet::from_bits(1 << k))
                        .unwrap()
                })
                .collect();
            let eval = |vals: &[f32], scratch: &mut Vec<f32>, o: &mut Vec<f32>| -> f32 {
                b.intervene(&xs, set, vals, o, scratch).unwrap();
                b.classify(o, scratch).unwrap()
            };
            let mut vals = cf.clone();
            let mut o = vec![0f32; d];
            for _ in 0..iters {
                let g0 = logit(eval(&vals, &mut scratch, &mut o));
                let h = 1e-2f32;
                let mut g = vec![0f32; d];
                for &k in &cont {
                    let mut v2 = vals.clone();
                    v2[k] += h;
                    g[k] = (logit(eval(&v2, &mut scratch, &mut o)) - g0) / h;
                }
                // Linearized: minimize sum c_k delta_k^2 s.t. g0 + g.(delta - delta_cur) = target.
                let gd: f32 = cont.iter().map(|&k| g[k] * (vals[k] - xs[k])).sum();
                let q: f32 = cont.iter().map(|&k| g[k] * g[k] / c[k]).sum();
                if q.is_nan() || q <= 0.0 {
                    break;
                }
                let lam = (target - g0 + gd) / q;
                let dir: Vec<f32> = (0..d)
                    .map(|k| {
                        if cont.contains(&k) {
                            lam * g[k] / c[k]
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let base = vals.clone();
                let at = |s: f32| -> Vec<f32> {
                    let mut v = base.clone();
                    for &k in &cont {
                        v[k] = xs[k] + s * dir[k];
                    }
                    v
                };
                // The smallest scale in (0, 4] reaching min_prob: doubling, then bisection.
                let (mut lo, mut hi) = (0f32, 1f32);
                while eval(&at(hi), &mut scratch, &mut o) < r0.min_prob && hi < 4.0 {
                    lo = hi;
                    hi *= 2.0;
                }
                if eval(&at(hi), &mut scratch, &mut o) < r0.min_prob {
                    break;
                }
                for _ in 0..6 {
                    let mid = 0.5 * (lo + hi);
                    if eval(&at(mid), &mut scratch, &mut o) >= r0.min_prob {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                vals = at(hi);
                let with_slack = at(hi * (1.0 + r0.slack));
                let p = eval(&with_slack, &mut scratch, &mut o);
                let cc = b.cost(&xs, &o, set).unwrap();
                if p >= r0.min_prob && cc < best_cost {
                    best_cost = cc;
                    best_cf = o.clone();
                    best_p = p;
                }
            }
        }
        for f in r.mask.iter() {
            mask[[i, f]] = 1.0;
        }
        prob[i] = f64::from(best_p);
        cost[i] = f64::from(best_cost);
        let mut raw = vec![0f32; d];
        b.unstandardize(&best_cf, &mut raw).unwrap();
        for f in 0..d {
            x_cf_raw[[i, f]] = f64::from(raw[f]);
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    Recommendations {
        mask,
        x_cf: t.scaler.transform(x_cf_raw.view()).expect("same width"),
        prob,
        cost,
        us_per_individual: us,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (ds, weighted) = match args.get(1).map(String::as_str) {
        Some("loan-weighted") => (Dataset::Loan, true),
        Some(s) => (s.parse().expect("a dataset name"), false),
        None => (Dataset::Loan, false),
    };
    let steep = args.get(2).map(String::as_str) == Some("steep");
    let seeds: Vec<u64> = args
        .get(3)
        .map(|s| s.split(',').map(|v| v.parse().expect("a seed")).collect())
        .unwrap_or_else(|| vec![0]);
    let specs: Vec<&str> = args.iter().skip(4).map(String::as_str).collect();
    let t0 = Instant::now();
    // candidate -> (carma ratios, refined ratios, refined validity, refined coverage)
    let mut acc = vec![
        (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new()
        );
        specs.len()
    ];
    for &seed in &seeds {
        let mut cfg = PipelineConfig::paper_setting(ds, weighted);
        if steep {
            cfg.classifier.make_steep();
        }
        cfg.seed = seed;
        flow_overrides(&mut cfg);
        cfg.carma = candidate(specs[0], ds, weighted);
        let base = train_simulated(ds, &cfg, &mut NoProgress).expect("training succeeds");
        let x = rejected_val(&base);
        let o = score(&base, &x, &run_oracle(&base, &x, oracle_bins(ds), 2));
        for (k, spec) in specs.iter().enumerate() {
            let sim = if k == 0 {
                base.clone()
            } else {
                let mut c = cfg.clone();
                c.carma = candidate(spec, ds, weighted);
                retrain_carma(&base, &c).expect("CARMA trains")
            };
            let raw = score(&sim, &x, &run_carma_core(&sim, &x));
            let refined = score(
                &sim,
                &x,
                &run_carma_core_with(&sim, &x, Some(carma_core::Refine::DEFAULT)),
            );
            let show = |name: &str, s: &Scores| {
                println!(
                    "seed {seed} {spec:<32} {name:<8} cost {:7.3} ({:5.2}x) cov {:6.2} valid {:6.2} act {:.2}  [{:.0}s]",
                    s.cost_x100,
                    s.cost_x100 / o.cost_x100,
                    s.coverage_pct,
                    s.validity_pct,
                    s.mean_actions,
                    t0.elapsed().as_secs_f64()
                )
            };
            show("carma", &raw);
            show("refined", &refined);
            let best = score(&sim, &x, &run_best(&sim, &x, 3));
            show("best3", &best);
            acc[k].4.push(best.cost_x100 / o.cost_x100);
            acc[k].5.push(best.validity_pct);
            let desc = score(&sim, &x, &run_descent(&sim, &x, 3));
            show("descent", &desc);
            acc[k].0.push(raw.cost_x100 / o.cost_x100);
            acc[k].1.push(refined.cost_x100 / o.cost_x100);
            acc[k].2.push(refined.validity_pct);
            acc[k].3.push(refined.coverage_pct);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let spread = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt() / m
    };
    println!("\nsummary over seeds {seeds:?} (validation split, cost / oracle):");
    for (k, spec) in specs.iter().enumerate() {
        let (r, f, v, c, b, bv) = &acc[k];
        println!(
            "{spec:<32} carma {:5.2}x (spread {:4.0} %)  refined {:5.2}x (spread {:4.0} %) valid {:6.2} cov {:6.2}  best3 {:5.2}x valid {:6.2}",
            mean(r),
            100.0 * spread(r),
            mean(f),
            100.0 * spread(f),
            mean(v),
            mean(c),
            mean(b),
            mean(bv)
        );
    }
}
