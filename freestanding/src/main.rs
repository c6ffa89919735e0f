//! A freestanding program that proves `carma-core` needs neither `std`,
//! `alloc` nor libc: no standard library, no C runtime, its own `_start`,
//! its own panic handler, and the `exit` system call.
//!
//! It embeds a bundle and a table of inputs with the exact bits `recommend`
//! must return (both written by
//! `cargo run -p carma-core --example freestanding_fixture`), runs every case
//! and exits 0 only if every output matches. Build and run with `run.sh`.
//!
//! Every case is then refined (`recommend_with`, the default `Refine`) and
//! checked against the refinement's guarantees: deterministic, the margin
//! kept, never costlier than a proposal that reached the margin, only
//! features of the proposal; and the proposal's values, applied as hard
//! interventions (`intervene`), are taken exactly. With per-request limits
//! (every feature only raised, at most one change) every recommended value
//! stays in the bundle's bounds, never goes down, and at most one feature
//! changes; `recommend_alternatives` gives accepted answers that change
//! different sets of features.
//!
//! Exit codes: 0 all cases match; 2 the bundle does not load; 3 the bundle
//! and the cases disagree on the number of features; 4 the scratch buffer is
//! too small; 5 `recommend` returned an error; 6 `recommend_with` or
//! `intervene` returned an error; 10 + k case k differs; 200 + k case k's
//! refinement breaks a guarantee; 101 panic.
#![no_std]
#![no_main]

use carma_core::{Bundle, FeatureSet, Limits, Options, Refine};

/// The embedded model. To embed another bundle, change this path and the
/// `cases` path below, then regenerate the cases for it with
/// `cargo run -p carma-core --example freestanding_fixture -- --bundle PATH`.
static BUNDLE: &[u8] = include_bytes!("../../fixtures/freestanding/bundle.carma");

/// One input and the outputs `recommend` must give, as `f32` bit patterns.
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

/// Scratch room, in `f32` values, on the stack (a Loan-sized model needs 92).
const SCRATCH: usize = 4096;

/// Runs every case and returns the process exit code.
fn run() -> i32 {
    let Ok(bundle) = Bundle::new(BUNDLE) else {
        return 2;
    };
    if bundle.n_features() != cases::N_FEATURES {
        return 3;
    }
    let mut buf = [0.0f32; SCRATCH];
    let Some(scratch) = buf.get_mut(..bundle.scratch_len()) else {
        return 4;
    };
    for (k, case) in cases::CASES.iter().enumerate() {
        let x = case.x.map(f32::from_bits);
        let mut x_cf = [0.0f32; cases::N_FEATURES];
        let forbid = FeatureSet::from_bits(case.forbid);
        let Ok(rec) = bundle.recommend(&x, forbid, &mut x_cf, scratch) else {
            return 5;
        };
        let same = rec.mask.bits() == case.mask
            && rec.prob_before.to_bits() == case.prob_before
            && rec.prob_after.to_bits() == case.prob_after
            && rec.cost.to_bits() == case.cost
            && rec.accepted == case.accepted
            && rec.already_accepted == case.already_accepted
            && x_cf.map(f32::to_bits) == case.x_cf;
        if !same {
            return 10 + k as i32;
        }
        if let Some(code) = check_refined(&bundle, &x, forbid, &rec, &x_cf, scratch) {
            return code.map_or(200 + k as i32, |c| c);
        }
    }
    write(b"freestanding: every recommendation matches\n");
    0
}

/// Checks case `x`'s refinement and its hard interventions: `None` if every
/// guarantee holds, `Some(None)` if one fails, `Some(Some(6))` on an error.
fn check_refined(
    bundle: &Bundle<'_>,
    x: &[f32; cases::N_FEATURES],
    forbid: FeatureSet,
    rec: &carma_core::Recommendation,
    x_cf: &[f32; cases::N_FEATURES],
    scratch: &mut [f32],
) -> Option<Option<i32>> {
    let options = Options::new(forbid, Some(Refine::DEFAULT));
    let (mut a, mut b) = ([0.0f32; cases::N_FEATURES], [0.0f32; cases::N_FEATURES]);
    let (Ok(ra), Ok(rb)) = (
        bundle.recommend_with(x, &options, &mut a, scratch),
        bundle.recommend_with(x, &options, &mut b, scratch),
    ) else {
        return Some(Some(6));
    };
    let min_prob = Refine::DEFAULT.min_prob;
    // The bundle's bounds may clip the proposal (then `bound_by_limit` says
    // so and the clipped proposal is the starting point); otherwise the
    // starting point is the networks' proposal, bit for bit.
    let clipped = !ra.bound_by_limit.is_empty();
    let in_bounds = ra.mask.iter().all(|k| {
        let (lo, hi) = bundle
            .bounds(k)
            .unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        a.get(k).is_some_and(|&v| lo <= v && v <= hi)
    });
    let ok = ra == rb
        && a.map(f32::to_bits) == b.map(f32::to_bits)
        && in_bounds
        && (clipped || ra.cost_unrefined.to_bits() == rec.cost.to_bits())
        && ra.mask.difference(rec.mask).is_empty()
        && (!ra.refined || ra.prob_after >= min_prob)
        && (!ra.refined || clipped || rec.prob_after < min_prob || ra.cost <= rec.cost);
    if !ok {
        return Some(None);
    }
    // The proposal's values as hard interventions: taken exactly.
    let (mut x_std, mut values, mut out) = (
        [0.0f32; cases::N_FEATURES],
        [0.0f32; cases::N_FEATURES],
        [0.0f32; cases::N_FEATURES],
    );
    if rec.already_accepted
        || bundle.standardize(x, &mut x_std).is_err()
        || bundle.standardize(x_cf, &mut values).is_err()
    {
        return None;
    }
    if bundle
        .intervene(&x_std, rec.mask, &values, &mut out, scratch)
        .is_err()
    {
        return Some(Some(6));
    }
    if rec.mask.iter().any(|k| out.get(k) != values.get(k)) {
        return Some(None);
    }
    // Per-request limits: only raise, at most one change.
    let limited = Options {
        limits: Limits {
            increase: FeatureSet::first(cases::N_FEATURES).intersection(bundle.actionable()),
            max_changes: Some(1),
            ..Limits::NONE
        },
        ..options
    };
    let mut c = [0.0f32; cases::N_FEATURES];
    let Ok(rl) = bundle.recommend_with(x, &limited, &mut c, scratch) else {
        return Some(Some(6));
    };
    let holds = rl.mask.len() <= 1
        && rl.mask.iter().all(|k| {
            let (lo, hi) = bundle
                .bounds(k)
                .unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
            matches!((c.get(k), x.get(k)), (Some(&v), Some(&x0)) if lo <= v && v <= hi && v > x0)
        });
    if !holds {
        return Some(None);
    }
    // Alternatives: accepted, each a different set of features.
    let mut rows = [0.0f32; 3 * cases::N_FEATURES];
    let mut recs = [None; 3];
    let Ok(n) = bundle.recommend_alternatives(x, &options, &mut rows, &mut recs, scratch) else {
        return Some(Some(6));
    };
    for i in 1..n {
        let (Some(Some(r)), Some(Some(p))) = (recs.get(i), recs.get(i - 1)) else {
            return Some(None);
        };
        if !r.accepted
            || r.mask == p.mask
            || recs.first().copied().flatten().map(|f| f.mask) == Some(r.mask)
        {
            return Some(None);
        }
    }
    None
}

/// The `write` system call (number 1 on x86_64 Linux) to standard output.
fn write(msg: &[u8]) {
    // SAFETY: write(2) reads `msg.len()` bytes from a valid slice; the kernel
    // clobbers rcx and r11 only, and the return value lands in rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") 1usize => _,
            in("rdi") 1usize,
            in("rsi") msg.as_ptr(),
            in("rdx") msg.len(),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, readonly),
        );
    }
}

/// The `exit` system call (number 60 on x86_64 Linux).
fn exit(code: i32) -> ! {
    // SAFETY: exit(2) does not return.
    unsafe {
        core::arch::asm!("syscall", in("rax") 60usize, in("rdi") code as isize, options(noreturn, nostack));
    }
}

// The kernel enters `_start` with rsp 16-byte aligned and no return address;
// align it again and call into Rust with the ABI's usual stack layout.
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

extern "C" fn entry() -> ! {
    exit(run())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(101)
}

/// The precompiled `core` refers to the unwinding personality; with
/// `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

// Without libc the linker asks for these. They are written with string
// instructions and volatile reads: a plain Rust loop could be compiled back
// into a call to the very function it implements.

/// `memcpy`: copies `n` bytes; the regions do not overlap.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both regions; `rep movsb` copies forward.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// `memmove`: copies `n` bytes; the regions may overlap.
///
/// # Safety
/// `dst` and `src` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: copying forward is correct when dst is below src or past its end.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: dst overlaps the tail of src: copy backward (direction flag set,
    // then cleared again as the ABI requires).
    unsafe {
        core::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
    dst
}

/// `memset`: fills `n` bytes with `c`.
///
/// # Safety
/// `dst` is valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the region.
    unsafe {
        core::arch::asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dst
}

/// `memcmp`: compares `n` bytes.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within both regions.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`: zero iff the `n` bytes are equal.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}
