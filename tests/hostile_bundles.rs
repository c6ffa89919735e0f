//! Hostile model files (issue 7): every fixture bundle, truncated at every
//! length and corrupted in 100,000+ seeded ways (bit flips, byte inserts and
//! deletes, length-prefix and header-length corruptions, special numbers,
//! tag bytes, splices), with the CRC left as is and recomputed. Decoding must
//! return `Ok` or a typed error and never panic; whatever decodes runs every
//! operation on a few inputs (including values far outside any training
//! range) and must give finite results or a typed error.
//!
//! The long run (`hostile_bundles_long_run`, ignored) draws as many random
//! mutations as `CARMA_HOSTILE_MUTATIONS` asks (default 10,000,000), or stops
//! after `CARMA_HOSTILE_SECONDS`; see docs/RELIABILITY.md.

mod hostile;

use std::time::{Duration, Instant};

use carma_core::format::{HEADER_LEN, TRAILER_LEN};
use carma_train::import::{ScalerChoice, import_reference_json};
use carma_train::pipeline::{NoProgress, PipelineConfig, train_simulated};
use carma_train::scm::Dataset;
use hostile::{Fixture, Mutation, Tally, random_mutation, run_one};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Random mutations per fixture in the bounded test (on top of the
/// exhaustive truncations and single-bit flips of the small fixture).
const RANDOM_PER_FIXTURE: u64 = 25_000;
/// Issue 7: at least this many mutations in total.
const MIN_TOTAL: u64 = 100_000;
/// No single decode-and-exercise may take this long (a loop, or work out of
/// proportion to the file size).
const MAX_ONE: Duration = Duration::from_secs(2);

fn root(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The bundles under attack: the freestanding fixture (flow, classifier,
/// CARMA), a tiny trained Loan model, and the paper's imported Loan and
/// triangle-LIN flows (no CARMA).
fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    let path = root("fixtures/freestanding/bundle.carma");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    out.push(Fixture::new("freestanding", bytes));
    let trained = train_simulated(
        Dataset::Loan,
        &PipelineConfig::tiny(Dataset::Loan),
        &mut NoProgress,
    )
    .expect("tiny Loan pipeline trains");
    out.push(Fixture::new(
        "trained-loan-tiny",
        trained.trained.to_bytes().expect("exports"),
    ));
    for name in ["loan", "trianglesens_linear"] {
        let path = root(&format!("fixtures/reference/{name}_flow.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let spec = import_reference_json(&text, ScalerChoice::Recourse).expect("imports");
        out.push(Fixture::new(
            &format!("reference-{name}"),
            spec.to_bytes().expect("exports"),
        ));
    }
    out
}

fn seed() -> u64 {
    std::env::var("CARMA_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

fn finish(tally: &Tally) {
    println!("{}", tally.report());
    let shown: Vec<&String> = tally.failures.iter().take(20).collect();
    assert!(
        tally.failures.is_empty(),
        "{} failures (seed {}), first ones:\n{}",
        tally.failures.len(),
        seed(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        tally.slowest.0 < MAX_ONE,
        "slowest mutation took {:?}: {}",
        tally.slowest.0,
        tally.slowest.1
    );
}

#[test]
fn every_fixture_survives_100k_mutations() {
    let fixtures = fixtures();
    let mut tally = Tally::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    for f in &fixtures {
        let mut index = 0u64;
        let mut run = |m: Mutation, rng: &mut ChaCha8Rng, tally: &mut Tally| {
            run_one(f, &m, index, rng, tally);
            index += 1;
        };
        // The unmutated bundle decodes and passes the same checks.
        run(
            Mutation::SetBodyBytes { edits: vec![] },
            &mut rng,
            &mut tally,
        );
        // Truncations at every length, raw and reframed.
        for len in 0..f.bytes.len() {
            run(Mutation::Truncate { len }, &mut rng, &mut tally);
        }
        for len in 0..f.body().len() {
            run(Mutation::TruncateBody { len }, &mut rng, &mut tally);
        }
        // Every length prefix set to every small value and to huge ones.
        for &(field, _, _, len) in &f.varints.clone() {
            let values = (0..=(len as u64 + 8).min(80)).chain([
                len as u64 * 2,
                f.body().len() as u64,
                u64::from(u32::MAX),
                u64::MAX,
            ]);
            for value in values {
                run(Mutation::Varint { field, value }, &mut rng, &mut tally);
            }
        }
        // The smallest fixture: every single bit, with and without the CRC.
        if f.name == "freestanding" {
            for bit in 0..8 * f.bytes.len() {
                run(Mutation::FlipBits { bits: vec![bit] }, &mut rng, &mut tally);
            }
            for bit in 0..8 * f.body().len() {
                run(
                    Mutation::FlipBodyBits { bits: vec![bit] },
                    &mut rng,
                    &mut tally,
                );
            }
        }
        for _ in 0..RANDOM_PER_FIXTURE {
            let m = random_mutation(f, &mut rng);
            run(m, &mut rng, &mut tally);
        }
    }
    assert!(
        tally.mutations >= MIN_TOTAL,
        "only {} mutations",
        tally.mutations
    );
    assert!(
        tally.accepted > 1000,
        "too few mutations decode Ok ({}): the operations are barely exercised",
        tally.accepted
    );
    finish(&tally);
}

/// The fixtures agree with what the engine assumes about the layout.
#[test]
fn fixture_layouts_are_located() {
    for f in fixtures() {
        assert!(f.varints.len() >= 14, "{}", f.name);
        assert!(!f.floats.is_empty() && !f.tags.is_empty(), "{}", f.name);
        assert_eq!(
            f.body().len() + HEADER_LEN + TRAILER_LEN,
            f.bytes.len(),
            "{}",
            f.name
        );
        // Unmutated, the bundle reframes to itself.
        assert_eq!(hostile::frame(f.body()), f.bytes, "{}", f.name);
    }
}

#[test]
#[ignore = "long run: minutes; see docs/RELIABILITY.md"]
fn hostile_bundles_long_run() {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u64>().ok());
    let total = env("CARMA_HOSTILE_MUTATIONS").unwrap_or(10_000_000);
    let limit = env("CARMA_HOSTILE_SECONDS").map(Duration::from_secs);
    let threads = env("CARMA_HOSTILE_THREADS").unwrap_or(1).max(1);
    let fixtures = fixtures();
    let start = Instant::now();
    // Thread `t` runs mutations t, t + threads, ... with its own stream
    // (seed + t), so a failure's index and seed replay it.
    let tallies: Vec<(u64, Tally)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let fixtures = &fixtures;
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    let mut rng = ChaCha8Rng::seed_from_u64(seed() + t);
                    let mut done = 0u64;
                    for i in (t..total).step_by(threads as usize) {
                        let f = &fixtures[(i % fixtures.len() as u64) as usize];
                        let m = random_mutation(f, &mut rng);
                        run_one(f, &m, i, &mut rng, &mut tally);
                        done += 1;
                        if t == 0 && done.is_multiple_of(1_000_000 / threads) {
                            eprintln!(
                                "~{} mutations, {} failures so far, {:?}",
                                done * threads,
                                tally.failures.len(),
                                start.elapsed()
                            );
                        }
                        if limit.is_some_and(|l| start.elapsed() >= l) {
                            break;
                        }
                    }
                    (done, tally)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut tally = Tally::default();
    let mut done = 0;
    for (n, t) in tallies {
        done += n;
        tally.merge(t);
    }
    println!(
        "long run: {done} mutations on {threads} thread(s) in {:?}",
        start.elapsed()
    );
    finish(&tally);
}
