//! A bounded load test of `carma serve` over loopback (docs/SERVING.md, "Performance"): requests
//! per second and p50/p99 latency for single-person requests and for batches of 100 at 1, 8 and
//! 64 concurrent clients, the server's resident memory before and after a soak of 10^6 requests,
//! and, in the same run, the in-process batch API (`Bundle::recommend_batch_with`) on the same
//! people as the baseline.
//!
//! ```text
//! cargo bench -p carma-cli --bench serve_load
//! CARMA_LOAD_SECONDS=1 CARMA_LOAD_SOAK=100000 cargo bench -p carma-cli --bench serve_load
//! ```
//!
//! The server is the `carma` built with this bench (`CARMA_BENCH_BIN` for another), started as
//! `carma serve --model fixtures/bench/loan.carma --addr 127.0.0.1:0 --workers 2 --log off`,
//! on loopback only. Each client is a thread with one keep-alive connection sending requests
//! back to back and timing each; the clients run on the same two cores as the server, so they
//! take a share of the CPU the numbers are measured with. Every stage stops by itself: after
//! `CARMA_LOAD_SECONDS` (default 3) per stage (`CARMA_LOAD_WORKERS` sets `--workers`), the soak after `CARMA_LOAD_SOAK` requests
//! (default 1,000,000) or 300 s, whichever comes first. The people are the 2,000 Loan test rows
//! of `fixtures/bench`, as JSON objects keyed by feature name, refined as `carma recommend` does
//! by default.

#[path = "../tests/support/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carma_core::{Bundle, FeatureSet, Options, Refine};
use http::Server;

static LOAN_MODEL: &[u8] = include_bytes!("../../fixtures/bench/loan.carma");
static LOAN_ROWS: &[u8] = include_bytes!("../../fixtures/bench/loan_test_rows.f32");
const FEATURES: [&str; 7] = [
    "gender",
    "age",
    "education",
    "loan_amount",
    "duration",
    "income",
    "savings",
];
/// The longest the soak may run, seconds.
const SOAK_SECONDS: u64 = 300;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rows() -> Vec<[f32; 7]> {
    LOAN_ROWS
        .chunks_exact(28)
        .map(|r| {
            std::array::from_fn(|i| f32::from_le_bytes(r[i * 4..i * 4 + 4].try_into().unwrap()))
        })
        .collect()
}

fn person(r: &[f32; 7]) -> String {
    let fields: Vec<String> = FEATURES
        .iter()
        .zip(r)
        .map(|(n, v)| format!("\"{n}\":{v}"))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The server's resident memory, kB (`VmRSS` of /proc/PID/status).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The server's own count and total time of recommend requests (from `/metrics`): the time
/// from a request's arrival to its answer inside the server, without the network and the
/// clients.
fn server_time(server: &Server) -> (f64, f64) {
    let text = server.client().get("/metrics").expect("metrics").text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("carma_http_request_duration_seconds_count{endpoint=\"/v1/recommend\"}"),
        value("carma_http_request_duration_seconds_sum{endpoint=\"/v1/recommend\"}"),
    )
}

/// One stage's figures.
struct Stage {
    requests: u64,
    seconds: f64,
    /// Latencies, nanoseconds, sorted.
    latencies: Vec<u64>,
}

impl Stage {
    fn quantile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let k = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[k] as f64 / 1000.0
    }
}

/// `clients` threads send `bodies` round-robin, each on its own connection, for `seconds` (or
/// until `max_requests` in all); every answer must be a 200. Latencies are kept when `keep`.
fn run(
    server: &Server,
    bodies: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    seconds: f64,
    max_requests: u64,
    keep: bool,
) -> Stage {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (bodies, stop, sent) = (Arc::clone(bodies), Arc::clone(&stop), Arc::clone(&sent));
            let mut client = server.client();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut k = c;
                while !stop.load(Ordering::Relaxed) {
                    if sent.fetch_add(1, Ordering::Relaxed) >= max_requests {
                        break;
                    }
                    let t = Instant::now();
                    let r = client
                        .post_json("/v1/recommend", &bodies[k % bodies.len()])
                        .expect("the server answers");
                    let ns = t.elapsed().as_nanos() as u64;
                    assert_eq!(r.status, 200, "{}", r.text());
                    if keep {
                        lat.push(ns);
                    }
                    k += clients;
                    if Instant::now() >= until {
                        break;
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut requests = 0;
    for t in threads {
        let l = t.join().expect("a client failed");
        requests += l.len() as u64;
        latencies.extend(l);
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    if !keep {
        requests = sent.load(Ordering::Relaxed).min(max_requests);
    }
    latencies.sort_unstable();
    Stage {
        requests,
        seconds,
        latencies,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs benches in test mode: skip.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let seconds = env_u64("CARMA_LOAD_SECONDS", 3) as f64;
    let soak = env_u64("CARMA_LOAD_SOAK", 1_000_000);
    let bin = std::env::var_os("CARMA_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_carma")));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bench/loan.carma");
    let rows = rows();

    // The baseline: the in-process batch API on the same people, one thread.
    let bundle = Bundle::new(LOAN_MODEL).expect("the bench model loads");
    let options = Options::new(
        FeatureSet::EMPTY,
        Some(Refine {
            min_prob: carma_core::recommend::DEFAULT_MIN_PROB,
            ..Refine::DEFAULT
        }),
    );
    let xs: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut out = vec![0.0; xs.len()];
    let mut results = vec![Err(carma_core::Error::NoCarma); rows.len()];
    let mut scratch = vec![0.0; bundle.scratch_len()];
    let t = Instant::now();
    let mut people = 0u64;
    while t.elapsed().as_secs_f64() < seconds {
        bundle
            .recommend_batch_with(&xs, &options, &mut out, &mut results, &mut scratch)
            .expect("batch");
        people += rows.len() as u64;
    }
    let in_process = people as f64 / t.elapsed().as_secs_f64();
    // And on two threads, each with half the rows and its own scratch.
    let half = rows.len() / 2 * 7;
    let t = Instant::now();
    let mut people = 0u64;
    while t.elapsed().as_secs_f64() < seconds {
        std::thread::scope(|scope| {
            let (bundle, options) = (&bundle, &options);
            for (x, (o, r)) in xs
                .chunks(half)
                .zip(out.chunks_mut(half).zip(results.chunks_mut(half / 7)))
            {
                scope.spawn(move || {
                    let mut scratch = vec![0.0; bundle.scratch_len()];
                    bundle
                        .recommend_batch_with(x, options, o, r, &mut scratch)
                        .expect("batch");
                });
            }
        });
        people += rows.len() as u64;
    }
    let in_process_2 = people as f64 / t.elapsed().as_secs_f64();

    let workers = env_u64("CARMA_LOAD_WORKERS", 2).to_string();
    let mut server = Server::start(&bin, &model, &["--workers", &workers, "--log", "off"]);
    let pid = server.pid();
    let single: Arc<Vec<Vec<u8>>> = Arc::new(
        rows.iter()
            .map(|r| format!("{{\"person\":{}}}", person(r)).into_bytes())
            .collect(),
    );
    let batches: Arc<Vec<Vec<u8>>> = Arc::new(
        rows.chunks(100)
            .map(|c| {
                let people: Vec<String> = c.iter().map(person).collect();
                format!("{{\"people\":[{}]}}", people.join(",")).into_bytes()
            })
            .collect(),
    );
    // Warm up: every body once.
    run(&server, &single, 2, 1.0, single.len() as u64, false);
    run(&server, &batches, 2, 1.0, batches.len() as u64, false);
    let rss_start = rss_kb(pid);

    println!(
        "carma serve load test: {workers} server workers, clients on the same machine, loopback"
    );
    println!(
        "in-process batch API (Bundle::recommend_batch_with, refined): {in_process:.0} people/s \
         on 1 thread, {in_process_2:.0} on 2 (the ratios below are against 1 thread)"
    );
    println!();
    println!(
        "| request | clients | requests/s | people/s | p50 (us) | p99 (us) | in the server, mean \
         (us) | people/s vs in-process |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, bodies, per) in [("1 person", &single, 1u64), ("100 people", &batches, 100)] {
        for clients in [1, 8, 64] {
            let (n0, t0) = server_time(&server);
            let s = run(&server, bodies, clients, seconds, u64::MAX, true);
            let (n1, t1) = server_time(&server);
            let rps = s.requests as f64 / s.seconds;
            println!(
                "| {name} | {clients} | {rps:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x |",
                rps * per as f64,
                s.quantile(0.5),
                s.quantile(0.99),
                (t1 - t0) / (n1 - n0).max(1.0) * 1e6,
                rps * per as f64 / in_process
            );
        }
    }
    let rss_before = rss_kb(pid);
    let s = run(&server, &single, 8, SOAK_SECONDS as f64, soak, false);
    let rss_after = rss_kb(pid);
    println!();
    println!(
        "soak: {} single-person requests at 8 clients in {:.1} s ({:.0}/s); server resident \
         memory {} kB after warm-up, {} kB before the soak, {} kB after it",
        s.requests,
        s.seconds,
        s.requests as f64 / s.seconds,
        rss_start,
        rss_before,
        rss_after
    );
    server.signal("TERM");
    let status = server.wait();
    assert!(status.success(), "carma serve exited with {status}");
}
