//! Integer and categorical features end to end (issue 13): a graph file with
//! `kind = "integer"` and `kind = "categorical"`, data with level names,
//! `carma fit` (a quick model), then `carma inspect` and `carma recommend` in
//! every format. Every recommended value is on its grid, categorical ones are
//! shown by their level's name, and bad cells are refused by name.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

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

const LEVELS: [&str; 3] = ["rent", "own", "free"];

const GRAPH: &str = r#"
[[feature]]
name = "children"
kind = "integer"
actionable = false

[[feature]]
name = "housing"
kind = "categorical"
levels = ["rent", "own", "free"]
actionable = true

[[feature]]
name = "income"
kind = "continuous"
actionable = true
parents = ["children"]

[[feature]]
name = "savings"
kind = "integer"
step = 0.5
actionable = true
parents = ["income", "housing"]
"#;

/// A deterministic toy population: savings follow income and housing, the
/// label asks for enough income and savings.
fn population(n: usize, label: bool) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut s = String::from(if label {
        "children,housing,income,savings,y\n"
    } else {
        "children,housing,income,savings\n"
    });
    for _ in 0..n {
        let children = (next() * 4.0).floor();
        let housing = (next() * 3.0).floor() as usize;
        let income = 2.0 + next() * 4.0 - 0.3 * children;
        let savings = ((0.8 * income + [0.0, 1.5, 0.5][housing] + next()) / 0.5).round() * 0.5;
        let y = u8::from(income + 0.5 * savings > 5.5);
        s += &format!("{children},{},{income:.3},{savings}", LEVELS[housing]);
        if label {
            s += &format!(",{y}");
        }
        s.push('\n');
    }
    s
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("carma-kinds-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn integer_and_categorical_features_round_trip_through_fit_and_recommend() {
    let d = dir("fit");
    let path = |n: &str| d.join(n).to_string_lossy().into_owned();
    fs::write(path("graph.toml"), GRAPH).unwrap();
    fs::write(path("train.csv"), population(1500, true)).unwrap();
    fs::write(path("people.csv"), population(60, false)).unwrap();
    ok(carma(&[
        "fit",
        "--data",
        &path("train.csv"),
        "--graph",
        &path("graph.toml"),
        "--out",
        &path("m.carma"),
        "--epochs-scale",
        "0.1",
        "--seed",
        "3",
    ]));

    let inspect = ok(carma(&["inspect", &path("m.carma")]));
    assert!(
        inspect.contains("categorical (rent, own, free)"),
        "{inspect}"
    );
    assert!(
        inspect.contains("integer (step 0.5)") && inspect.contains("integer (step 1)"),
        "{inspect}"
    );
    let version = ok(carma(&["inspect", &path("m.carma"), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["format_version"], 4);
    assert_eq!(v["features"][1]["levels"], serde_json::json!(LEVELS));

    let json = ok(carma(&[
        "recommend",
        "--model",
        &path("m.carma"),
        "--input",
        &path("people.csv"),
        "--format",
        "json",
    ]));
    let (mut housing_moves, mut savings_moves) = (0, 0);
    let all: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    for p in &all {
        let line = p.to_string();
        let rec = &p["recommended"];
        let children = rec["children"].as_f64().unwrap();
        assert_eq!(children.fract(), 0.0, "{line}");
        let savings = rec["savings"].as_f64().unwrap();
        assert_eq!(
            (savings * 2.0).fract(),
            0.0,
            "savings on the half-unit grid: {line}"
        );
        let housing = rec["housing"].as_f64().unwrap();
        assert!([0.0, 1.0, 2.0].contains(&housing), "{line}");
        for a in p["actions"].as_array().unwrap() {
            match a["feature"].as_str().unwrap() {
                "housing" => {
                    housing_moves += 1;
                    let to = a["to"].as_f64().unwrap() as usize;
                    assert_eq!(a["to_level"], LEVELS[to], "{line}");
                    assert_eq!(
                        a["from_level"],
                        LEVELS[a["from"].as_f64().unwrap() as usize]
                    );
                }
                "savings" => savings_moves += 1,
                _ => {}
            }
        }
    }
    assert!(
        housing_moves + savings_moves > 0,
        "no grid feature was ever acted on:\n{json}"
    );

    // Text: a categorical change reads with the levels' names.
    let text = ok(carma(&[
        "recommend",
        "--model",
        &path("m.carma"),
        "--input",
        &path("people.csv"),
    ]));
    for line in text.lines().filter(|l| l.contains("housing from")) {
        assert!(
            LEVELS
                .iter()
                .any(|l| line.contains(&format!("from {l} to "))),
            "{line}"
        );
    }
    // CSV: the recommended housing is a level's name, and reads back as input.
    let csv = ok(carma(&[
        "recommend",
        "--model",
        &path("m.carma"),
        "--input",
        &path("people.csv"),
        "--format",
        "csv",
    ]));
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = header
        .iter()
        .position(|h| h == "housing_recommended")
        .unwrap();
    for r in rows.records() {
        assert!(LEVELS.contains(&&r.unwrap()[col]));
    }

    // Cells off the grid or naming no level are refused, naming the column.
    for (bad, column) in [
        ("1.5,own,3.0,2.5", "children"),
        ("1,castle,3.0,2.5", "housing"),
        ("1,own,3.0,2.2", "savings"),
        ("1,7,3.0,2.5", "housing"),
    ] {
        fs::write(
            path("bad.csv"),
            format!("children,housing,income,savings\n{bad}\n"),
        )
        .unwrap();
        let out = carma(&[
            "recommend",
            "--model",
            &path("m.carma"),
            "--input",
            &path("bad.csv"),
        ]);
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("column '{column}'")), "{bad}: {err}");
    }
    // Codes work as well as names.
    fs::write(
        path("codes.csv"),
        "children,housing,income,savings\n1,0,3.0,2.5\n",
    )
    .unwrap();
    ok(carma(&[
        "recommend",
        "--model",
        &path("m.carma"),
        "--input",
        &path("codes.csv"),
    ]));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn graph_files_with_bad_kinds_are_refused_with_the_reason() {
    let d = dir("bad");
    fs::write(d.join("train.csv"), "a,y\n1,0\n2,1\n").unwrap();
    for (graph, says) in [
        ("kind = \"integer\"\nstep = 0", "step = 0"),
        (
            "kind = \"categorical\"\nlevels = [\"x\"]",
            "2 to 255 levels",
        ),
        (
            "kind = \"categorical\"\nlevels = [\"x\", \"x\"]",
            "listed twice",
        ),
        (
            "kind = \"continuous\"\nlevels = [\"x\", \"y\"]",
            "has no levels",
        ),
        ("kind = \"binary\"\nstep = 1", "has no step"),
        (
            "kind = \"categorical\"\nlevels = [\"x\", \"y\"]\nmax = 2",
            "not a level's code",
        ),
    ] {
        let file = d.join("g.toml");
        fs::write(
            &file,
            format!("[[feature]]\nname = \"a\"\nactionable = true\n{graph}\n"),
        )
        .unwrap();
        let out = carma(&[
            "fit",
            "--data",
            d.join("train.csv").to_str().unwrap(),
            "--graph",
            file.to_str().unwrap(),
            "--out",
            d.join("m.carma").to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains("'a'"), "{graph}: {err}");
    }
    let _ = fs::remove_dir_all(&d);
}
