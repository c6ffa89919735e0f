//! The cases the freestanding program embeds still hold for this build of
//! the core (if this fails after a numeric change, regenerate them with
//! `cargo run -p carma-core --example freestanding_fixture`).

use carma_core::{Bundle, FeatureSet};

#[allow(dead_code)]
struct Case {
    x: [u32; cases::N_FEATURES],
    forbid: u64,
    mask: u64,
    prob_before: u32,
    prob_after: u32,
    cost: u32,
    accepted: bool,
    already_accepted: bool,
    x_cf: [u32; cases::N_FEATURES],
}

mod cases {
    use super::Case;
    include!("../../fixtures/freestanding/cases.rs");
}

#[test]
fn embedded_cases_match_this_build_bit_for_bit() {
    let bytes = include_bytes!("../../fixtures/freestanding/bundle.carma");
    let bundle = Bundle::new(bytes).unwrap();
    assert_eq!(bundle.n_features(), cases::N_FEATURES);
    let mut scratch = vec![0.0; bundle.scratch_len()];
    assert!(!cases::CASES.is_empty());
    for (k, c) in cases::CASES.iter().enumerate() {
        let mut x_cf = [0.0f32; cases::N_FEATURES];
        let x = c.x.map(f32::from_bits);
        let rec = bundle
            .recommend(&x, FeatureSet::from_bits(c.forbid), &mut x_cf, &mut scratch)
            .unwrap();
        assert_eq!(rec.mask.bits(), c.mask, "case {k}");
        assert_eq!(rec.prob_before.to_bits(), c.prob_before, "case {k}");
        assert_eq!(rec.prob_after.to_bits(), c.prob_after, "case {k}");
        assert_eq!(rec.cost.to_bits(), c.cost, "case {k}");
        assert_eq!(
            (rec.accepted, rec.already_accepted),
            (c.accepted, c.already_accepted),
            "case {k}"
        );
        assert_eq!(x_cf.map(f32::to_bits), c.x_cf, "case {k}");
    }
}
