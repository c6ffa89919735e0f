//! `carma serve` end to end: the real server on an ephemeral 127.0.0.1 port, spoken to over
//! plain HTTP/1.1 (tests/support/http.rs). Answers are compared with `carma recommend --format
//! json` on the same rows, bad input with the documented error codes, and reloads and shutdowns
//! are made while requests are in flight.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use support::http::{Client, Server};

const BIN: &str = env!("CARGO_BIN_EXE_carma");
const FEATURES: [&str; 7] = [
    "gender",
    "age",
    "education",
    "loan_amount",
    "duration",
    "income",
    "savings",
];

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}

/// The golden Loan model (served first) and the benchmark Loan model (the reload target): the
/// same features, different networks.
fn model_a() -> PathBuf {
    fixture("golden/loan.carma")
}
fn model_b() -> PathBuf {
    fixture("bench/loan.carma")
}

/// A model's fingerprint as the server names it: the file's CRC-32 trailer, in hex.
fn fingerprint(path: &Path) -> String {
    let b = fs::read(path).unwrap();
    b[b.len() - 4..]
        .iter()
        .rev()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The first `n` Loan test rows of the benchmark fixture, each value as the text both the CSV
/// and the JSON carry.
fn rows(n: usize) -> Vec<[String; 7]> {
    let bytes = fs::read(fixture("bench/loan_test_rows.f32")).unwrap();
    bytes
        .chunks_exact(28)
        .take(n)
        .map(|r| {
            std::array::from_fn(|i| {
                let v = f32::from_le_bytes(r[i * 4..i * 4 + 4].try_into().unwrap());
                format!("{v}")
            })
        })
        .collect()
}

/// Per-row limits for row `k` (column name, cell text), so that some rows carry their own.
fn row_limits(k: usize, row: &[String; 7]) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if k % 5 == 1 {
        let income: f32 = row[5].parse().unwrap();
        v.push(("income_max", format!("{}", income + 1.0)));
    }
    if k % 7 == 2 {
        v.push(("max_changes", "1".to_owned()));
    }
    if k % 6 == 3 {
        v.push(("savings_direction", "decrease".to_owned()));
    }
    v
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("carma-serve-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `carma recommend --format json` on `rows` (with an id column and the per-row limits), with
/// `args`: the array of answers.
fn cli_answers(dir: &TempDir, model: &Path, rows: &[[String; 7]], args: &[&str]) -> Vec<Value> {
    let mut csv = String::from("id,");
    csv += &FEATURES.join(",");
    csv += ",income_max,max_changes,savings_direction\n";
    for (k, r) in rows.iter().enumerate() {
        let limits = row_limits(k, r);
        let cell = |name: &str| {
            limits
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        csv += &format!(
            "p{k},{},{},{},{}\n",
            r.join(","),
            cell("income_max"),
            cell("max_changes"),
            cell("savings_direction")
        );
    }
    let input = dir.path("people.csv");
    fs::write(&input, csv).unwrap();
    let out = Command::new(BIN)
        .args(["recommend", "--format", "json", "--id", "id", "--model"])
        .arg(model)
        .arg("--input")
        .arg(&input)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(v) => v,
        other => panic!("not an array: {other}"),
    }
}

/// Row `k` as the JSON object of a person: the id, the features and its limits, with the same
/// number texts as the CSV.
fn person_json(k: usize, row: &[String; 7]) -> String {
    let mut s = format!("{{\"id\":\"p{k}\"");
    for (name, v) in FEATURES.iter().zip(row) {
        s += &format!(",\"{name}\":{v}");
    }
    for (name, v) in row_limits(k, row) {
        if name.ends_with("_direction") {
            s += &format!(",\"{name}\":\"{v}\"");
        } else {
            s += &format!(",\"{name}\":{v}");
        }
    }
    s + "}"
}

/// A batch request of `rows`, with `extra` top-level fields (`"forbid":[...]`, ...).
fn batch_body(rows: &[[String; 7]], extra: &str) -> Vec<u8> {
    let people: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(k, r)| person_json(k, r))
        .collect();
    format!(
        "{{\"id\":\"batch-1\",{extra}\"people\":[{}]}}",
        people.join(",")
    )
    .into_bytes()
}

#[test]
fn single_and_batch_answers_are_those_of_carma_recommend_bit_for_bit() {
    let dir = TempDir::new("same");
    // 70 people on 2 workers: the batch is cut in two parts computed at once, and still gives
    // the answers of one pass.
    let rows = rows(70);
    let server = Server::start(Path::new(BIN), &model_a(), &["--workers", "2"]);
    let mut client = server.client();
    let configs: [(&[&str], &str); 4] = [
        (&[], ""),
        (
            &[
                "--forbid",
                "education",
                "--alternatives",
                "2",
                "--min",
                "loan_amount=-5",
                "--max-changes",
                "3",
                "--increase-only",
                "income",
            ],
            "\"forbid\":[\"education\"],\"alternatives\":2,\"min\":{\"loan_amount\":-5},\
             \"max_changes\":3,\"increase_only\":[\"income\"],",
        ),
        (&["--no-refine"], "\"refine\":false,"),
        (
            &["--min-prob", "0.7", "--forbid", "income,savings"],
            "\"min_prob\":0.7,\"forbid\":[\"income\",\"savings\"],",
        ),
    ];
    for (args, extra) in configs {
        let expected = cli_answers(&dir, &model_a(), &rows, args);
        let r = client
            .post_json("/v1/recommend", &batch_body(&rows, extra))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        assert_eq!(body["id"], "batch-1");
        assert_eq!(body["model"], fingerprint(&model_a()));
        assert_eq!(
            r.header("x-carma-model"),
            Some(fingerprint(&model_a()).as_str())
        );
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), rows.len());
        for (got, want) in results.iter().zip(&expected) {
            // The same values and the same text (shortest digits of the same f32 bits).
            assert_eq!(got, want, "args {args:?}");
            assert_eq!(got.to_string(), want.to_string());
        }
        // One person at a time: the same answer, numbered row 1.
        for (k, want) in expected.iter().enumerate().take(6) {
            let body = format!("{{{extra}\"person\":{}}}", person_json(k, &rows[k]));
            let r = client.post_json("/v1/recommend", body.as_bytes()).unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let mut want = want.clone();
            want["row"] = json!(1);
            assert_eq!(r.json()["result"], want);
        }
    }
    // A person as an array in the model's feature order is the same person.
    let by_name = client
        .post_json(
            "/v1/recommend",
            format!(
                "{{\"person\":{{{}}}}}",
                FEATURES
                    .iter()
                    .zip(&rows[0])
                    .map(|(n, v)| format!("\"{n}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .as_bytes(),
        )
        .unwrap();
    let by_order = client
        .post_json(
            "/v1/recommend",
            format!("{{\"person\":[{}]}}", rows[0].join(",")).as_bytes(),
        )
        .unwrap();
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.body, by_order.body);
}

/// A request with one field changed from a valid single-person request.
fn person_with(field: &str, value: &str) -> String {
    let mut fields: Vec<String> = FEATURES
        .iter()
        .map(|n| {
            let v = if *n == "gender" { "1" } else { "0.5" };
            format!("\"{n}\":{v}")
        })
        .filter(|f| !f.starts_with(&format!("\"{field}\":")))
        .collect();
    if !value.is_empty() {
        fields.push(format!("\"{field}\":{value}"));
    }
    format!("{{\"id\":\"r-7\",\"person\":{{{}}}}}", fields.join(","))
}

#[test]
fn bad_input_is_a_4xx_with_a_json_error_naming_the_field() {
    let server = Server::start(Path::new(BIN), &model_a(), &["--max-batch", "5"]);
    let mut client = server.client();
    let valid_person = person_with("age", "0.5");
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("{\"person\":".into(), 400, "malformed_json", None),
        ("not json".into(), 400, "malformed_json", None),
        (
            "{\"person\":[NaN,0,0,0,0,0,0]}".into(),
            400,
            "malformed_json",
            None,
        ),
        ("[1,2,3]".into(), 400, "wrong_type", None),
        (
            person_with("age", "\"old\""),
            400,
            "wrong_type",
            Some("person.age"),
        ),
        (
            person_with("age", "null"),
            400,
            "wrong_type",
            Some("person.age"),
        ),
        (
            person_with("salary", "3"),
            400,
            "unknown_feature",
            Some("person.salary"),
        ),
        (
            person_with("income", ""),
            400,
            "missing_feature",
            Some("person.income"),
        ),
        (
            person_with("age", "1e39"),
            400,
            "not_finite",
            Some("person.age"),
        ),
        (
            person_with("gender", "0.5"),
            400,
            "not_binary",
            Some("person.gender"),
        ),
        (
            person_with("income_direction", "\"up\""),
            400,
            "invalid_value",
            Some("person.income_direction"),
        ),
        (
            person_with("max_changes", "65"),
            400,
            "invalid_value",
            Some("person.max_changes"),
        ),
        (person_with("income_min", "3"), 200, "", None), // a per-person limit is fine
        (
            "{\"person\":[0,1,2]}".into(),
            400,
            "wrong_length",
            Some("person"),
        ),
        (
            "{\"person\":\"me\"}".into(),
            400,
            "wrong_type",
            Some("person"),
        ),
        ("{\"people\":{}}".into(), 400, "wrong_type", Some("people")),
        (
            "{\"people\":[[0,1,2,3,4,5,6],[0,1,2,3,4,5]]}".into(),
            400,
            "wrong_length",
            Some("people[1]"),
        ),
        (
            "{\"person\":{\"age\":1,\"age\":2}}".into(),
            400,
            "duplicate_field",
            Some("person.age"),
        ),
        ("{}".into(), 400, "missing_people", None),
        (
            valid_person.replacen('{', "{\"people\":[],", 1),
            400,
            "missing_people",
            None,
        ),
        (
            valid_person.replacen('{', "{\"colour\":1,", 1),
            400,
            "unknown_field",
            Some("colour"),
        ),
        (
            valid_person.replacen('{', "{\"forbid\":[\"salary\"],", 1),
            400,
            "unknown_feature",
            Some("forbid[0]"),
        ),
        (
            valid_person.replacen('{', "{\"forbid\":\"income\",", 1),
            400,
            "wrong_type",
            Some("forbid"),
        ),
        (
            valid_person.replacen('{', "{\"forbid\":[3],", 1),
            400,
            "wrong_type",
            Some("forbid[0]"),
        ),
        (
            valid_person.replacen('{', "{\"min_prob\":0.3,", 1),
            400,
            "invalid_value",
            Some("min_prob"),
        ),
        (
            valid_person.replacen('{', "{\"refine\":\"yes\",", 1),
            400,
            "wrong_type",
            Some("refine"),
        ),
        (
            valid_person.replacen('{', "{\"alternatives\":17,", 1),
            400,
            "invalid_value",
            Some("alternatives"),
        ),
        (
            valid_person.replacen('{', "{\"max_changes\":-1,", 1),
            400,
            "invalid_value",
            Some("max_changes"),
        ),
        (
            valid_person.replacen('{', "{\"min\":{\"salary\":1},", 1),
            400,
            "unknown_feature",
            Some("min.salary"),
        ),
        (
            valid_person.replacen('{', "{\"min\":{\"income\":3},\"max\":{\"income\":2},", 1),
            400,
            "invalid_value",
            Some("min.income"),
        ),
        (
            valid_person.replacen(
                '{',
                "{\"increase_only\":[\"income\"],\"decrease_only\":[\"income\"],",
                1,
            ),
            400,
            "invalid_value",
            Some("increase_only"),
        ),
        (
            format!("{{\"people\":[{}]}}", ["[0,1,2,3,4,5,6]"; 6].join(",")),
            413,
            "batch_too_large",
            Some("people"),
        ),
    ];
    for (body, status, code, field) in &cases {
        let r = client.post_json("/v1/recommend", body.as_bytes()).unwrap();
        assert_eq!(r.status, *status, "{body}: {}", r.text());
        if *status == 200 {
            continue;
        }
        let v = r.json();
        assert_eq!(v["error"]["code"], *code, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        match field {
            Some(f) => assert_eq!(v["error"]["field"], *f, "{body}: {v}"),
            None => assert!(v["error"].get("field").is_none(), "{body}: {v}"),
        }
        if body.starts_with("{\"id\":\"r-7\"") {
            assert_eq!(v["id"], "r-7", "the request id is echoed: {v}");
        }
    }
    // Not JSON, not this method, not an endpoint. (An answer sent before the body was read
    // may close the connection: a new one for what follows.)
    let r = server
        .client()
        .request(
            "POST",
            "/v1/recommend",
            &[("Content-Type", "text/csv")],
            b"a,b\n",
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    let mut client = server.client();
    let r = client.get("/v1/recommend").unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (405, json!("method_not_allowed"))
    );
    let r = client.get("/v2/anything").unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let r = client.post_json("/v1/admin/reload", b"").unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("reload_disabled"))
    );
    // Still serving, and nothing was a 5xx.
    assert_eq!(client.get("/healthz").unwrap().status, 200);
    let metrics = client.get("/metrics").unwrap().text();
    assert!(
        metrics.contains("carma_http_requests_total{endpoint=\"/v1/recommend\",status=\"400\"}")
    );
    assert!(!metrics.contains("status=\"5"), "{metrics}");
}

#[test]
fn body_and_batch_limits_are_enforced_with_413() {
    let server = Server::start(
        Path::new(BIN),
        &model_a(),
        &["--max-body", "2000", "--max-batch", "3"],
    );
    let mut client = server.client();
    let person = "[0,1,0.1,0.2,0.3,0.4,0.5]";
    let batch = |n: usize| format!("{{\"people\":[{}]}}", vec![person; n].join(","));
    assert_eq!(
        client
            .post_json("/v1/recommend", batch(3).as_bytes())
            .unwrap()
            .status,
        200
    );
    let r = client
        .post_json("/v1/recommend", batch(4).as_bytes())
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (413, json!("batch_too_large"))
    );
    // A body over --max-body: announced by Content-Length, or sent in chunks.
    let big = format!("{{\"person\":{person},\"id\":\"{}\"}}", "x".repeat(2100));
    let r = client.post_json("/v1/recommend", big.as_bytes()).unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );
    let mut client = server.client();
    client
        .send_head(
            "POST",
            "/v1/recommend",
            &[
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            None,
        )
        .unwrap();
    // The server may answer and close before the last chunks: their writes may fail.
    for _ in 0..3 {
        let chunk = "y".repeat(1000);
        let _ = write!(client.stream(), "{:x}\r\n{chunk}\r\n", chunk.len());
    }
    let _ = client.stream().write_all(b"0\r\n\r\n");
    let r = client.read_response().unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );
    assert_eq!(server.client().get("/readyz").unwrap().status, 200);
}

#[test]
fn excess_concurrent_requests_get_503_with_retry_after_late_bodies_408_late_headers_a_close() {
    let server = Server::start(
        Path::new(BIN),
        &model_a(),
        &[
            "--max-concurrent",
            "1",
            // Long enough that a loaded machine (the other tests run beside this one) still
            // sends a second request while the first holds the slot: 1.5 s was missed once.
            "--timeout-ms",
            "4000",
            "--header-timeout-ms",
            "300",
        ],
    );
    // A request whose body is still coming holds the only slot.
    let mut slow = server.client();
    let body = b"{\"person\":[0,1,0.1,0.2,0.3,0.4,0.5]}";
    slow.send_head(
        "POST",
        "/v1/recommend",
        &[("Content-Type", "application/json")],
        Some(body.len()),
    )
    .unwrap();
    slow.stream().write_all(&body[..10]).unwrap();
    // The server takes the slot when it has read the head. Wait until the metrics show it
    // held before asking again: a second request sent earlier could take the slot first and
    // get the slow one refused instead (that race failed this test on a loaded machine).
    let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
    loop {
        assert!(
            std::time::Instant::now() < until,
            "the slow request never held the slot"
        );
        let metrics = server.client().get("/metrics").unwrap().text();
        if metrics.contains("\ncarma_requests_in_flight 1\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let refused = server.client().post_json("/v1/recommend", body).unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The slow body never completes in time: 408, and the slot is free again.
    let r = slow.read_response().unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (408, json!("request_timeout"))
    );
    let r = server.client().post_json("/v1/recommend", body).unwrap();
    assert_eq!(r.status, 200);
    // A client that never finishes its headers is disconnected.
    let mut silent = server.client();
    silent
        .stream()
        .write_all(b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(silent.read_response().is_err(), "the connection is closed");
    let metrics = server.client().get("/metrics").unwrap().text();
    assert!(metrics.contains("carma_overloaded_total "), "{metrics}");
    assert!(!metrics.contains("carma_overloaded_total 0"), "{metrics}");
}

#[test]
fn model_health_readiness_metrics_and_request_logs() {
    let server = Server::start(Path::new(BIN), &model_a(), &["--log-requests"]);
    let mut client = server.client();
    let r = client.get("/v1/model").unwrap();
    assert_eq!(r.status, 200);
    let inspect = Command::new(BIN)
        .args(["inspect", "--json"])
        .arg(model_a())
        .output()
        .unwrap();
    let want: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(r.json(), want, "GET /v1/model is carma inspect --json");
    assert_eq!(client.get("/healthz").unwrap().json()["status"], "live");
    let ready = client.get("/readyz").unwrap().json();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model"], fingerprint(&model_a()));
    let r = client
        .request(
            "POST",
            "/v1/recommend",
            &[
                ("Content-Type", "application/json"),
                ("X-Request-Id", "hdr-42"),
            ],
            b"{\"id\":\"body-7\",\"people\":[[0,1,0.1,0.2,0.3,0.4,0.5],[1,1,0.1,0.2,0.3,0.4,0.5]]}",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("hdr-42"));
    assert_eq!(r.json()["id"], "body-7");
    let metrics = client.get("/metrics").unwrap().text();
    for line in [
        "carma_http_requests_total{endpoint=\"/v1/recommend\",status=\"200\"} 1",
        "carma_http_requests_total{endpoint=\"/v1/model\",status=\"200\"} 1",
        "carma_http_request_duration_seconds_count{endpoint=\"/v1/recommend\"} 1",
        "carma_http_request_duration_seconds_bucket{endpoint=\"/v1/recommend\",le=\"+Inf\"} 1",
        "carma_people_total 2",
        "carma_model_generation 1",
        "process_resident_memory_bytes ",
        "# TYPE carma_http_request_duration_seconds histogram",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains(&format!("fingerprint=\"{}\"", fingerprint(&model_a()))));
    drop(client);
    let mut server = server;
    server.signal("INT");
    assert_eq!(server.wait().code(), Some(0));
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("id=\"body-7\""))
        .unwrap_or_else(|| panic!("no request line in:\n{log}"));
    for field in [
        "status=200",
        "batch=2",
        "latency_us=",
        "endpoint=\"/v1/recommend\"",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

/// Write `bytes` to `path` as a deployment would: a temporary beside it, then a rename.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn reloads_under_load_swap_whole_models_and_refuse_bad_files() {
    let dir = TempDir::new("reload");
    let served = dir.path("model.carma");
    fs::copy(model_a(), &served).unwrap();
    let rows = rows(12);
    let (fp_a, fp_b) = (fingerprint(&model_a()), fingerprint(&model_b()));
    assert_ne!(fp_a, fp_b);
    let expected: Vec<(String, Vec<Value>)> = vec![
        (fp_a.clone(), cli_answers(&dir, &model_a(), &rows, &[])),
        (fp_b.clone(), cli_answers(&dir, &model_b(), &rows, &[])),
    ];
    let server = Server::start(
        Path::new(BIN),
        &served,
        &["--admin-reload", "--timeout-ms", "60000"],
    );
    let mut admin = server.client();
    let generation =
        |admin: &mut Client| admin.get("/readyz").unwrap().json()["generation"].clone();
    let wait_for = |admin: &mut Client, metric: &str| {
        let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
        while !admin.get("/metrics").unwrap().text().contains(metric) {
            assert!(std::time::Instant::now() < until, "{metric} never appeared");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let people = |admin: &mut Client| -> u64 {
        let m = admin.get("/metrics").unwrap().text();
        m.lines()
            .find_map(|l| l.strip_prefix("carma_people_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let wait_people = |admin: &mut Client, n: u64| {
        let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
        while people(admin) < n {
            assert!(
                std::time::Instant::now() < until,
                "fewer than {n} people answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    // A request that has arrived but whose body is still coming when the reload happens.
    let early_body = batch_body(&rows, "");
    let mut early = server.client();
    early
        .send_head(
            "POST",
            "/v1/recommend",
            &[("Content-Type", "application/json")],
            Some(early_body.len()),
        )
        .unwrap();
    early.stream().write_all(&early_body[..20]).unwrap();
    // (its head read: the handler holds its model)
    wait_for(&mut admin, "carma_requests_in_flight 1");
    let body = Arc::new(batch_body(&rows, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let expected = Arc::new(expected);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (body, stop, expected) =
                (Arc::clone(&body), Arc::clone(&stop), Arc::clone(&expected));
            let mut client = server.client();
            std::thread::spawn(move || {
                let mut seen = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let r = client.post_json("/v1/recommend", &body).unwrap();
                    assert_eq!(r.status, 200, "{}", r.text());
                    let v = r.json();
                    let k = expected
                        .iter()
                        .position(|(fp, _)| v["model"] == *fp)
                        .unwrap_or_else(|| panic!("unknown model {}", v["model"]));
                    // Every person answered by the model the answer names: none mixed.
                    assert_eq!(v["results"].as_array().unwrap(), &expected[k].1);
                    seen[k] += 1;
                }
                seen
            })
        })
        .collect();
    // Let some requests run on model A first.
    wait_people(&mut admin, 36);
    // A good new file, by SIGHUP.
    replace(&served, &fs::read(model_b()).unwrap());
    server.signal("HUP");
    wait_for(&mut admin, "carma_model_reloads_total{result=\"ok\"} 1");
    assert_eq!(generation(&mut admin), 2);
    // It finishes on the model it started with.
    early.stream().write_all(&early_body[20..]).unwrap();
    let r = early.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model"], fp_a);
    assert_eq!(r.json()["results"].as_array().unwrap(), &expected[0].1);
    // A corrupt file (one byte of the weights flipped: the CRC fails), by SIGHUP and over HTTP.
    let mut bad = fs::read(model_b()).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    replace(&served, &bad);
    server.signal("HUP");
    wait_for(
        &mut admin,
        "carma_model_reloads_total{result=\"refused\"} 1",
    );
    let r = admin.post_json("/v1/admin/reload", b"").unwrap();
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (422, json!("reload_refused"))
    );
    // A truncated file and a model with other features are refused too.
    replace(&served, &fs::read(model_b()).unwrap()[..100]);
    let r = admin.post_json("/v1/admin/reload", b"").unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    replace(
        &served,
        &fs::read(fixture("golden/chain-lin.carma")).unwrap(),
    );
    let r = admin.post_json("/v1/admin/reload", b"").unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("features")
    );
    // The good model kept serving; back to A over HTTP.
    assert_eq!(generation(&mut admin), 2);
    assert_eq!(admin.get("/readyz").unwrap().json()["model"], fp_b);
    replace(&served, &fs::read(model_a()).unwrap());
    let r = admin.post_json("/v1/admin/reload", b"").unwrap();
    assert_eq!((r.status, r.json()["generation"].clone()), (200, json!(3)));
    let now = people(&mut admin);
    wait_people(&mut admin, now + 36);
    stop.store(true, Ordering::Relaxed);
    let mut seen = [0usize; 2];
    for c in clients {
        let s = c.join().expect("a client saw a failed or mixed answer");
        seen[0] += s[0];
        seen[1] += s[1];
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both models answered: {seen:?}");
    let log = server.log();
    assert!(log.contains("reload refused"), "{log}");
}

#[test]
fn shutdown_finishes_requests_in_flight_then_exits_0() {
    let mut server = Server::start(Path::new(BIN), &model_a(), &[]);
    let body = b"{\"id\":\"last\",\"person\":[0,1,0.1,0.2,0.3,0.4,0.5]}";
    let mut in_flight = server.client();
    in_flight
        .send_head(
            "POST",
            "/v1/recommend",
            &[("Content-Type", "application/json")],
            Some(body.len()),
        )
        .unwrap();
    in_flight.stream().write_all(&body[..12]).unwrap();
    // Make sure the server has the request (its head read, the handler waiting for the body).
    let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
    while !server
        .client()
        .get("/metrics")
        .unwrap()
        .text()
        .contains("carma_requests_in_flight 1")
    {
        assert!(
            std::time::Instant::now() < until,
            "the request never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.signal("TERM");
    // New connections are refused once the listener is closed.
    let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
    while Client::connect(server.addr).is_ok() {
        assert!(
            std::time::Instant::now() < until,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    in_flight.stream().write_all(&body[12..]).unwrap();
    let r = in_flight.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "last");
    assert_eq!(server.wait().code(), Some(0), "{}", server.log());
}

#[test]
fn a_bad_model_file_stops_the_start_with_an_error() {
    let dir = TempDir::new("start");
    let bad = dir.path("bad.carma");
    fs::write(&bad, &fs::read(model_a()).unwrap()[..200]).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--model"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.carma") && err.contains("not a usable carma model"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing listened");
}

#[test]
fn connections_over_the_cap_wait_until_one_closes() {
    let server = Server::start(Path::new(BIN), &model_a(), &["--max-connections", "1"]);
    let mut first = server.client();
    assert_eq!(first.get("/healthz").unwrap().status, 200);
    // The second connection is queued by the kernel, not served, while the first is open.
    let mut second = server.client();
    second.send_head("GET", "/healthz", &[], None).unwrap();
    drop(first);
    assert_eq!(second.read_response().unwrap().status, 200);
}

#[test]
fn a_request_still_in_flight_after_the_shutdown_timeout_makes_the_exit_status_1() {
    let mut server = Server::start(
        Path::new(BIN),
        &model_a(),
        &["--shutdown-timeout", "1", "--timeout-ms", "60000"],
    );
    // A request whose body never completes.
    let mut stuck = server.client();
    stuck
        .send_head(
            "POST",
            "/v1/recommend",
            &[("Content-Type", "application/json")],
            Some(100),
        )
        .unwrap();
    stuck.stream().write_all(b"{\"person\":").unwrap();
    let until = std::time::Instant::now() + support::http::IO_TIMEOUT;
    while !server
        .client()
        .get("/metrics")
        .unwrap()
        .text()
        .contains("carma_requests_in_flight 1")
    {
        assert!(
            std::time::Instant::now() < until,
            "the request never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.signal("TERM");
    assert_eq!(server.wait().code(), Some(1));
    assert!(
        server.log().contains("--shutdown-timeout"),
        "{}",
        server.log()
    );
}
