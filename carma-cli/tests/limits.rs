//! `carma recommend` with personal limits (issue 13): `--max-changes`, `--min`, `--max`,
//! `--increase-only`, `--decrease-only`, the per-row columns, the status when nothing fits, and
//! the out-of-range notes. Drives the built binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// The hand-built 7-feature model of the CLI tests (`x0..x6`, `x2` binary, unbounded).
fn handmade() -> PathBuf {
    Path::new(FIXTURES).join("cli/handmade.carma")
}

/// A trained Loan model: its bounds are the training range and a 10 % margin.
fn loan() -> PathBuf {
    Path::new(FIXTURES).join("golden/loan.carma")
}

fn carma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carma"))
        .args(args)
        .output()
        .expect("the carma binary runs")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn failed(o: Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("carma-limits-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `n` people for the hand-built model (`x1`, `x3`..`x6` actionable), deterministic, `x2` binary; `extra` columns appended
/// to the header with `cells(i)` for row `i`.
fn people(n: usize, extra: &str, cells: impl Fn(usize) -> String) -> String {
    let mut s = format!("x0,x1,x2,x3,x4,x5,x6{extra}\n");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        let row: Vec<String> = (0..7)
            .map(|j| {
                if j == 2 {
                    format!("{}", (next() < 0.5) as u8)
                } else {
                    format!("{:.4}", (next() - 0.5) * 8.0)
                }
            })
            .collect();
        s += &row.join(",");
        s += &cells(i);
        s.push('\n');
    }
    s
}

fn actions(p: &serde_json::Value) -> Vec<(String, f64, f64)> {
    p["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["feature"].as_str().unwrap().to_owned(),
                a["from"].as_f64().unwrap(),
                a["to"].as_f64().unwrap(),
            )
        })
        .collect()
}

const STATUSES: [&str; 4] = [
    "already accepted",
    "accepted after the recommendation",
    "no recommendation within your limits",
    "not accepted",
];

#[test]
fn run_wide_limits_hold_for_every_person() {
    let dir = Dir::new("run");
    let input = dir.file("people.csv", &people(300, "", |_| String::new()));
    let model = handmade();
    for refine in [true, false] {
        let mut args = vec![
            "recommend",
            "--model",
            model.to_str().unwrap(),
            "--input",
            &input,
            "--format",
            "json",
            "--max-changes",
            "2",
            "--min",
            "x1=-1",
            "--max",
            "x1=1.5",
            "--max",
            "x4=2",
            "--increase-only",
            "x5",
            "--decrease-only",
            "x3,x6",
        ];
        if !refine {
            args.push("--no-refine");
        }
        let v: serde_json::Value = serde_json::from_str(&ok(carma(&args))).unwrap();
        let (mut changed, mut bound) = (0, 0);
        for p in v.as_array().unwrap() {
            let status = p["status"].as_str().unwrap();
            assert!(STATUSES.contains(&status), "{p}");
            let acts = actions(p);
            assert!(acts.len() <= 2, "{p}");
            for (f, from, to) in &acts {
                changed += 1;
                match f.as_str() {
                    "x1" => assert!((-1.0..=1.5).contains(to), "{p}"),
                    "x4" => assert!(*to <= 2.0, "{p}"),
                    "x5" => assert!(to >= from, "{p}"),
                    "x3" | "x6" => assert!(to <= from, "{p}"),
                    "x2" => assert!(*to == 0.0 || *to == 1.0, "{p}"),
                    _ => {}
                }
            }
            if !p["bound_by_limit"].as_array().unwrap().is_empty() || p["max_changes_bound"] == true
            {
                bound += 1;
                assert!(p["limit_reason"].is_string(), "{p}");
            }
            if status == "no recommendation within your limits" {
                assert_eq!(p["accepted"], false);
                assert!(p["limit_reason"].is_string(), "{p}");
            }
        }
        assert!(changed > 50 && bound > 20, "{changed} {bound}");
    }
}

#[test]
fn per_row_columns_override_the_run_and_bad_cells_are_refused() {
    let dir = Dir::new("rows");
    // Odd rows: at most one change and x1 within [-0.5, 0.5]; even rows: no per-row limit.
    let text = people(200, ",max_changes,x1_min,x1_max", |i| {
        if i % 2 == 1 {
            ",1,-0.5,0.5".to_owned()
        } else {
            ",,,".to_owned()
        }
    });
    let input = dir.file("people.csv", &text);
    let model = handmade();
    let out = ok(carma(&[
        "recommend",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &input,
        "--format",
        "json",
        "--max-changes",
        "3",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (mut two_or_more, mut limited_x1) = (0, 0);
    for (i, p) in v.as_array().unwrap().iter().enumerate() {
        let acts = actions(p);
        if i % 2 == 1 {
            assert!(acts.len() <= 1, "row {}: {p}", i + 1);
            for (f, _, to) in &acts {
                if f == "x1" {
                    limited_x1 += 1;
                    assert!((-0.5..=0.5).contains(to), "row {}: {p}", i + 1);
                }
            }
        } else {
            assert!(acts.len() <= 3, "row {}: {p}", i + 1);
            two_or_more += usize::from(acts.len() >= 2);
        }
    }
    assert!(
        two_or_more > 5 && limited_x1 > 0,
        "{two_or_more} {limited_x1}"
    );

    let bad = people(3, ",x0_max", |i| {
        if i == 1 { ",lots".into() } else { ",".into() }
    });
    let input = dir.file("bad.csv", &bad);
    let e = failed(carma(&[
        "recommend",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &input,
    ]));
    assert!(e.contains("x0_max") && e.contains("lots"), "{e}");
    let bad = people(2, ",max_changes", |_| ",1.5".into());
    let input = dir.file("bad2.csv", &bad);
    let e = failed(carma(&[
        "recommend",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &input,
    ]));
    assert!(
        e.contains("max_changes") && e.contains("whole number"),
        "{e}"
    );
}

#[test]
fn nothing_within_the_limits_is_said_plainly_in_every_format() {
    let dir = Dir::new("none");
    let input = dir.file("people.csv", &people(40, "", |_| String::new()));
    let model = handmade();
    let run = |format: &str| {
        ok(carma(&[
            "recommend",
            "--model",
            model.to_str().unwrap(),
            "--input",
            &input,
            "--format",
            format,
            "--max-changes",
            "0",
        ]))
    };
    let o = carma(&[
        "recommend",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &input,
        "--max-changes",
        "0",
    ]);
    let summary = String::from_utf8_lossy(&o.stderr).into_owned();
    let text = ok(o);
    let rejected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rejected (p ="))
        .collect();
    assert!(!rejected.is_empty());
    let n = rejected.len();
    assert!(
        summary.contains(&format!(
            "{n} not accepted ({n} of them with no recommendation within the limits)"
        )),
        "{summary}"
    );
    for line in &rejected {
        assert!(
            line.contains("No recommendation within your limits (at most 0 changes allowed)"),
            "{line}"
        );
        assert!(
            !line.contains("Recommended:"),
            "no change is presented as advice: {line}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    for p in v.as_array().unwrap() {
        if p["already_accepted"] == false {
            assert_eq!(p["status"], "no recommendation within your limits", "{p}");
            assert_eq!(p["max_changes_bound"], true);
            assert!(actions(p).is_empty());
        }
    }
    let csv = run("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let status = header.iter().position(|h| *h == "status").unwrap();
    assert!(header.contains(&"bound_by_limit") && header.contains(&"out_of_range"));
    let statuses: Vec<String> = lines
        .map(|l| l.split(',').nth(status).unwrap().to_owned())
        .collect();
    assert_eq!(statuses.len(), 40);
    assert!(
        statuses
            .iter()
            .all(|s| s == "already accepted" || s == "no recommendation within your limits")
    );
}

#[test]
fn contradictory_or_malformed_limits_are_refused_before_reading() {
    let dir = Dir::new("bad");
    let input = dir.file("people.csv", &people(3, "", |_| String::new()));
    let model = handmade();
    let m = model.to_str().unwrap();
    let base = ["recommend", "--model", m, "--input", &input];
    let e = failed(carma(&[&base[..], &["--min", "x0"]].concat()));
    assert!(e.contains("FEATURE=VALUE"), "{e}");
    let e = failed(carma(&[&base[..], &["--min", "nope=1"]].concat()));
    assert!(e.contains("unknown feature 'nope'"), "{e}");
    let e = failed(carma(
        &[&base[..], &["--min", "x0=2", "--max", "x0=1"]].concat(),
    ));
    assert!(e.contains("above --max"), "{e}");
    let e = failed(carma(
        &[
            &base[..],
            &["--increase-only", "x1", "--decrease-only", "x1"],
        ]
        .concat(),
    ));
    assert!(
        e.contains("both --increase-only and --decrease-only"),
        "{e}"
    );
}

/// A trained model's bounds are its training range and margin: an input far outside is named
/// in text, JSON and CSV.
#[test]
fn inputs_outside_the_training_range_are_flagged_in_every_format() {
    let dir = Dir::new("range");
    let input = dir.file(
        "people.csv",
        "gender,age,education,loan_amount,duration,income,savings\n\
         1,0.1,0.2,0.3,0.1,0.0,0.1\n\
         0,500,0.0,0.0,0.0,0.0,0.0\n",
    );
    let model = loan();
    let run = |format: &str| {
        ok(carma(&[
            "recommend",
            "--model",
            model.to_str().unwrap(),
            "--input",
            &input,
            "--format",
            format,
        ]))
    };
    let text = run("text");
    assert!(
        text.contains("Note: age = 500 is outside the range the model knows"),
        "{text}"
    );
    assert_eq!(text.matches("Note:").count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(v[0]["out_of_range"], serde_json::json!([]));
    assert_eq!(v[1]["out_of_range"], serde_json::json!(["age"]));
    let csv = run("csv");
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|h| *h == "out_of_range").unwrap();
    assert_eq!(lines[1].split(',').nth(col), Some(""));
    assert_eq!(lines[2].split(',').nth(col), Some("age"));
}

#[test]
fn alternatives_change_other_feature_sets_and_are_each_accepted() {
    let dir = Dir::new("alt");
    // Loan applicants: gender 0/1, the rest spread over a few units around 0.
    let mut text = String::from("gender,age,education,loan_amount,duration,income,savings\n");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..150 {
        let mut cells = vec![format!("{}", i % 2)];
        for _ in 0..6 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            cells.push(format!("{:.3}", (u - 0.5) * 6.0));
        }
        text += &cells.join(",");
        text.push('\n');
    }
    let input = dir.file("people.csv", &text);
    let model = loan();
    let m = model.to_str().unwrap();
    let run = |format: &str| {
        ok(carma(&[
            "recommend",
            "--model",
            m,
            "--input",
            &input,
            "--alternatives",
            "2",
            "--format",
            format,
        ]))
    };
    let v: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let mut seen = 0;
    for p in v.as_array().unwrap() {
        let Some(alts) = p["alternatives"].as_array() else {
            continue;
        };
        assert!(alts.len() <= 2 && p["accepted"] == true, "{p}");
        let set = |acts: &serde_json::Value| -> Vec<String> {
            acts.as_array()
                .unwrap()
                .iter()
                .map(|a| a["feature"].as_str().unwrap().to_owned())
                .collect()
        };
        let mut sets = vec![set(&p["actions"])];
        let mut last_cost = 0.0;
        for a in alts {
            seen += 1;
            let s = set(&a["actions"]);
            assert!(!s.is_empty() && !sets.contains(&s), "{p}");
            assert!(a["prob_after"].as_f64().unwrap() >= 0.5, "{p}");
            let cost = a["cost"].as_f64().unwrap();
            assert!(cost >= last_cost, "{p}");
            last_cost = cost;
            sets.push(s);
        }
    }
    assert!(seen > 5, "{seen}");
    assert!(run("text").contains("  Alternative 1: "));
    let csv = run("csv");
    assert!(csv.lines().next().unwrap().ends_with(",alternatives"));
    let o = carma(&[
        "recommend",
        "--model",
        m,
        "--input",
        &input,
        "--alternatives",
        "17",
    ]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
}

#[test]
fn inspect_shows_each_features_bounds_and_direction() {
    let model = loan();
    let text = ok(carma(&["inspect", model.to_str().unwrap()]));
    let header = text
        .lines()
        .find(|l| l.contains("name") && l.contains("kind"))
        .unwrap();
    assert!(header.ends_with("min       max      direction"), "{header}");
    let gender = text.lines().find(|l| l.contains(" gender ")).unwrap();
    assert!(gender.contains("0.0000    1.0000   any"), "{gender}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(carma(&["inspect", model.to_str().unwrap(), "--json"]))).unwrap();
    let f = &json["features"][0];
    assert_eq!(
        (f["min"].as_f64(), f["max"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(f["direction"], "any");
    // The hand-built model has no bounds: shown as '-'.
    let text = ok(carma(&["inspect", handmade().to_str().unwrap()]));
    let x1 = text
        .lines()
        .find(|l| l.trim_start().starts_with("1  x1"))
        .unwrap();
    let cells: Vec<&str> = x1.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 3..], ["-", "-", "any"], "{x1}");
}

#[test]
fn a_per_row_direction_column_overrides_the_runs_direction() {
    let dir = Dir::new("dir");
    let text = people(300, ",x5_direction,x3_direction", |i| {
        if i % 2 == 1 {
            ",decrease,any".to_owned()
        } else {
            ",,".to_owned()
        }
    });
    let input = dir.file("people.csv", &text);
    let model = handmade();
    let m = model.to_str().unwrap();
    let out = ok(carma(&[
        "recommend",
        "--model",
        m,
        "--input",
        &input,
        "--format",
        "json",
        "--increase-only",
        "x5",
        "--decrease-only",
        "x3",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut x5_moves = [0usize; 2];
    for (i, p) in v.as_array().unwrap().iter().enumerate() {
        for (f, from, to) in actions(p) {
            match (f.as_str(), i % 2) {
                ("x5", 0) => assert!(to >= from, "row {}: {p}", i + 1),
                ("x5", _) => assert!(to <= from, "row {}: {p}", i + 1),
                ("x3", 0) => assert!(to <= from, "row {}: {p}", i + 1),
                _ => {}
            }
            if f == "x5" {
                x5_moves[i % 2] += 1;
            }
        }
    }
    assert!(x5_moves[0] > 0 && x5_moves[1] > 0, "{x5_moves:?}");
    let bad = people(2, ",x5_direction", |_| ",up".into());
    let input = dir.file("bad.csv", &bad);
    let e = failed(carma(&["recommend", "--model", m, "--input", &input]));
    assert!(e.contains("x5_direction") && e.contains("up"), "{e}");
}
