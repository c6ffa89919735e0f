//! Every framing and validation error, reached by a targeted corruption of
//! a valid bundle; and random corruption never panics.

mod common;

use carma_core::error::{FormatError, Section, ValidationError as V};
use carma_core::format::{
    Activation, BundleWire, FORMAT_VERSION, HEADER_LEN, MAX_FEATURES, OLDEST_FORMAT_VERSION,
    TRAILER_LEN, crc32, weight_index,
};
use carma_core::{Bundle, Error, FeatureSet};
use common::{Shape, Spec, hand_spec, random_spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Validates `spec` after `corrupt` and returns the error.
fn error_after(corrupt: impl FnOnce(&mut Spec)) -> Error {
    let mut spec = hand_spec();
    corrupt(&mut spec);
    let bytes = spec.to_bytes();
    match Bundle::new(&bytes) {
        Ok(_) => panic!("corrupted bundle was accepted"),
        Err(e) => e,
    }
}

fn invalid(e: V) -> Error {
    Error::Validation(e)
}

#[test]
fn the_uncorrupted_bundle_is_valid() {
    assert!(Bundle::new(&hand_spec().to_bytes()).is_ok());
}

#[test]
fn feature_count_out_of_range() {
    let e = error_after(|s| s.binary.clear());
    assert_eq!(
        e,
        invalid(V::FeatureCount {
            found: 0,
            max: MAX_FEATURES
        })
    );
    let e = error_after(|s| s.binary = vec![0; 65]);
    assert_eq!(
        e,
        invalid(V::FeatureCount {
            found: 65,
            max: MAX_FEATURES
        })
    );
}

#[test]
fn names_wrong_count_or_empty() {
    let e = error_after(|s| s.names = "x0".into());
    assert_eq!(
        e,
        invalid(V::Names {
            expected: 2,
            found: 1,
            empty: None
        })
    );
    let e = error_after(|s| s.names = "x0\n".into());
    assert_eq!(
        e,
        invalid(V::Names {
            expected: 2,
            found: 2,
            empty: Some(1)
        })
    );
    let e = error_after(|s| s.names = "a\nb\nc".into());
    assert_eq!(
        e,
        invalid(V::Names {
            expected: 2,
            found: 3,
            empty: None
        })
    );
}

#[test]
fn flags_must_be_zero_or_one() {
    let e = error_after(|s| s.binary = vec![0, 2]);
    assert_eq!(
        e,
        invalid(V::NotAFlag {
            section: Section::Binary,
            index: 1
        })
    );
    let e = error_after(|s| s.actionable = vec![7, 1]);
    assert_eq!(
        e,
        invalid(V::NotAFlag {
            section: Section::Actionable,
            index: 0
        })
    );
    let e = error_after(|s| s.parents[2] = 3);
    assert_eq!(
        e,
        invalid(V::NotAFlag {
            section: Section::Parents,
            index: 2
        })
    );
}

#[test]
fn section_lengths_are_checked() {
    let len = |section, expected, found| {
        invalid(V::Length {
            section,
            expected,
            found,
        })
    };
    assert_eq!(
        error_after(|s| s.actionable.push(0)),
        len(Section::Actionable, 2, 3)
    );
    assert_eq!(
        error_after(|s| s.parents.pop().map(drop).unwrap()),
        len(Section::Parents, 4, 3)
    );
    assert_eq!(error_after(|s| s.order.push(1)), len(Section::Order, 2, 3));
    assert_eq!(
        error_after(|s| s.mean.pop().map(drop).unwrap()),
        len(Section::Mean, 8, 4)
    );
    assert_eq!(error_after(|s| s.std.push(1.0)), len(Section::Std, 8, 12));
    assert_eq!(
        error_after(|s| s.flow_params.push(0.0)),
        len(Section::Flow, 44, 48)
    );
    assert_eq!(
        error_after(|s| s.ready.push(1)),
        len(Section::FlowReady, 6, 8)
    );
    assert_eq!(
        error_after(|s| s.classifier.params.pop().map(drop).unwrap()),
        len(Section::Classifier, 12, 8)
    );
    let carma = |f: fn(&mut common::Carma)| error_after(move |s| f(s.carma.as_mut().unwrap()));
    assert_eq!(
        carma(|c| c.mask_net.params.push(0.0)),
        len(Section::MaskNet, 48, 52)
    );
    assert_eq!(
        carma(|c| c.action_net.params.clear()),
        len(Section::ActionNet, 40, 0)
    );
    assert_eq!(
        carma(|c| c.cost_range.push(1.0)),
        len(Section::CostRange, 8, 12)
    );
    assert_eq!(carma(|c| c.weights.clear()), len(Section::Weights, 8, 0));
}

#[test]
fn misaligned_byte_arrays_are_length_errors() {
    let spec = hand_spec();
    let e = spec.with_wire(|mut w| {
        w.scaler.mean = &[0; 7];
        Bundle::new(&common::encode(&w)).map(drop)
    });
    assert_eq!(
        e,
        Err(invalid(V::Length {
            section: Section::Mean,
            expected: 8,
            found: 7
        }))
    );
    let e = spec.with_wire(|mut w| {
        w.classifier.dims = &[2, 0, 1];
        Bundle::new(&common::encode(&w)).map(drop)
    });
    assert_eq!(
        e,
        Err(invalid(V::Length {
            section: Section::Classifier,
            expected: 4,
            found: 3
        }))
    );
    let e = spec.with_wire(|mut w| {
        w.flow.ready = &[0; 5];
        Bundle::new(&common::encode(&w)).map(drop)
    });
    assert_eq!(
        e,
        Err(invalid(V::Length {
            section: Section::FlowReady,
            expected: 6,
            found: 5
        }))
    );
}

#[test]
fn order_must_be_a_permutation() {
    assert_eq!(
        error_after(|s| s.order = vec![0, 0]),
        invalid(V::OrderNotPermutation { position: 1 })
    );
    assert_eq!(
        error_after(|s| s.order = vec![2, 0]),
        invalid(V::OrderNotPermutation { position: 0 })
    );
}

#[test]
fn parents_must_come_first_so_no_cycles_or_self_loops() {
    // x0 -> x1 with the order reversed.
    assert_eq!(
        error_after(|s| s.order = vec![1, 0]),
        invalid(V::ParentNotBefore {
            feature: 1,
            parent: 0
        })
    );
    // A self loop on x0.
    assert_eq!(
        error_after(|s| s.parents[0] = 1),
        invalid(V::ParentNotBefore {
            feature: 0,
            parent: 0
        })
    );
    // A cycle x0 <-> x1.
    assert_eq!(
        error_after(|s| s.parents[1] = 1),
        invalid(V::ParentNotBefore {
            feature: 0,
            parent: 1
        })
    );
}

#[test]
fn every_number_must_be_finite() {
    let nf = |section, index| invalid(V::NotFinite { section, index });
    assert_eq!(error_after(|s| s.mean[1] = f32::NAN), nf(Section::Mean, 1));
    assert_eq!(
        error_after(|s| s.std[0] = f32::INFINITY),
        nf(Section::Std, 0)
    );
    assert_eq!(
        error_after(|s| s.flow_params[5] = f32::NAN),
        nf(Section::Flow, 5)
    );
    assert_eq!(
        error_after(|s| s.classifier.params[2] = f32::NEG_INFINITY),
        nf(Section::Classifier, 2)
    );
    assert_eq!(
        error_after(|s| s.metrics.carma_cost = Some(f32::NAN)),
        nf(Section::Metrics, 4)
    );
    let carma = |f: fn(&mut common::Carma)| error_after(move |s| f(s.carma.as_mut().unwrap()));
    assert_eq!(
        carma(|c| c.mask_net.params[0] = f32::NAN),
        nf(Section::MaskNet, 0)
    );
    assert_eq!(
        carma(|c| c.action_net.params[9] = f32::NAN),
        nf(Section::ActionNet, 9)
    );
    assert_eq!(carma(|c| c.clamp_hi = f32::INFINITY), nf(Section::Clamp, 1));
    assert_eq!(
        carma(|c| c.cost_range[1] = f32::NAN),
        nf(Section::CostRange, 1)
    );
    assert_eq!(carma(|c| c.weights[0] = f32::NAN), nf(Section::Weights, 0));
}

#[test]
fn values_out_of_range() {
    let oor = |section, index| invalid(V::OutOfRange { section, index });
    assert_eq!(error_after(|s| s.std[1] = 0.0), oor(Section::Std, 1));
    assert_eq!(error_after(|s| s.std[0] = -1.0), oor(Section::Std, 0));
    let carma = |f: fn(&mut common::Carma)| error_after(move |s| f(s.carma.as_mut().unwrap()));
    assert_eq!(carma(|c| c.clamp_lo = 5.0), oor(Section::Clamp, 0));
    assert_eq!(carma(|c| c.cost_range[0] = 0.0), oor(Section::CostRange, 0));
    assert_eq!(carma(|c| c.weights[1] = -2.0), oor(Section::Weights, 1));
}

#[test]
fn network_widths_must_fit_the_bundle() {
    let dims = |section, index, expected, found| {
        invalid(V::Dims {
            section,
            index,
            expected,
            found,
        })
    };
    assert_eq!(
        error_after(|s| s.classifier.dims = vec![2]),
        dims(Section::Classifier, 1, 0, 0)
    );
    assert_eq!(
        error_after(|s| {
            s.classifier.dims = vec![2, 2];
            s.classifier.params = vec![0.0; 6];
        }),
        dims(Section::Classifier, 1, 1, 2)
    );
    assert_eq!(
        error_after(|s| s.flow_dims = vec![3, 1, 4]),
        dims(Section::Flow, 0, 2, 3)
    );
    assert_eq!(
        error_after(|s| s.flow_dims = vec![2, 0, 4]),
        dims(Section::Flow, 1, 0, 0)
    );
    let carma = |f: fn(&mut common::Carma)| error_after(move |s| f(s.carma.as_mut().unwrap()));
    assert_eq!(
        carma(|c| c.mask_net.dims = vec![2, 2]),
        dims(Section::MaskNet, 1, 4, 2)
    );
    assert_eq!(
        carma(|c| c.action_net.dims = vec![2, 2]),
        dims(Section::ActionNet, 0, 4, 2)
    );
}

#[test]
fn classifier_must_end_in_a_sigmoid() {
    assert_eq!(
        error_after(|s| s.classifier.output = Activation::Identity),
        invalid(V::Activation {
            section: Section::Classifier,
            expected: Activation::Sigmoid,
            found: Activation::Identity
        })
    );
}

#[test]
fn flow_needs_a_layer() {
    assert_eq!(
        error_after(|s| {
            s.flow_layers = 0;
            s.flow_params.clear();
            s.ready.clear();
        }),
        invalid(V::NoFlowLayers)
    );
}

#[test]
fn ready_schedule_must_grow_to_the_width() {
    let bad = |step| {
        invalid(V::ReadyNotMonotonic {
            layer: 0,
            hidden: 0,
            step,
        })
    };
    assert_eq!(error_after(|s| s.ready = vec![1, 0, 1]), bad(1));
    assert_eq!(error_after(|s| s.ready = vec![0, 1, 0]), bad(2));
    assert_eq!(error_after(|s| s.ready = vec![0, 2, 2]), bad(1));
}

#[test]
fn weights_must_respect_the_schedule() {
    let v = |matrix, row, column| {
        invalid(V::ScheduleViolation {
            layer: 0,
            matrix,
            row,
            column,
        })
    };
    // The hidden unit reads x0 but claims to be ready before x0 is known.
    assert_eq!(error_after(|s| s.ready = vec![1, 1, 1]), v(0, 0, 0));
    // The hidden unit reads x1, which is never known before the unit is needed.
    assert_eq!(error_after(|s| s.flow_params[1] = 0.5), v(0, 0, 1));
    // The shift of x0 (position 0) reads the unit that needs x0.
    assert_eq!(error_after(|s| s.flow_params[3] = 1.0), v(1, 0, 0));
    // In the second of two stacked layers.
    let e = error_after(|s| {
        let mut second = s.flow_params.clone();
        second[4] = 1.0; // raw0 reads the unit
        s.flow_params.extend(second);
        s.flow_layers = 2;
        s.ready.extend([0, 1, 1]);
    });
    assert_eq!(
        e,
        invalid(V::ScheduleViolation {
            layer: 1,
            matrix: 1,
            row: 1,
            column: 0
        })
    );
}

#[test]
fn a_flow_without_hidden_layers_checks_inputs_directly() {
    let mut spec = hand_spec();
    spec.flow_dims = vec![2, 4];
    // shift1 = 2 x0, raw1 = x0; W (4x2) then b.
    spec.flow_params = common::wire_params(
        &[2, 4],
        &[0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0, 0.5, 0.0, 0.0, 0.0],
    );
    spec.ready.clear();
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    let mut s = vec![0.0; b.scratch_len()];
    let mut z = [0.0f32; 2];
    b.abduct(&[1.0, 3.0], &mut z, &mut s).unwrap();
    let mut x = [0.0f32; 2];
    b.invert(&z, &mut x, &mut s).unwrap();
    assert!(
        (x[0] - 1.0).abs() < 1e-6 && (x[1] - 3.0).abs() < 1e-6,
        "{x:?}"
    );
    // The shift of x0 (output 0 of 4) reading x1 breaks the order.
    spec.flow_params[weight_index(4, 0, 1)] = 1.0;
    let e = Bundle::new(&spec.to_bytes()).map(drop);
    assert_eq!(
        e,
        Err(invalid(V::ScheduleViolation {
            layer: 0,
            matrix: 0,
            row: 0,
            column: 1
        }))
    );
}

/// Frames a body without a grid section (format version 3).
fn frame(body: &[u8]) -> Vec<u8> {
    frame_as(OLDEST_FORMAT_VERSION, body)
}

fn frame_as(version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = b"CARMA\0BN".to_vec();
    out.extend(version.to_le_bytes());
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    let crc = crc32(&out);
    out.extend(crc.to_le_bytes());
    out
}

#[test]
fn framing_errors_are_typed() {
    let good = hand_spec().to_bytes();
    let fmt = |e| Err(Error::Format(e));
    let new = |b: &[u8]| Bundle::new(b).map(drop);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(new(&bad), fmt(FormatError::BadMagic));
    assert_eq!(new(&good[..5]), fmt(FormatError::BadMagic));
    assert_eq!(new(&good[..10]), fmt(FormatError::Truncated));
    // Version 1 (row-major weights), version 2 (no bounds nor directions)
    // and any later version are refused by name.
    for found in [1u16, 2, FORMAT_VERSION + 1] {
        let mut bad = good.clone();
        bad[8..10].copy_from_slice(&found.to_le_bytes());
        assert_eq!(
            new(&bad),
            fmt(FormatError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION
            })
        );
    }
    assert_eq!(new(&good[..good.len() - 1]), fmt(FormatError::Truncated));
    let mut bad = good.clone();
    bad.push(0);
    assert_eq!(new(&bad), fmt(FormatError::TrailingBytes));
    let mut bad = good.clone();
    bad[HEADER_LEN + 3] ^= 0x40;
    assert_eq!(new(&bad), fmt(FormatError::ChecksumMismatch));
    assert_eq!(new(&frame(&[0xff; 3])), fmt(FormatError::Malformed));
    let mut body = good[HEADER_LEN..good.len() - TRAILER_LEN].to_vec();
    body.push(0);
    assert_eq!(new(&frame(&body)), fmt(FormatError::TrailingBytes));
    // A version-4 frame must carry its grid section after the body.
    body.pop();
    assert_eq!(
        new(&frame_as(FORMAT_VERSION, &body)),
        fmt(FormatError::Malformed)
    );
    let mut small = [0u8; 40];
    let e = hand_spec().with_wire(|w| w.encode(&mut small));
    assert_eq!(e, Err(Error::Format(FormatError::BufferTooSmall)));
    assert_eq!(new(&[]), fmt(FormatError::BadMagic));
}

#[test]
fn postcard_round_trip_preserves_the_wire() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for seed in 0..20 {
        let spec = random_spec(seed, &Shape::random(&mut rng));
        spec.with_wire(|w| {
            let bytes = common::encode(&w);
            assert_eq!(BundleWire::decode(&bytes), Ok(w));
            // Encoding is a pure function of the wire.
            assert_eq!(common::encode(&BundleWire::decode(&bytes).unwrap()), bytes);
        });
    }
}

/// Flips random body bytes (fixing the CRC so validation, not the checksum,
/// has to catch them): decoding and using the result never panics.
#[test]
fn corrupted_bodies_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let specs = [
        hand_spec(),
        random_spec(
            7,
            &Shape {
                d: 5,
                flow_layers: 2,
                flow_hidden: vec![6, 4],
            },
        ),
    ];
    let (mut accepted, mut rejected) = (0, 0);
    for spec in &specs {
        let good = spec.to_bytes();
        let end = good.len() - TRAILER_LEN;
        for _ in 0..3000 {
            let mut bad = good.clone();
            for _ in 0..rng.random_range(1..=3) {
                let i = rng.random_range(HEADER_LEN..end);
                bad[i] = rng.random();
            }
            let crc = crc32(&bad[..end]);
            bad[end..].copy_from_slice(&crc.to_le_bytes());
            match Bundle::new(&bad) {
                Err(_) => rejected += 1,
                Ok(b) => {
                    accepted += 1;
                    let d = b.n_features();
                    let mut s = vec![0.0; b.scratch_len()];
                    let x: Vec<f32> = (0..d)
                        .map(|i| if b.is_binary(i) { 1.0 } else { 0.3 })
                        .collect();
                    let mut out = vec![0.0; d];
                    let _ = b.recommend(&x, FeatureSet::EMPTY, &mut out, &mut s);
                    let _ = b.log_likelihood(&x, &mut s);
                }
            }
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "accepted {accepted}, rejected {rejected}"
    );
}

/// Format version 3's bounds and directions: finite, `min <= max`, one
/// direction byte (0, 1 or 2) per feature.
#[test]
fn bounds_and_directions_are_validated() {
    let nf = |section, index| invalid(V::NotFinite { section, index });
    let oor = |section, index| invalid(V::OutOfRange { section, index });
    assert_eq!(error_after(|s| s.min[1] = f32::NAN), nf(Section::Bounds, 1));
    assert_eq!(
        error_after(|s| s.max[0] = f32::INFINITY),
        nf(Section::Bounds, 0)
    );
    assert_eq!(error_after(|s| s.min[1] = 2000.0), oor(Section::Bounds, 1));
    assert_eq!(
        error_after(|s| s.direction[0] = 3),
        oor(Section::Direction, 0)
    );
    assert_eq!(
        error_after(|s| s.direction.push(0)),
        invalid(V::Length {
            section: Section::Direction,
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        error_after(|s| s.max.pop().map(drop).unwrap_or(())),
        invalid(V::Length {
            section: Section::Bounds,
            expected: 8,
            found: 4
        })
    );
    // A bound equal on both sides is allowed (the feature may only take that value).
    let mut spec = hand_spec();
    spec.min[1] = 3.0;
    spec.max[1] = 3.0;
    spec.direction = vec![1, 2];
    let bytes = spec.to_bytes();
    let b = Bundle::new(&bytes).unwrap();
    assert_eq!(b.bounds(1), Some((3.0, 3.0)));
    assert_eq!(b.bounds(2), None);
    assert_eq!(b.direction(0), carma_core::Direction::Increase);
    assert_eq!(b.direction(1), carma_core::Direction::Decrease);
    assert_eq!(b.direction(7), carma_core::Direction::Any);
}
