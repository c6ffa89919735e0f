//! Golden fixtures (issue 6): for each of the seven datasets a small trained
//! bundle (`fixtures/golden/<dataset>.carma`) and the outputs `carma-core`
//! gave for 20 test individuals and a forbid case (`<dataset>.json`).
//!
//! - On x86_64 the core must reproduce every output bit for bit; elsewhere
//!   each float may differ by [`CROSS_PLATFORM_REL_TOL`] relative (see
//!   docs/FIXTURES.md).
//! - Retraining with the generator's own function gives the committed bundle
//!   and JSON bytes (determinism on this machine).
//!
//! Regenerate (deliberately, never from a test) with
//! `cargo run --release -p carma-train --example regenerate_fixtures`.

use std::path::PathBuf;

use carma_core::{Bundle, FeatureSet};
use carma_train::golden::{self, Fixture, Float, Floats, Row};
use carma_train::scm::Dataset;

/// Relative tolerance on other platforms (docs/FIXTURES.md): libm and the
/// compiler's float code generation may differ in the last bits there.
const CROSS_PLATFORM_REL_TOL: f32 = 1e-6;
/// Bit-for-bit on the platform the fixtures were generated on.
const EXACT: bool = cfg!(target_arch = "x86_64");

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

fn load(dataset: Dataset) -> (Vec<u8>, String, Fixture) {
    let name = dataset.name();
    let bytes = std::fs::read(dir().join(format!("{name}.carma")))
        .unwrap_or_else(|e| panic!("{name}.carma: {e}"));
    let text = std::fs::read_to_string(dir().join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
    let fixture: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json: {e}"));
    (bytes, text, fixture)
}

/// Collects every difference between the core's outputs and the fixture.
struct Diffs {
    where_: String,
    found: Vec<String>,
}

impl Diffs {
    fn same(a: f32, b: f32) -> bool {
        if EXACT {
            a.to_bits() == b.to_bits()
        } else {
            a == b || (a - b).abs() <= CROSS_PLATFORM_REL_TOL * a.abs().max(b.abs())
        }
    }

    fn float(&mut self, what: &str, got: f32, want: &Float) {
        let w = want.get();
        if want.value.to_bits() != w.to_bits() {
            self.found.push(format!(
                "{}: {what}: the decimal {:?} is not the bits {:?}",
                self.where_, want.value, w
            ));
        }
        if !Self::same(got, w) {
            self.found.push(format!(
                "{}: {what}: got {got:?} (0x{:08x}), expected {w:?} (0x{:08x})",
                self.where_,
                got.to_bits(),
                w.to_bits()
            ));
        }
    }

    fn floats(&mut self, what: &str, got: &[f32], want: &Floats) {
        let Some(w) = want.decode() else {
            self.found
                .push(format!("{}: {what}: malformed bits", self.where_));
            return;
        };
        if w.len() != got.len() || want.values.len() != w.len() {
            self.found.push(format!(
                "{}: {what}: length {} vs {}",
                self.where_,
                got.len(),
                w.len()
            ));
            return;
        }
        for (i, ((&g, &e), &v)) in got.iter().zip(&w).zip(&want.values).enumerate() {
            let want = Float {
                value: v,
                bits: golden::Bits(e.to_bits()),
            };
            self.float(&format!("{what}[{i}]"), g, &want);
        }
    }

    fn exact<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.found.push(format!(
                "{}: {what}: got {got:?}, expected {want:?}",
                self.where_
            ));
        }
    }
}

/// Recomputes one row with the core's public API and compares every output.
fn check_row(bundle: &Bundle<'_>, row: &Row, diffs: &mut Diffs) {
    let d = bundle.n_features();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let x = row.x.decode().expect("input bits");
    let forbid = FeatureSet::from_bits(row.forbid.bits);
    let ops = &row.ops;

    let mut x_std = vec![0.0f32; d];
    bundle.standardize(&x, &mut x_std).unwrap();
    diffs.floats("ops.x_std", &x_std, &ops.x_std);
    let mut z = vec![0.0f32; d];
    bundle.abduct(&x_std, &mut z, &mut scratch).unwrap();
    diffs.floats("ops.z", &z, &ops.z);
    let ll = bundle.log_likelihood(&x_std, &mut scratch).unwrap();
    diffs.float("ops.log_likelihood", ll, &ops.log_likelihood);
    let mut x_rec = vec![0.0f32; d];
    bundle.invert(&z, &mut x_rec, &mut scratch).unwrap();
    diffs.floats("ops.x_std_reconstructed", &x_rec, &ops.x_std_reconstructed);
    let prob = bundle.classify(&x_std, &mut scratch).unwrap();
    diffs.float("ops.prob", prob, &ops.prob);
    let mask = bundle.mask(&z, forbid, &mut scratch).unwrap();
    diffs.exact("ops.mask", mask.bits(), ops.mask.bits);
    let names: Vec<String> = mask
        .iter()
        .map(|i| bundle.feature_name(i).unwrap().to_owned())
        .collect();
    diffs.exact("ops.mask names", &names, &ops.mask.names);
    let mut delta = vec![0.0f32; d];
    bundle.action(&z, mask, &mut delta, &mut scratch).unwrap();
    diffs.floats("ops.delta", &delta, &ops.delta);
    let mut z_cf = z.clone();
    for i in mask.iter() {
        z_cf[i] += delta[i];
    }
    diffs.floats("ops.z_cf", &z_cf, &ops.z_cf);
    let mut x_cf_std = vec![0.0f32; d];
    bundle.invert(&z_cf, &mut x_cf_std, &mut scratch).unwrap();
    diffs.floats("ops.x_cf_std", &x_cf_std, &ops.x_cf_std);
    let mut x_cf = vec![0.0f32; d];
    bundle.unstandardize(&x_cf_std, &mut x_cf).unwrap();
    diffs.floats("ops.x_cf", &x_cf, &ops.x_cf);
    let prob_cf = bundle.classify(&x_cf_std, &mut scratch).unwrap();
    diffs.float("ops.prob_cf", prob_cf, &ops.prob_cf);
    let cost = bundle.cost(&x_std, &x_cf_std, mask).unwrap();
    diffs.float("ops.cost", cost, &ops.cost);

    let want = &row.recommend;
    let mut rec_x_cf = vec![0.0f32; d];
    let rec = bundle
        .recommend(&x, forbid, &mut rec_x_cf, &mut scratch)
        .unwrap();
    diffs.exact("recommend.mask", rec.mask.bits(), want.mask.bits);
    diffs.float("recommend.prob_before", rec.prob_before, &want.prob_before);
    diffs.float("recommend.prob_after", rec.prob_after, &want.prob_after);
    diffs.exact("recommend.accepted", rec.accepted, want.accepted);
    diffs.exact(
        "recommend.already_accepted",
        rec.already_accepted,
        want.already_accepted,
    );
    diffs.float("recommend.cost", rec.cost, &want.cost);
    diffs.floats("recommend.x_cf", &rec_x_cf, &want.x_cf);
}

#[test]
fn core_reproduces_every_golden_output_bit_for_bit() {
    let mut all = Vec::new();
    let mut n_rows = 0;
    for dataset in Dataset::ALL {
        let (bytes, _, fixture) = load(dataset);
        let name = dataset.name();
        assert_eq!(fixture.dataset, name);
        assert_eq!(fixture.layout_version, golden::LAYOUT_VERSION, "{name}");
        assert_eq!(fixture.bundle_len, bytes.len(), "{name}: bundle length");
        assert_eq!(
            fixture.bundle_fnv1a64,
            format!("0x{:016x}", golden::fnv1a64(&bytes)),
            "{name}: the JSON belongs to another bundle"
        );
        let bundle = Bundle::new(&bytes).unwrap();
        let names: Vec<&str> = fixture.features.iter().map(|f| f.name.as_str()).collect();
        let ours: Vec<&str> = (0..bundle.n_features())
            .map(|i| bundle.feature_name(i).unwrap())
            .collect();
        assert_eq!(ours, names, "{name}: features");
        for (k, row) in fixture.rows.iter().chain(&fixture.forbid_rows).enumerate() {
            let mut diffs = Diffs {
                where_: format!("{name} case {k} (test row {})", row.test_row),
                found: Vec::new(),
            };
            check_row(&bundle, row, &mut diffs);
            all.extend(diffs.found);
            n_rows += 1;
        }
    }
    assert!(n_rows >= 7 * 20, "only {n_rows} cases");
    assert!(
        all.is_empty(),
        "{} differences from the golden fixtures (if a deliberate numeric change caused them, \
         regenerate: see docs/FIXTURES.md):\n{}",
        all.len(),
        all.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn golden_fixtures_hold_rejected_accepted_and_forbid_cases() {
    for dataset in Dataset::ALL {
        let (bytes, _, f) = load(dataset);
        let name = dataset.name();
        let bundle = Bundle::new(&bytes).unwrap();
        let rejected: Vec<&Row> = f
            .rows
            .iter()
            .filter(|r| !r.recommend.already_accepted)
            .collect();
        assert_eq!(rejected.len(), golden::N_REJECTED, "{name}");
        assert_eq!(
            f.rows.len() - rejected.len(),
            golden::N_ACCEPTED,
            "{name}: accepted rows"
        );
        // A trained model: most rejected individuals get an accepted recourse.
        let ok = rejected.iter().filter(|r| r.recommend.accepted).count();
        assert!(
            ok * 4 >= rejected.len() * 3,
            "{name}: {ok}/{}",
            rejected.len()
        );
        for r in &rejected {
            assert!(r.recommend.prob_before.get() < 0.5, "{name}");
            assert!(r.forbid.bits == 0 && r.recommend.mask.bits != 0, "{name}");
        }
        // The forbid case: an actionable feature, never in the masks again.
        let i = (0..bundle.n_features())
            .find(|&i| bundle.feature_name(i) == Some(f.forbidden_feature.as_str()))
            .unwrap_or_else(|| panic!("{name}: unknown {}", f.forbidden_feature));
        assert!(bundle.is_actionable(i), "{name}");
        assert!(!f.forbid_rows.is_empty(), "{name}");
        for r in &f.forbid_rows {
            assert_eq!(r.forbid.bits, 1 << i, "{name}");
            assert!(!FeatureSet::from_bits(r.recommend.mask.bits).contains(i));
            assert!(!r.recommend.already_accepted, "{name}");
            let unforbidden = f.rows.iter().find(|u| u.test_row == r.test_row).unwrap();
            assert!(FeatureSet::from_bits(unforbidden.recommend.mask.bits).contains(i));
        }
    }
}

#[test]
fn regenerating_the_golden_fixtures_gives_the_committed_bytes() {
    let t = std::time::Instant::now();
    for dataset in Dataset::ALL {
        let name = dataset.name();
        let (bytes, text, _) = load(dataset);
        let sim = golden::train(dataset).unwrap();
        let again = sim.trained.to_bytes().unwrap();
        assert!(
            again == bytes,
            "{name}: retraining with carma_train::golden::config gives other bundle bytes \
             ({} vs {} bytes, FNV 0x{:016x} vs 0x{:016x}). If the trainer or its defaults \
             changed on purpose, regenerate: see docs/FIXTURES.md",
            again.len(),
            bytes.len(),
            golden::fnv1a64(&again),
            golden::fnv1a64(&bytes)
        );
        let fixture = golden::fixture(dataset, &sim, &again).unwrap();
        assert!(
            golden::to_json(&fixture).unwrap() == text,
            "{name}.json: the generator now writes another file for the same bundle"
        );
    }
    eprintln!(
        "retrained the seven golden bundles in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn freestanding_proof_embeds_the_golden_loan_bundle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let embedded = std::fs::read(root.join("fixtures/freestanding/bundle.carma")).unwrap();
    let (loan, _, _) = load(Dataset::Loan);
    assert!(
        embedded == loan,
        "fixtures/freestanding/bundle.carma is not fixtures/golden/loan.carma: regenerate both \
         with the command in docs/FIXTURES.md"
    );
}
