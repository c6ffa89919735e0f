//! # carma-ffi
//!
//! A C interface over [`carma_core`]: open a model bundle from bytes the
//! caller owns (no copy, no allocation) and recommend into arrays the caller
//! owns. The header is `carma-ffi/include/carma.h`, generated from this file
//! by cbindgen; `tests/header.rs` regenerates it and fails if the committed
//! one differs (`CARMA_BLESS=1` rewrites it).
//!
//! For C firmware build it without the standard library:
//! `cargo build -p carma-ffi --profile ffi --no-default-features` (the `ffi`
//! profile has `panic = "abort"`), and link with `--gc-sections`;
//! `examples/c/README.md` shows the use and `tests/c_example.rs` compiles the
//! C examples against that build and checks them bit for bit.
//!
//! Every function returns an error code (`CARMA_OK` = 0, negative on error;
//! [`carma_error_message`] turns one into a static message) and checks its
//! pointers, lengths and alignment before touching them, so that null
//! pointers, short or misaligned buffers and bad bundles are errors, not
//! undefined behaviour. What the C side must still guarantee (no language can
//! check it): a non-null pointer points to as many valid elements as its
//! length says, and the bundle's bytes stay alive and unchanged while a
//! model opened on them is used.
//!
//! All the `unsafe` of the project is in this crate: turning C pointers into
//! slices and references, and storing the decoded bundle in the caller's
//! `CarmaModel`. Each block says why it is sound.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use carma_core::{Bundle, Error, FeatureSet, Kind, Limits, Options, Refine, Status};

#[cfg(not(feature = "std"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // carma-core does not panic on any input (its fuzz and hostile-bundle
    // tests check it); this is only reached on a bug, and a C caller cannot
    // unwind, so stop.
    loop {}
}

/// Success.
pub const CARMA_OK: i32 = 0;
/// A required pointer was null.
pub const CARMA_ERR_NULL: i32 = -1;
/// A buffer is shorter than the operation needs (see the function's docs).
pub const CARMA_ERR_TOO_SMALL: i32 = -2;
/// A pointer is not aligned for its element type.
pub const CARMA_ERR_MISALIGNED: i32 = -3;
/// The bytes are not a bundle this build can read (magic, version, CRC, truncation).
pub const CARMA_ERR_FORMAT: i32 = -4;
/// The bundle decodes but is not a consistent model.
pub const CARMA_ERR_INVALID_BUNDLE: i32 = -5;
/// An argument is wrong: a length, a non-finite input, a binary feature not 0 or 1, a bad limit.
pub const CARMA_ERR_INPUT: i32 = -6;
/// The bundle has no CARMA networks (a flow and classifier only).
pub const CARMA_ERR_NO_CARMA: i32 = -7;
/// A result overflowed although every input was finite (an input far outside the training range).
pub const CARMA_ERR_NOT_FINITE: i32 = -8;
/// The model handle was never opened with `carma_open` (or was overwritten).
pub const CARMA_ERR_NOT_OPEN: i32 = -9;
/// A feature index is out of range.
pub const CARMA_ERR_INDEX: i32 = -10;

/// The recommendation is the person as they are: already accepted.
pub const CARMA_STATUS_ALREADY_ACCEPTED: u8 = 0;
/// The counterfactual is accepted: the change is the advice.
pub const CARMA_STATUS_RECOMMENDED: u8 = 1;
/// No accepted recommendation within the limits; not advice.
pub const CARMA_STATUS_NONE_WITHIN_LIMITS: u8 = 2;
/// The networks' recommendation is not accepted; not advice.
pub const CARMA_STATUS_NOT_REACHED: u8 = 3;

/// A feature that takes any real value.
pub const CARMA_KIND_CONTINUOUS: u8 = 0;
/// A feature that is 0 or 1.
pub const CARMA_KIND_BINARY: u8 = 1;
/// A feature whose values are multiples of its step.
pub const CARMA_KIND_INTEGER: u8 = 2;
/// A feature that takes one of its levels, coded 0, 1, ...
pub const CARMA_KIND_CATEGORICAL: u8 = 3;

/// The words of a [`CarmaModel`]: room for a decoded bundle and a tag.
pub const CARMA_MODEL_WORDS: usize = 128;

/// Caller-owned storage for an opened bundle (declare one, on the stack or
/// statically, and pass it to `carma_open`). Opaque: its content is only
/// meaningful to this library. It borrows the bundle's bytes.
#[repr(C)]
pub struct CarmaModel {
    /// Opaque storage.
    pub opaque: [u64; CARMA_MODEL_WORDS],
}

/// The bundle stored in a [`CarmaModel`], behind a tag written last.
#[repr(C)]
struct Opened {
    tag: u64,
    bundle: Bundle<'static>,
}

const TAG: u64 = 0x6361_726d_615f_6f6b; // "carma_ok"

const _: () = assert!(size_of::<Opened>() <= size_of::<CarmaModel>());
const _: () = assert!(align_of::<Opened>() <= align_of::<CarmaModel>());

/// Metadata of one feature.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CarmaFeatureInfo {
    /// 1 if a recommendation may change the feature directly.
    pub actionable: u8,
    /// 1 if the feature only takes the values 0 and 1.
    pub binary: u8,
    /// 0 any direction, 1 only up, 2 only down.
    pub direction: u8,
    /// One of the `CARMA_KIND_*` values.
    pub kind: u8,
    /// The number of levels of a categorical feature (0 otherwise); their
    /// names come from `carma_level_name`.
    pub levels: u32,
    /// The grid step of an integer feature (1 for a categorical one, 0
    /// otherwise): recommended values are multiples of it.
    pub step: f32,
    /// Lowest value a recommendation may set (original units).
    pub min: f32,
    /// Highest value a recommendation may set (original units).
    pub max: f32,
    /// The scaler's mean.
    pub mean: f32,
    /// The scaler's standard deviation.
    pub std: f32,
}

/// Options of one request. Zero-initialize it (`CarmaRequest r = {0};`)
/// for the networks' answer with no refinement and no limits, or start from
/// `carma_request_default` for what the `carma` command does.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CarmaRequest {
    /// Bit `i` set: feature `i` may not be acted on directly.
    pub forbid: u64,
    /// 1: refine the proposal (drop, shrink, keep `min_prob`); 0: as proposed.
    pub refine: u8,
    /// Bisection steps of refinement.
    pub refine_steps: u8,
    /// Probability a refined recommendation keeps, in [0.5, 1].
    pub min_prob: f32,
    /// Safety margin on the size of a refined change (fraction of itself).
    pub slack: f32,
    /// Null, or one lower bound per feature (`-INFINITY` for none).
    pub min: *const f32,
    /// Null, or one upper bound per feature (`INFINITY` for none).
    pub max: *const f32,
    /// Bit `i` set: feature `i` may only be raised.
    pub increase: u64,
    /// Bit `i` set: feature `i` may only be lowered.
    pub decrease: u64,
    /// At most this many changed features; 0 or negative for no limit (so
    /// that a zeroed request has none).
    pub max_changes: i32,
}

/// The outcome of one recommendation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct CarmaResult {
    /// Bit `i` set: feature `i` is changed directly.
    pub mask: u64,
    /// Probability of acceptance before.
    pub prob_before: f32,
    /// Probability of acceptance of the counterfactual.
    pub prob_after: f32,
    /// Cost of the recommendation (docs/MATH.md).
    pub cost: f32,
    /// Cost before refinement.
    pub cost_unrefined: f32,
    /// 1 if the counterfactual is accepted.
    pub accepted: u8,
    /// 1 if the person was accepted as they are.
    pub already_accepted: u8,
    /// 1 if refinement changed the proposal.
    pub refined: u8,
    /// One of the `CARMA_STATUS_*` values.
    pub status: u8,
    /// 1 if the maximum number of changes left some out.
    pub max_changes_bound: u8,
    /// Bit `i` set: a bound or direction held feature `i` back.
    pub bound_by_limit: u64,
    /// Bit `i` set: the input's feature `i` is outside the bundle's bounds.
    pub out_of_range: u64,
}

fn code(e: &Error) -> i32 {
    match e {
        Error::Format(_) => CARMA_ERR_FORMAT,
        Error::Validation(_) => CARMA_ERR_INVALID_BUNDLE,
        Error::Input(_) => CARMA_ERR_INPUT,
        Error::NoCarma => CARMA_ERR_NO_CARMA,
        Error::NotFinite(_) => CARMA_ERR_NOT_FINITE,
        _ => CARMA_ERR_INPUT,
    }
}

/// The library's version: `major * 10000 + minor * 100 + patch`.
#[unsafe(no_mangle)]
pub extern "C" fn carma_version() -> u32 {
    const fn num(s: &str) -> u32 {
        let b = s.as_bytes();
        let mut i = 0;
        let mut n = 0;
        while i < b.len() {
            n = n * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        n
    }
    num(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + num(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + num(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The newest bundle format version this library reads (it reads 3 and 4).
#[unsafe(no_mangle)]
pub extern "C" fn carma_format_version() -> u32 {
    carma_core::format::FORMAT_VERSION as u32
}

/// A static, NUL-terminated message for an error code (never null).
#[unsafe(no_mangle)]
pub extern "C" fn carma_error_message(code: i32) -> *const c_char {
    let s: &'static core::ffi::CStr = match code {
        CARMA_OK => c"ok",
        CARMA_ERR_NULL => c"a required pointer is null",
        CARMA_ERR_TOO_SMALL => c"a buffer is too small",
        CARMA_ERR_MISALIGNED => c"a pointer is misaligned for its element type",
        CARMA_ERR_FORMAT => {
            c"not a carma bundle this build can read (magic, version, checksum or truncation)"
        }
        CARMA_ERR_INVALID_BUNDLE => c"the bundle decodes but is not a consistent model",
        CARMA_ERR_INPUT => {
            c"bad argument: a length, a non-finite value, a binary feature not 0 or 1, or a bad limit"
        }
        CARMA_ERR_NO_CARMA => c"the bundle has no CARMA networks",
        CARMA_ERR_NOT_FINITE => {
            c"a result overflowed: the input is far outside what the model was trained on"
        }
        CARMA_ERR_NOT_OPEN => c"the model was not opened with carma_open",
        CARMA_ERR_INDEX => c"feature index out of range",
        _ => c"unknown error code",
    };
    s.as_ptr()
}

/// `CARMA_ERR_NULL` for a null `ptr`, `CARMA_ERR_MISALIGNED` for one not
/// aligned for `T`.
fn check<T>(ptr: *const T) -> Result<(), i32> {
    if ptr.is_null() {
        Err(CARMA_ERR_NULL)
    } else if (ptr as usize) % align_of::<T>() != 0 {
        Err(CARMA_ERR_MISALIGNED)
    } else {
        Ok(())
    }
}

/// A slice of `len` `T`s at `ptr`, after checking null and alignment.
///
/// # Safety
/// If non-null and aligned, `ptr` must point to `len` valid `T`s that are
/// not written during `'a` (the C caller's side of the contract).
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], i32> {
    check(ptr)?;
    // SAFETY: non-null and aligned, checked above; validity of `len`
    // elements is the caller's contract stated in the docs.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// [`slice`], mutable.
///
/// # Safety
/// As for [`slice`], and the memory is not read or written elsewhere during `'a`.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], i32> {
    check(ptr)?;
    // SAFETY: as in `slice`; exclusivity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The bundle in an opened model.
///
/// # Safety
/// `model`, if non-null, points to a `CarmaModel` (the type's alignment and
/// size are the C caller's to respect, as for any struct they declare).
unsafe fn opened<'m>(model: *const CarmaModel) -> Result<&'m Bundle<'static>, i32> {
    check(model)?;
    // SAFETY: `model` is a non-null, aligned `CarmaModel`; its first word is
    // plain `u64` data, readable whatever the storage holds.
    let tag = unsafe { (*model).opaque[0] };
    if tag != TAG {
        return Err(CARMA_ERR_NOT_OPEN);
    }
    // SAFETY: the tag is only written by `carma_open`, after it has written a
    // valid `Opened` at this address (size and alignment checked at compile
    // time), so the storage holds one.
    Ok(unsafe { &(*(model as *const Opened)).bundle })
}

/// Writes `f` of the opened model's bundle to `*out`: the shape of every
/// one-value query.
///
/// # Safety
/// `model` points to a `CarmaModel`; `out` to a writable `T`.
unsafe fn query<T>(
    model: *const CarmaModel,
    out: *mut T,
    f: impl FnOnce(&Bundle<'static>) -> Result<T, i32>,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let bundle = unsafe { opened(model)? };
        // SAFETY: the caller's contract; one element.
        let out = unsafe { slice_mut(out, 1)? };
        out[0] = f(bundle)?;
        Ok(())
    })
}

/// Runs `f`, turning its error into the code.
fn status(f: impl FnOnce() -> Result<(), i32>) -> i32 {
    match f() {
        Ok(()) => CARMA_OK,
        Err(c) => c,
    }
}

/// Validates the bundle in `bytes[0..len]` and opens it into `model`
/// without copying. The bytes must stay alive and unchanged while `model`
/// is used. On error `model` is left not open.
///
/// # Safety
/// `bytes` points to `len` readable bytes; `model` points to a writable
/// `CarmaModel`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_open(bytes: *const u8, len: usize, model: *mut CarmaModel) -> i32 {
    status(|| {
        check(model.cast_const())?;
        // SAFETY: non-null and aligned `CarmaModel`, writable by contract;
        // clearing the tag first means a failed open leaves it not open.
        unsafe { (*model).opaque[0] = 0 };
        // SAFETY: the bytes are the caller's, alive while the model is used
        // (the documented contract, which is what lets the lifetime be
        // 'static on this side).
        let bytes: &'static [u8] = unsafe { slice(bytes, len)? };
        let bundle = Bundle::new(bytes).map_err(|e| code(&e))?;
        // SAFETY: `Opened` fits in `CarmaModel` and needs no more alignment
        // (asserted at compile time); the storage is writable and owned by
        // the caller; `write` does not read or drop the old content.
        unsafe { core::ptr::write(model as *mut Opened, Opened { tag: 0, bundle }) };
        // SAFETY: as above; the tag goes last, so it marks a complete write.
        unsafe { (*model).opaque[0] = TAG };
        Ok(())
    })
}

/// The number of features `D` of an opened model into `*out`.
///
/// # Safety
/// `model` points to a `CarmaModel`; `out` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_n_features(model: *const CarmaModel, out: *mut usize) -> i32 {
    // SAFETY: the function's contract is `query`'s.
    unsafe { query(model, out, |bundle| Ok(bundle.n_features())) }
}

/// The number of `float`s of scratch a recommendation needs, into `*out`.
///
/// # Safety
/// `model` points to a `CarmaModel`; `out` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_scratch_len(model: *const CarmaModel, out: *mut usize) -> i32 {
    // SAFETY: the function's contract is `query`'s.
    unsafe { query(model, out, |bundle| Ok(bundle.scratch_len())) }
}

/// Feature `i`'s name (UTF-8, not NUL-terminated, borrowed from the
/// bundle's bytes) into `*name` and `*name_len`.
///
/// # Safety
/// `model` points to a `CarmaModel`; `name` and `name_len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_feature_name(
    model: *const CarmaModel,
    i: usize,
    name: *mut *const u8,
    name_len: *mut usize,
) -> i32 {
    // SAFETY: the function's contract is `text`'s.
    unsafe { text(model, name, name_len, |bundle| bundle.feature_name(i)) }
}

/// A string of the bundle (`find` gives it, or `None` for an index out of
/// range) into `*name` and `*name_len`.
///
/// # Safety
/// `model` points to a `CarmaModel`; `name` and `name_len` are writable.
unsafe fn text(
    model: *const CarmaModel,
    name: *mut *const u8,
    name_len: *mut usize,
    find: impl FnOnce(&Bundle<'static>) -> Option<&'static str>,
) -> i32 {
    status(|| {
        // SAFETY: the function's contract.
        let bundle = unsafe { opened(model)? };
        // SAFETY: the function's contract; one element each.
        let (name, name_len) = unsafe { (slice_mut(name, 1)?, slice_mut(name_len, 1)?) };
        let s = find(bundle).ok_or(CARMA_ERR_INDEX)?;
        name[0] = s.as_ptr();
        name_len[0] = s.len();
        Ok(())
    })
}

/// The name of level `code` of categorical feature `i` (UTF-8, not
/// NUL-terminated, borrowed from the bundle's bytes) into `*name` and
/// `*name_len`; `CARMA_ERR_INDEX` if `i` is not categorical or `code` is
/// not below its `levels` (`carma_feature_info`).
///
/// # Safety
/// `model` points to a `CarmaModel`; `name` and `name_len` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_level_name(
    model: *const CarmaModel,
    i: usize,
    code: usize,
    name: *mut *const u8,
    name_len: *mut usize,
) -> i32 {
    // SAFETY: the function's contract is `text`'s.
    unsafe { text(model, name, name_len, |bundle| bundle.level_name(i, code)) }
}

/// Feature `i`'s metadata into `*info`.
///
/// # Safety
/// `model` points to a `CarmaModel`; `info` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_feature_info(
    model: *const CarmaModel,
    i: usize,
    info: *mut CarmaFeatureInfo,
) -> i32 {
    // SAFETY: the function's contract is `query`'s.
    unsafe {
        query(model, info, |bundle| {
            let (min, max) = bundle.bounds(i).ok_or(CARMA_ERR_INDEX)?;
            let (kind, levels, step) = match bundle.kind(i) {
                Kind::Continuous => (CARMA_KIND_CONTINUOUS, 0, 0.0),
                Kind::Binary => (CARMA_KIND_BINARY, 0, 0.0),
                Kind::Integer { step } => (CARMA_KIND_INTEGER, 0, step),
                Kind::Categorical { levels } => (CARMA_KIND_CATEGORICAL, levels as u32, 1.0),
            };
            Ok(CarmaFeatureInfo {
                actionable: bundle.is_actionable(i) as u8,
                binary: bundle.is_binary(i) as u8,
                // The bundle's own wire byte: 0 any, 1 only up, 2 only down.
                direction: bundle.direction(i).to_byte(),
                kind,
                levels,
                step,
                min,
                max,
                mean: bundle.mean(i).ok_or(CARMA_ERR_INDEX)?,
                std: bundle.std(i).ok_or(CARMA_ERR_INDEX)?,
            })
        })
    }
}

/// What the `carma` command does: refinement with its defaults, no limits.
#[unsafe(no_mangle)]
pub extern "C" fn carma_request_default() -> CarmaRequest {
    CarmaRequest {
        forbid: 0,
        refine: 1,
        refine_steps: Refine::DEFAULT.steps,
        min_prob: Refine::DEFAULT.min_prob,
        slack: Refine::DEFAULT.slack,
        min: core::ptr::null(),
        max: core::ptr::null(),
        increase: 0,
        decrease: 0,
        max_changes: -1,
    }
}

fn result(r: &carma_core::Recommendation) -> CarmaResult {
    CarmaResult {
        mask: r.mask.bits(),
        prob_before: r.prob_before,
        prob_after: r.prob_after,
        cost: r.cost,
        cost_unrefined: r.cost_unrefined,
        accepted: r.accepted as u8,
        already_accepted: r.already_accepted as u8,
        refined: r.refined as u8,
        status: match r.status {
            Status::AlreadyAccepted => CARMA_STATUS_ALREADY_ACCEPTED,
            Status::Recommended => CARMA_STATUS_RECOMMENDED,
            Status::NoneWithinLimits => CARMA_STATUS_NONE_WITHIN_LIMITS,
            Status::NotReached => CARMA_STATUS_NOT_REACHED,
        },
        max_changes_bound: r.max_changes_bound as u8,
        bound_by_limit: r.bound_by_limit.bits(),
        out_of_range: r.out_of_range.bits(),
    }
}

/// One recommendation for `rows` people.
///
/// # Safety
/// As for [`carma_recommend_batch`].
unsafe fn recommend_rows(
    model: *const CarmaModel,
    x: *const f32,
    rows: usize,
    n: usize,
    request: *const CarmaRequest,
    x_cf: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
    results: *mut CarmaResult,
) -> Result<(), i32> {
    // SAFETY: the function's contract.
    let bundle = unsafe { opened(model)? };
    let d = bundle.n_features();
    if n != d {
        return Err(CARMA_ERR_INPUT);
    }
    let total = rows.checked_mul(d).ok_or(CARMA_ERR_INPUT)?;
    // SAFETY: the contract: `x` and `x_cf` hold rows * n floats, `results`
    // rows results, `scratch` scratch_len floats, none overlapping.
    let (x, x_cf, results, scratch) = unsafe {
        (
            slice(x, total)?,
            slice_mut(x_cf, total)?,
            slice_mut(results, rows)?,
            slice_mut(scratch, scratch_len)?,
        )
    };
    if scratch.len() < bundle.scratch_len() {
        return Err(CARMA_ERR_TOO_SMALL);
    }
    let options = if request.is_null() {
        None
    } else {
        // SAFETY: non-null: the contract says it points to a request.
        let r = unsafe { slice(request, 1)? }[0];
        // SAFETY: the bounds, when given, hold one float per feature.
        let min = if r.min.is_null() {
            &[][..]
        } else {
            unsafe { slice(r.min, d)? }
        };
        // SAFETY: as above.
        let max = if r.max.is_null() {
            &[][..]
        } else {
            unsafe { slice(r.max, d)? }
        };
        let max_changes = match r.max_changes {
            c if c <= 0 => None,
            c => Some(u8::try_from(c).unwrap_or(u8::MAX)),
        };
        let refine = (r.refine != 0).then_some(Refine {
            min_prob: r.min_prob,
            steps: r.refine_steps,
            slack: r.slack,
        });
        let mut o = Options::new(FeatureSet::from_bits(r.forbid), refine);
        o.limits = Limits {
            min,
            max,
            increase: FeatureSet::from_bits(r.increase),
            decrease: FeatureSet::from_bits(r.decrease),
            max_changes,
        };
        Some(o)
    };
    for ((xr, cf), out) in x.chunks_exact(d).zip(x_cf.chunks_exact_mut(d)).zip(results) {
        let rec = match &options {
            None => bundle.recommend(xr, FeatureSet::EMPTY, cf, scratch),
            Some(o) => bundle.recommend_with(xr, o, cf, scratch),
        }
        .map_err(|e| code(&e))?;
        *out = result(&rec);
    }
    Ok(())
}

/// A recommendation for one person: `x` holds the `n` feature values
/// (`n` = `carma_n_features`), `x_cf` receives the counterfactual (`n`
/// floats), `scratch` holds at least `carma_scratch_len` floats, `*result`
/// the outcome. A null `request` gives the networks' answer as it is (no
/// refinement, no limits: the golden fixtures' `recommend`).
///
/// # Safety
/// Every non-null pointer points to as many valid, non-overlapping elements
/// as stated; `model` to a `CarmaModel`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_recommend(
    model: *const CarmaModel,
    x: *const f32,
    n: usize,
    request: *const CarmaRequest,
    x_cf: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
    result: *mut CarmaResult,
) -> i32 {
    // SAFETY: the same contract, with one row.
    status(|| unsafe {
        recommend_rows(model, x, 1, n, request, x_cf, scratch, scratch_len, result)
    })
}

/// [`carma_recommend`] for `rows` people: `x` and `x_cf` hold `rows * n`
/// floats row after row, `results` `rows` results. Stops at the first row
/// that fails and returns its code (earlier rows' outputs are written).
///
/// # Safety
/// As for [`carma_recommend`], with `rows` rows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carma_recommend_batch(
    model: *const CarmaModel,
    x: *const f32,
    rows: usize,
    n: usize,
    request: *const CarmaRequest,
    x_cf: *mut f32,
    scratch: *mut f32,
    scratch_len: usize,
    results: *mut CarmaResult,
) -> i32 {
    // SAFETY: the function's contract is `recommend_rows`'s.
    status(|| unsafe {
        recommend_rows(
            model,
            x,
            rows,
            n,
            request,
            x_cf,
            scratch,
            scratch_len,
            results,
        )
    })
}
