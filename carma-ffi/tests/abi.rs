//! The C functions called from Rust with the arguments C code cannot form
//! without undefined behaviour of its own (misaligned pointers, sizes that
//! overflow), and the results that must agree with the core's.

use carma_core::{Bundle, FeatureSet, Options, Refine};
use carma_ffi::*;

fn loan() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/golden/loan.carma"
    ))
    .unwrap()
}

fn opened(bytes: &[u8]) -> Box<CarmaModel> {
    let mut model = Box::new(CarmaModel {
        opaque: [0; CARMA_MODEL_WORDS],
    });
    // SAFETY: `bytes` is alive for the whole test and `model` is writable.
    let rc = unsafe { carma_open(bytes.as_ptr(), bytes.len(), &mut *model) };
    assert_eq!(rc, CARMA_OK);
    model
}

const X: [f32; 7] = [
    0.0,
    10.216794,
    -0.10049263,
    2.1056976,
    8.249391,
    2.880548,
    -1.0616369,
];

#[test]
fn misaligned_pointers_are_an_error_code() {
    let bytes = loan();
    let model = opened(&bytes);
    let mut scratch = vec![0.0f32; 1024];
    let mut x_cf = [0.0f32; 7];
    let mut result = CarmaResult::default();
    // Floats at an odd address inside a byte buffer.
    let mut raw = vec![0u8; 64];
    let odd = raw.as_mut_ptr().wrapping_add(1) as *mut f32;
    // SAFETY: every pointer is valid for its stated length; the odd one is
    // rejected before it is read.
    let rc = unsafe {
        carma_recommend(
            &*model,
            odd,
            7,
            std::ptr::null(),
            x_cf.as_mut_ptr(),
            scratch.as_mut_ptr(),
            1024,
            &mut result,
        )
    };
    assert_eq!(rc, CARMA_ERR_MISALIGNED);
    let rc = unsafe {
        carma_recommend(
            &*model,
            X.as_ptr(),
            7,
            std::ptr::null(),
            odd,
            scratch.as_mut_ptr(),
            1024,
            &mut result,
        )
    };
    assert_eq!(rc, CARMA_ERR_MISALIGNED);
    // A misaligned bound inside the request.
    let mut request = carma_request_default();
    request.min = odd;
    let rc = unsafe {
        carma_recommend(
            &*model,
            X.as_ptr(),
            7,
            &request,
            x_cf.as_mut_ptr(),
            scratch.as_mut_ptr(),
            1024,
            &mut result,
        )
    };
    assert_eq!(rc, CARMA_ERR_MISALIGNED);
    // A misaligned model handle.
    let mut n = 0usize;
    let handle = raw.as_mut_ptr().wrapping_add(4) as *const CarmaModel;
    assert_eq!(
        unsafe { carma_n_features(handle, &mut n) },
        CARMA_ERR_MISALIGNED
    );
    let rc = unsafe { carma_open(bytes.as_ptr(), bytes.len(), handle as *mut CarmaModel) };
    assert_eq!(rc, CARMA_ERR_MISALIGNED);
    // The buffer was not written through any of them.
    assert!(raw.iter().all(|&b| b == 0));
}

#[test]
fn a_batch_whose_size_overflows_is_an_input_error() {
    let bytes = loan();
    let model = opened(&bytes);
    let mut scratch = vec![0.0f32; 1024];
    let mut x_cf = [0.0f32; 7];
    let mut result = CarmaResult::default();
    // SAFETY: the sizes are rejected before any pointer is read.
    let rc = unsafe {
        carma_recommend_batch(
            &*model,
            X.as_ptr(),
            usize::MAX / 2,
            7,
            std::ptr::null(),
            x_cf.as_mut_ptr(),
            scratch.as_mut_ptr(),
            1024,
            &mut result,
        )
    };
    assert_eq!(rc, CARMA_ERR_INPUT);
}

#[test]
fn requests_agree_with_the_core_bit_for_bit() {
    let bytes = loan();
    let model = opened(&bytes);
    let bundle = Bundle::new(&bytes).unwrap();
    let mut scratch = vec![0.0f32; bundle.scratch_len()];
    let mut want_cf = [0.0f32; 7];
    let mut got_cf = [0.0f32; 7];
    let lo = [
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    let hi = [
        f32::INFINITY,
        f32::INFINITY,
        f32::INFINITY,
        f32::INFINITY,
        f32::INFINITY,
        f32::INFINITY,
        3.0,
    ];
    for (forbid, max_changes, limited) in [
        (0u64, 0i32, false),
        (8, -1, false),
        (0, 1, false),
        (0, 0, true),
    ] {
        let mut request = carma_request_default();
        request.forbid = forbid;
        request.max_changes = max_changes;
        let mut options = Options::new(FeatureSet::from_bits(forbid), Some(Refine::DEFAULT));
        if max_changes > 0 {
            options.limits.max_changes = Some(max_changes as u8);
        }
        if limited {
            request.min = lo.as_ptr();
            request.max = hi.as_ptr();
            options.limits.min = &lo;
            options.limits.max = &hi;
        }
        let want = bundle
            .recommend_with(&X, &options, &mut want_cf, &mut scratch)
            .unwrap();
        let mut got = CarmaResult::default();
        // SAFETY: every buffer holds what it is said to.
        let rc = unsafe {
            carma_recommend(
                &*model,
                X.as_ptr(),
                7,
                &request,
                got_cf.as_mut_ptr(),
                scratch.as_mut_ptr(),
                scratch.len(),
                &mut got,
            )
        };
        assert_eq!(rc, CARMA_OK);
        assert_eq!(got.mask, want.mask.bits());
        assert_eq!(got.cost.to_bits(), want.cost.to_bits());
        assert_eq!(got.prob_after.to_bits(), want.prob_after.to_bits());
        assert_eq!(got.bound_by_limit, want.bound_by_limit.bits());
        assert_eq!(got.max_changes_bound != 0, want.max_changes_bound);
        assert_eq!(got_cf.map(f32::to_bits), want_cf.map(f32::to_bits));
        if max_changes == 1 {
            assert!(
                got.mask.count_ones() <= 1,
                "at most one change: {:b}",
                got.mask
            );
        }
        if limited && got.mask >> 6 & 1 == 1 {
            assert!(got_cf[6] <= 3.0, "savings within its bound: {}", got_cf[6]);
        }
    }
}

/// The Loan fixture re-encoded with `duration` an integer feature (step 1)
/// and `education` categorical with three levels (bounds 0 to 2): a
/// format-4 bundle.
fn loan_with_grid(bytes: &[u8]) -> Vec<u8> {
    use carma_core::format::{BundleWire, GridWire, KIND_CATEGORICAL, KIND_INTEGER};
    let mut wire = BundleWire::decode(bytes).unwrap();
    let mut min: Vec<f32> = wire
        .features
        .min
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut max: Vec<f32> = wire
        .features
        .max
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (min[2], max[2]) = (0.0, 2.0);
    let (min, max): (Vec<u8>, Vec<u8>) = (
        min.iter().flat_map(|v| v.to_le_bytes()).collect(),
        max.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    wire.features.min = &min;
    wire.features.max = &max;
    let step: Vec<u8> = [0.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    wire.grid = Some(GridWire {
        kind: &[0, 0, KIND_CATEGORICAL, 0, KIND_INTEGER, 0, 0],
        step: &step,
        n_levels: &[0, 0, 3, 0, 0, 0, 0],
        levels: "none\nschool\nuniversity",
    });
    let mut out = vec![0u8; bytes.len() + 256];
    let n = wire.encode(&mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn integer_and_categorical_features_through_the_c_interface() {
    let bytes = loan_with_grid(&loan());
    let model = opened(&bytes);
    let mut info = CarmaFeatureInfo::default();
    // SAFETY: `info` is writable.
    assert_eq!(
        unsafe { carma_feature_info(&*model, 4, &mut info) },
        CARMA_OK
    );
    assert_eq!(
        (info.kind, info.step, info.levels),
        (CARMA_KIND_INTEGER, 1.0, 0)
    );
    assert_eq!(
        unsafe { carma_feature_info(&*model, 2, &mut info) },
        CARMA_OK
    );
    assert_eq!(
        (info.kind, info.step, info.levels),
        (CARMA_KIND_CATEGORICAL, 1.0, 3)
    );
    assert_eq!(
        unsafe { carma_feature_info(&*model, 0, &mut info) },
        CARMA_OK
    );
    assert_eq!(info.kind, CARMA_KIND_BINARY);
    let (mut name, mut len) = (std::ptr::null(), 0usize);
    // SAFETY: the outputs are writable; the name borrows `bytes`, alive here.
    assert_eq!(
        unsafe { carma_level_name(&*model, 2, 2, &mut name, &mut len) },
        CARMA_OK
    );
    assert_eq!(
        unsafe { std::slice::from_raw_parts(name, len) },
        b"university"
    );
    assert_eq!(
        unsafe { carma_level_name(&*model, 2, 3, &mut name, &mut len) },
        CARMA_ERR_INDEX
    );
    assert_eq!(
        unsafe { carma_level_name(&*model, 4, 0, &mut name, &mut len) },
        CARMA_ERR_INDEX
    );

    let mut scratch = vec![0.0f32; 1024];
    let mut x_cf = [0.0f32; 7];
    let mut r = CarmaResult::default();
    let request = carma_request_default();
    let mut x = X;
    x[2] = 1.0;
    x[4] = 8.0;
    // SAFETY: every buffer holds what it is said to.
    let rc = unsafe {
        carma_recommend(
            &*model,
            x.as_ptr(),
            7,
            &request,
            x_cf.as_mut_ptr(),
            scratch.as_mut_ptr(),
            1024,
            &mut r,
        )
    };
    assert_eq!(rc, CARMA_OK);
    assert_eq!(x_cf[4].fract(), 0.0, "duration on its grid: {x_cf:?}");
    assert!(
        [0.0, 1.0, 2.0].contains(&x_cf[2]),
        "education a level: {x_cf:?}"
    );
    // Off the grid: an input error, as for a binary feature that is not 0 or 1.
    x[4] = 8.5;
    let rc = unsafe {
        carma_recommend(
            &*model,
            x.as_ptr(),
            7,
            &request,
            x_cf.as_mut_ptr(),
            scratch.as_mut_ptr(),
            1024,
            &mut r,
        )
    };
    assert_eq!(rc, CARMA_ERR_INPUT);
}
