//! `GET /metrics`: request counts by endpoint and status, a latency histogram per endpoint, the
//! people recommended for, the requests in flight and refused for overload, the reloads and the
//! served model, in the Prometheus text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The endpoints, as the `endpoint` label says them; anything else is `other`.
pub const ENDPOINTS: [&str; 7] = [
    "/v1/recommend",
    "/v1/model",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/admin/reload",
    "other",
];

/// Upper bounds of the latency buckets, seconds: from 50 microseconds (a single person) to 10 s
/// (a large batch near the timeout).
pub const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// The endpoint label of a request path.
pub fn endpoint(path: &str) -> usize {
    ENDPOINTS
        .iter()
        .position(|&e| e == path)
        .unwrap_or(ENDPOINTS.len() - 1)
}

/// One endpoint's latencies.
#[derive(Default)]
struct Histogram {
    /// Requests at or under each bucket's bound (not cumulative here; summed when written).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// Every counter of the server.
#[derive(Default)]
pub struct Metrics {
    /// (endpoint, status) -> requests.
    requests: Mutex<BTreeMap<(usize, u16), u64>>,
    latency: [Histogram; ENDPOINTS.len()],
    /// People answered for (successful requests only).
    pub people: AtomicU64,
    /// Requests refused because every slot was taken.
    pub overloaded: AtomicU64,
    /// Reloads that swapped in a new model.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the old model kept serving).
    pub reloads_refused: AtomicU64,
}

/// What the exposition needs besides the counters.
pub struct Gauges<'a> {
    /// Requests being answered now.
    pub in_flight: usize,
    /// The concurrency limit.
    pub max_in_flight: usize,
    /// The served model's fingerprint and dataset.
    pub model: (&'a str, &'a str),
    /// The served model's generation.
    pub generation: u64,
}

impl Metrics {
    /// Count one answered request.
    pub fn record(&self, endpoint: usize, status: u16, latency: Duration) {
        {
            let mut r = match self.requests.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            *r.entry((endpoint, status)).or_insert(0) += 1;
        }
        let h = &self.latency[endpoint];
        let s = latency.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&b| s <= b) {
            h.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        h.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn text(&self, g: &Gauges<'_>) -> String {
        let mut s = String::with_capacity(8192);
        s += "# HELP carma_http_requests_total HTTP requests answered, by endpoint and status.\n";
        s += "# TYPE carma_http_requests_total counter\n";
        let counts: Vec<((usize, u16), u64)> = match self.requests.lock() {
            Ok(r) => r.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(p) => p.into_inner().iter().map(|(k, v)| (*k, *v)).collect(),
        };
        for ((e, status), n) in counts {
            let _ = writeln!(
                s,
                "carma_http_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                ENDPOINTS[e]
            );
        }
        s += "# HELP carma_http_request_duration_seconds Time from the request's arrival to its \
              answer, by endpoint.\n";
        s += "# TYPE carma_http_request_duration_seconds histogram\n";
        for (e, h) in self.latency.iter().enumerate() {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let name = ENDPOINTS[e];
            let mut cumulative = 0;
            for (b, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "carma_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                s,
                "carma_http_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9;
            let _ = writeln!(
                s,
                "carma_http_request_duration_seconds_sum{{endpoint=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                s,
                "carma_http_request_duration_seconds_count{{endpoint=\"{name}\"}} {count}"
            );
        }
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            &mut s,
            "carma_people_total",
            "People recommended for (requests answered with 200).",
            self.people.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "carma_overloaded_total",
            "Requests refused with 503 because every request slot was taken.",
            self.overloaded.load(Ordering::Relaxed),
        );
        s += "# HELP carma_model_reloads_total Model reloads, by result (refused: the old model \
              kept serving).\n# TYPE carma_model_reloads_total counter\n";
        let _ = writeln!(
            s,
            "carma_model_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "carma_model_reloads_total{{result=\"refused\"}} {}",
            self.reloads_refused.load(Ordering::Relaxed)
        );
        let gauge = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n");
        };
        gauge(
            &mut s,
            "carma_requests_in_flight",
            "Recommend requests being answered now.",
            g.in_flight as u64,
        );
        gauge(
            &mut s,
            "carma_requests_in_flight_limit",
            "The most recommend requests answered at once (--max-concurrent).",
            g.max_in_flight as u64,
        );
        gauge(
            &mut s,
            "carma_model_generation",
            "1 for the model loaded at start, one more per successful reload.",
            g.generation,
        );
        if let Some(kb) = resident_kb() {
            gauge(
                &mut s,
                "process_resident_memory_bytes",
                "Resident memory of the server process (VmRSS).",
                kb * 1024,
            );
        }
        s += "# HELP carma_model_info The served model (value 1).\n# TYPE carma_model_info gauge\n";
        let _ = writeln!(
            s,
            "carma_model_info{{fingerprint=\"{}\",dataset=\"{}\"}} 1",
            g.model.0,
            label(g.model.1)
        );
        s
    }
}

/// The process's resident memory, kB (`VmRSS` of /proc/self/status; none where there is no
/// /proc).
fn resident_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// A label value escaped as the format asks (backslash, quote, line feed).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
