//! The `carma` command driven as a user would: the built binary on small files, its exit code,
//! its output and its error messages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use carma_core::{Bundle, FeatureSet};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// A model with CARMA networks, hand-built with random weights by the core's fixture example (7 features
/// `x0..x6`, `x2` binary).
fn carma_fixture() -> PathBuf {
    Path::new(FIXTURES).join("cli/handmade.carma")
}

fn reference_json() -> PathBuf {
    Path::new(FIXTURES).join("reference/loan_flow.json")
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("carma-cli-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn carma<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_carma"))
        .args(args)
        .output()
        .expect("the carma binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Succeeded, or panic showing what it printed.
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", stderr(&o), stdout(&o));
    o
}

/// Failed with `code`, returning standard error.
fn fails(o: Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// The reference PyTorch flow and classifier, imported in-process (no CARMA networks).
fn imported_model(dir: &TempDir) -> PathBuf {
    let text = fs::read_to_string(reference_json()).unwrap();
    let spec = carma_train::import::import_reference_json(
        &text,
        carma_train::import::ScalerChoice::Recourse,
    )
    .unwrap();
    let path = dir.path("reference.carma");
    fs::write(&path, spec.to_bytes().unwrap()).unwrap();
    path
}

/// `n` people for the fixture model: deterministic values of a few units, `x2` binary.
fn people_csv(n: usize) -> String {
    let mut s = String::from("id,x0,x1,x2,x3,x4,x5,x6\n");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        s += &format!("p{i}");
        for j in 0..7 {
            let v = if j == 2 {
                (next() < 0.5) as u8 as f64
            } else {
                (next() - 0.5) * 8.0
            };
            s += &format!(",{v:.4}");
        }
        s.push('\n');
    }
    s
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "simulate",
        "inspect",
        "import",
        "recommend",
        "fit",
        "demo",
        "evaluate",
        "oracle",
    ] {
        let out = stdout(&ok(carma([sub, "--help"])));
        assert!(out.contains("Example"), "{sub} --help:\n{out}");
        assert!(
            out.contains(&format!("carma {sub}")),
            "{sub} --help:\n{out}"
        );
    }
}

#[test]
fn simulate_is_deterministic_with_labels_and_writes_a_graph_fit_can_read() {
    let dir = TempDir::new("simulate");
    let (a, b, g) = (dir.path("a.csv"), dir.path("b.csv"), dir.path("g.toml"));
    for out in [&a, &b] {
        ok(carma(
            [
                "simulate",
                "--dataset",
                "loan",
                "-n",
                "40",
                "--seed",
                "3",
                "-o",
            ]
            .map(std::ffi::OsStr::new)
            .into_iter()
            .chain([out.as_os_str(), "--graph".as_ref(), g.as_os_str()]),
        ));
    }
    let text = fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        fs::read_to_string(&b).unwrap(),
        "same seed, same rows"
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("gender,age,education,loan_amount,duration,income,savings,y")
    );
    assert_eq!(lines.count(), 40);
    let graph = carma_train::graph::CausalGraph::from_toml_path(&g).unwrap();
    assert_eq!(graph.names()[2], "education");
    assert_eq!(
        dir.entries(),
        ["a.csv", "b.csv", "g.toml"],
        "no temporaries left"
    );

    let other = stdout(&ok(carma([
        "simulate",
        "--dataset",
        "chain-LIN",
        "-n",
        "5",
        "--seed",
        "3",
    ])));
    assert!(other.starts_with("x_s,x_1,x_2,x_3,y\n"), "{other}");
    assert_eq!(other.lines().count(), 6);
}

#[test]
fn simulate_refuses_unknown_dataset_and_zero_rows_as_usage_errors() {
    let err = fails(carma(["simulate", "--dataset", "mortgage", "-n", "5"]), 2);
    assert!(
        err.contains("mortgage") && err.contains("triangle-lin"),
        "{err}"
    );
    fails(carma(["simulate", "--dataset", "loan", "-n", "0"]), 2);
}

#[test]
fn import_writes_a_bundle_without_carma_and_says_so() {
    let dir = TempDir::new("import");
    let out = dir.path("ref.carma");
    let o = ok(carma([
        "import".as_ref(),
        "--json".as_ref(),
        reference_json().as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]));
    assert!(stdout(&o).contains("no CARMA networks"), "{}", stdout(&o));
    let bytes = fs::read(&out).unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    assert_eq!(bundle.n_features(), 7);
    assert!(bundle.carma().is_none());

    let err = fails(
        carma([
            "import".as_ref(),
            "--json".as_ref(),
            reference_json().as_os_str(),
            "--scaler".as_ref(),
            "median".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ]),
        2,
    );
    assert!(err.contains("causal_estimator"), "{err}");
}

#[test]
fn import_of_a_broken_json_names_the_file_and_writes_nothing() {
    let dir = TempDir::new("import-bad");
    let json = write(&dir, "bad.json", "{\"num_features\": 7");
    let out = dir.path("x.carma");
    let err = fails(
        carma([
            "import".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("bad.json"), "{err}");
    assert!(!out.exists());
}

#[test]
fn inspect_reports_metadata_features_sizes_and_metrics() {
    let dir = TempDir::new("inspect");
    let model = imported_model(&dir);
    let text = stdout(&ok(carma(["inspect".as_ref(), model.as_os_str()])));
    for needle in [
        "dataset          loan",
        "format version   3",
        "no CARMA networks",
        "education",
        "gender, age",
        "scratch",
        "classifier test accuracy",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }

    let bytes = fs::read(carma_fixture()).unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    let json = stdout(&ok(carma([
        "inspect".as_ref(),
        carma_fixture().as_os_str(),
        "--json".as_ref(),
    ])));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["recommends"], true);
    // A model without integer or categorical features is still format version 3.
    assert_eq!(
        v["format_version"],
        carma_core::format::OLDEST_FORMAT_VERSION
    );
    assert_eq!(v["features"].as_array().unwrap().len(), bundle.n_features());
    assert_eq!(v["features"][2]["kind"], "binary");
    assert_eq!(v["sizes"]["file_bytes"], bytes.len());
    assert_eq!(v["sizes"]["scratch_floats"], bundle.scratch_len());
    assert_eq!(v["sizes"]["scratch_bytes"], 4 * bundle.scratch_len());
    let w = bundle.wire();
    let nets = &v["sizes"]["networks"];
    assert_eq!(
        nets["classifier"]["parameters"],
        w.classifier.params.len() / 4
    );
    assert_eq!(nets["causal_flow"]["parameters"], w.flow.params.len() / 4);
    let carma = w.carma.unwrap();
    assert_eq!(
        nets["mask_network"]["parameters"],
        carma.mask_net.params.len() / 4
    );
    assert_eq!(
        nets["action_network"]["parameters"],
        carma.action_net.params.len() / 4
    );
    assert_eq!(v["metrics"]["n_train"], w.meta.metrics.n_train);
}

#[test]
fn inspect_of_a_missing_file_names_it() {
    let err = fails(carma(["inspect", "/nonexistent/model.carma"]), 1);
    assert!(err.contains("/nonexistent/model.carma"), "{err}");
}

#[test]
fn a_model_of_another_format_version_gives_the_version_error() {
    let dir = TempDir::new("version");
    let mut bytes = fs::read(carma_fixture()).unwrap();
    // Bytes 8..10 hold the format version (u16 LE); nothing else is fixed.
    // Version 1 (row-major weights) is what older builds wrote.
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let model = dir.path("v1.carma");
    fs::write(&model, &bytes).unwrap();
    let err = fails(carma(["inspect".as_ref(), model.as_os_str()]), 1);
    assert!(err.contains("v1.carma"), "{err}");
    assert!(err.contains("format version 1 is not supported"), "{err}");
    let people = write(&dir, "p.csv", &people_csv(2));
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("format version 1"), "{err}");
}

#[test]
fn truncated_and_corrupted_models_give_typed_errors() {
    let dir = TempDir::new("corrupt");
    let bytes = fs::read(carma_fixture()).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("cut.carma", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        (
            "flip.carma",
            {
                let mut b = bytes.clone();
                b[100] ^= 0x40;
                b
            },
            "checksum",
        ),
        (
            "other.carma",
            b"PK\x03\x04 not a model at all".to_vec(),
            "bad magic",
        ),
    ];
    for (name, b, expected) in cases {
        let model = dir.path(name);
        fs::write(&model, b).unwrap();
        let err = fails(carma(["inspect".as_ref(), model.as_os_str()]), 1);
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
}

/// The core's own answer for every row of `people_csv`.
fn core_answers(csv: &str) -> Vec<(carma_core::Recommendation, Vec<f32>)> {
    let bytes = fs::read(carma_fixture()).unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    let mut scratch = vec![0.0; bundle.scratch_len()];
    csv.lines()
        .skip(1)
        .map(|line| {
            let x: Vec<f32> = line
                .split(',')
                .skip(1)
                .map(|c| c.parse().unwrap())
                .collect();
            let mut x_cf = vec![0.0; 7];
            // What `carma recommend` does by default: the proposal, refined.
            let options =
                carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
            let rec = bundle
                .recommend_with(&x, &options, &mut x_cf, &mut scratch)
                .unwrap();
            (rec, x_cf)
        })
        .collect()
}

#[test]
fn recommend_formats_agree_with_the_core() {
    let dir = TempDir::new("recommend");
    let csv = people_csv(30);
    let people = write(&dir, "people.csv", &csv);
    let expected = core_answers(&csv);
    let run = |format: &str| {
        stdout(&ok(carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "--format".as_ref(),
            format.as_ref(),
        ])))
    };

    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let people_json = json.as_array().unwrap();
    assert_eq!(people_json.len(), 30);
    let text = run("text");
    let csv_out = run("csv");
    let mut records = csv_out.lines();
    let header: Vec<&str> = records.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["row", "status", "prob_before"]);
    let x6 = header.iter().position(|h| *h == "x6_recommended").unwrap();
    for (i, ((rec, x_cf), (p, line))) in expected
        .iter()
        .zip(people_json.iter().zip(records))
        .enumerate()
    {
        assert_eq!(p["row"], i + 1);
        assert_eq!(p["already_accepted"], rec.already_accepted);
        assert_eq!(p["accepted"], rec.accepted);
        assert_eq!(p["prob_before"].as_f64().unwrap() as f32, rec.prob_before);
        assert_eq!(p["prob_after"].as_f64().unwrap() as f32, rec.prob_after);
        let actions: Vec<&str> = p["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["feature"].as_str().unwrap())
            .collect();
        let mask: Vec<String> = rec.mask.iter().map(|k| format!("x{k}")).collect();
        assert_eq!(actions, mask);
        assert_eq!(p["recommended"]["x6"].as_f64().unwrap() as f32, x_cf[6]);
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], (i + 1).to_string());
        assert_eq!(cells[x6].parse::<f32>().unwrap(), x_cf[6]);
        let person = format!("Person {}: ", i + 1);
        let para = text.lines().find(|l| l.starts_with(&person)).unwrap();
        if rec.already_accepted {
            assert!(para.contains("already accepted"), "{para}");
        } else {
            assert!(
                para.contains(&format!("rejected (p = {:.2})", rec.prob_before)),
                "{para}"
            );
            if rec.accepted {
                assert!(
                    para.contains(&format!("Then accepted (p = {:.2})", rec.prob_after)),
                    "{para}"
                );
            }
        }
    }
    assert!(expected.iter().any(|(r, _)| r.already_accepted));
    assert!(
        expected
            .iter()
            .any(|(r, _)| !r.already_accepted && !r.mask.is_empty())
    );
}

#[test]
fn recommend_output_is_the_same_on_one_thread_or_several() {
    let dir = TempDir::new("threads");
    // More rows than one thread's share of a chunk, so the parallel path splits them.
    let people = write(&dir, "people.csv", &people_csv(5000));
    let run = |jobs: &str, format: &str| {
        ok(carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "--jobs".as_ref(),
            jobs.as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "--id".as_ref(),
            "id".as_ref(),
        ]))
        .stdout
    };
    for format in ["json", "csv"] {
        let one = run("1", format);
        assert_eq!(one, run("3", format), "{format}");
        assert_eq!(one, run("2", format), "{format}");
    }
    let json: serde_json::Value = serde_json::from_slice(&run("3", "json")).unwrap();
    let people = json.as_array().unwrap();
    assert_eq!(people.len(), 5000);
    for (i, p) in people.iter().enumerate() {
        assert_eq!(p["row"], i + 1);
        assert_eq!(p["id"], format!("p{i}"), "each row keeps its own id");
    }
}

#[test]
fn forbidden_features_are_never_recommended_and_the_warning_says_why() {
    let dir = TempDir::new("forbid");
    let people = write(&dir, "people.csv", &people_csv(60));
    let o = ok(carma([
        "recommend".as_ref(),
        "--model".as_ref(),
        carma_fixture().as_os_str(),
        "--input".as_ref(),
        people.as_os_str(),
        "--forbid".as_ref(),
        "x3,x5".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut warned = 0;
    for p in v.as_array().unwrap() {
        for a in p["actions"].as_array().unwrap() {
            assert!(a["feature"] != "x3" && a["feature"] != "x5", "{p}");
        }
        let rejected = p["accepted"] == false;
        assert_eq!(p["warning"].is_string(), rejected, "{p}");
        if rejected {
            warned += 1;
            assert!(p["warning"].as_str().unwrap().contains("x3 and x5"), "{p}");
        }
    }
    assert!(warned > 0, "the fixture leaves some people rejected");
}

#[test]
fn unknown_forbid_feature_lists_the_valid_names() {
    let dir = TempDir::new("forbid-unknown");
    let people = write(&dir, "people.csv", &people_csv(3));
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "--forbid".as_ref(),
            "x1,salary".as_ref(),
        ]),
        1,
    );
    assert!(err.contains("unknown feature 'salary'"), "{err}");
    assert!(err.contains("x0, x1, x2, x3, x4, x5, x6"), "{err}");
}

#[test]
fn malformed_csv_names_the_file_row_and_column_and_leaves_no_output() {
    let dir = TempDir::new("malformed");
    let mut csv = people_csv(4);
    // Data row 3 (file line 4), column x3.
    let line = csv.lines().nth(3).unwrap().to_owned();
    let mut cells: Vec<&str> = line.split(',').collect();
    cells[4] = "abc";
    csv = csv.replace(&line, &cells.join(","));
    let people = write(&dir, "people.csv", &csv);
    let out = dir.path("out.csv");
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]),
        1,
    );
    for needle in [
        "people.csv",
        "line 4",
        "data row 3",
        "'x3'",
        "'abc'",
        "a number",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    assert_eq!(dir.entries(), ["people.csv"], "no output, no temporary");

    let missing = write(&dir, "missing.csv", "x0,x1,x2\n1,2,0\n");
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            missing.as_os_str(),
        ]),
        1,
    );
    assert!(
        err.contains("missing.csv") && err.contains("missing column 'x3'"),
        "{err}"
    );

    let binary = write(
        &dir,
        "binary.csv",
        "x0,x1,x2,x3,x4,x5,x6\n1,2,0.5,0,0,0,0\n",
    );
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            binary.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("'x2'") && err.contains("0 or 1"), "{err}");
}

#[test]
fn recommend_refuses_a_model_without_carma_and_a_missing_input() {
    let dir = TempDir::new("no-carma");
    let model = imported_model(&dir);
    let people = write(
        &dir,
        "people.csv",
        "gender,age,education,loan_amount,duration,income,savings\n0,1,0,1,1,1,1\n",
    );
    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
        ]),
        1,
    );
    assert!(
        err.contains("reference.carma") && err.contains("no CARMA networks"),
        "{err}"
    );

    let err = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            dir.path("nobody.csv").as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("nobody.csv"), "{err}");
}

/// A training configuration of about a second (the pipeline's tiny settings).
fn tiny_config(dir: &TempDir) -> PathBuf {
    let cfg = carma_train::pipeline::PipelineConfig::tiny(carma_train::scm::Dataset::Loan);
    write(dir, "tiny.toml", &toml::to_string(&cfg).unwrap())
}

#[test]
fn fit_then_inspect_and_recommend_on_a_simulated_table() {
    let dir = TempDir::new("fit");
    let (data, graph, model) = (
        dir.path("loan.csv"),
        dir.path("loan.toml"),
        dir.path("loan.carma"),
    );
    ok(carma([
        "simulate".as_ref(),
        "--dataset".as_ref(),
        "loan".as_ref(),
        "-n".as_ref(),
        "1000".as_ref(),
        "-o".as_ref(),
        data.as_os_str(),
        "--graph".as_ref(),
        graph.as_os_str(),
    ]));
    let config = tiny_config(&dir);
    let o = ok(carma([
        "fit".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--graph".as_ref(),
        graph.as_os_str(),
        "-o".as_ref(),
        model.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--seed".as_ref(),
        "4".as_ref(),
        "--epochs-scale".as_ref(),
        "2".as_ref(),
    ]));
    let progress = stderr(&o);
    assert!(
        progress.contains("classifier") && progress.contains("CARMA"),
        "{progress}"
    );
    let bytes = fs::read(&model).unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    assert!(bundle.carma().is_some());
    assert_eq!(bundle.wire().meta.dataset, "loan");
    assert_eq!(bundle.wire().meta.seed, 4);

    let v: serde_json::Value = serde_json::from_slice(
        &ok(carma([
            "inspect".as_ref(),
            model.as_os_str(),
            "--json".as_ref(),
        ]))
        .stdout,
    )
    .unwrap();
    // Loan's classes separate well: even a short training beats guessing by far.
    assert!(
        v["metrics"]["classifier_test_accuracy"].as_f64().unwrap() > 0.8,
        "{v}"
    );
    assert!(v["metrics"]["carma_coverage"].is_number());

    // The training CSV itself as input: the label column is ignored.
    let o = ok(carma([
        "recommend".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        data.as_os_str(),
        "--forbid".as_ref(),
        "income".as_ref(),
    ]));
    let text = stdout(&o);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Person ")).count(),
        1000
    );
    // An action reads "raise income from a to b" (or "..., income from" after a shared verb);
    // income may still move as a consequence of education ("income rises from").
    assert!(!text.contains(" income from"), "{text}");
    assert!(stderr(&o).contains("1000 people"), "{}", stderr(&o));

    // --classifier: a second model trained around the first one's frozen classifier.
    let second = dir.path("second.carma");
    ok(carma([
        "fit".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--graph".as_ref(),
        graph.as_os_str(),
        "-o".as_ref(),
        second.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--seed".as_ref(),
        "5".as_ref(),
        "--classifier".as_ref(),
        model.as_os_str(),
    ]));
    let again = fs::read(&second).unwrap();
    let b2 = Bundle::new(&again).unwrap();
    assert_eq!(b2.wire().classifier, bundle.wire().classifier);
    assert_eq!(b2.wire().scaler, bundle.wire().scaler);
    assert_eq!(b2.wire().meta.seed, 5);
    // A model file that is not one is refused, naming it, and nothing is written.
    let junk = write(&dir, "junk.carma", "not a model");
    let third = dir.path("third.carma");
    let err = fails(
        carma([
            "fit".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--graph".as_ref(),
            graph.as_os_str(),
            "-o".as_ref(),
            third.as_os_str(),
            "--classifier".as_ref(),
            junk.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("junk.carma"), "{err}");
    assert!(!third.exists());
}

#[test]
fn fit_refuses_a_cyclic_graph_naming_the_file_and_the_cycle() {
    let dir = TempDir::new("cycle");
    let data = write(&dir, "d.csv", "a,b,y\n1,2,0\n2,3,1\n");
    let graph = write(
        &dir,
        "cyclic.toml",
        "[[feature]]\nname = \"a\"\nkind = \"continuous\"\nactionable = true\nparents = [\"b\"]\n\n\
         [[feature]]\nname = \"b\"\nkind = \"continuous\"\nactionable = true\nparents = [\"a\"]\n",
    );
    let model = dir.path("m.carma");
    let err = fails(
        carma([
            "fit".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--graph".as_ref(),
            graph.as_os_str(),
            "-o".as_ref(),
            model.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("cyclic.toml"), "{err}");
    assert!(err.contains("has a cycle: b -> a -> b"), "{err}");
    assert_eq!(err.matches("has a cycle").count(), 1, "said once: {err}");
    assert!(!model.exists());
}

#[test]
fn fit_on_bad_data_names_row_and_column_and_writes_no_model() {
    let dir = TempDir::new("fit-bad");
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loan-graph.toml");
    let model = dir.path("m.carma");
    let header = "gender,age,education,loan_amount,duration,income,savings,y\n";
    let data = write(
        &dir,
        "d.csv",
        &format!("{header}0,1,2,3,4,5,6,1\n1,1,2,x3,4,5,6,0\n"),
    );
    let run = |data: &Path| {
        carma([
            "fit".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--graph".as_ref(),
            graph.as_os_str(),
            "-o".as_ref(),
            model.as_os_str(),
        ])
    };
    let err = fails(run(&data), 1);
    for needle in ["d.csv", "line 3", "data row 2", "'loan_amount'", "'x3'"] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    let unlabeled = write(
        &dir,
        "u.csv",
        "gender,age,education,loan_amount,duration,income,savings\n0,1,2,3,4,5,6\n",
    );
    let err = fails(run(&unlabeled), 1);
    assert!(
        err.contains("u.csv") && err.contains("missing column 'y'"),
        "{err}"
    );
    assert!(!model.exists());
    fails(run(&dir.path("absent.csv")), 1);
}

#[test]
fn fit_refuses_a_bad_configuration_naming_the_file() {
    let dir = TempDir::new("fit-config");
    let config = write(&dir, "c.toml", "[flow]\nepochz = 3\n");
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loan-graph.toml");
    let err = fails(
        carma([
            "fit".as_ref(),
            "--data".as_ref(),
            "d.csv".as_ref(),
            "--graph".as_ref(),
            graph.as_os_str(),
            "-o".as_ref(),
            dir.path("m.carma").as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("c.toml") && err.contains("epochz"), "{err}");
    fails(
        carma([
            "fit",
            "--data",
            "d.csv",
            "--graph",
            "g.toml",
            "-o",
            "m",
            "--epochs-scale",
            "-1",
        ]),
        2,
    );
}

#[test]
fn fast_demo_shows_rejected_applicants_and_summary_metrics() {
    let dir = TempDir::new("demo");
    let saved = dir.path("demo.carma");
    let o = ok(carma([
        "demo".as_ref(),
        "--fast".as_ref(),
        "--show".as_ref(),
        "2".as_ref(),
        "--save".as_ref(),
        saved.as_os_str(),
    ]));
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Person ")).count(),
        2,
        "{out}"
    );
    for needle in ["coverage", "causal validity", "cost x100", "per individual"] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let bytes = fs::read(&saved).unwrap();
    assert!(Bundle::new(&bytes).unwrap().carma().is_some());
}

#[test]
fn fast_oracle_lists_each_individual_and_both_scores() {
    let o = ok(carma([
        "oracle",
        "--dataset",
        "triangle-lin",
        "-n",
        "3",
        "--bins",
        "7",
        "--fast",
    ]));
    let out = stdout(&o);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Individual "))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("oracle changes") && l.contains("CARMA changes"))
    );
    assert!(
        out.contains("| oracle |") && out.contains("| CARMA |"),
        "{out}"
    );
}

#[test]
fn recommend_reads_bom_and_crlf_input_and_handles_header_only_and_empty_files() {
    let dir = TempDir::new("csv-forms");
    let csv = people_csv(5);
    let plain = write(&dir, "plain.csv", &csv);
    let windows = write(
        &dir,
        "windows.csv",
        &format!("\u{feff}{}", csv.replace('\n', "\r\n")),
    );
    let run = |input: &Path| {
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            input.as_os_str(),
            "--format".as_ref(),
            "csv".as_ref(),
        ])
    };
    assert_eq!(ok(run(&plain)).stdout, ok(run(&windows)).stdout);

    let header_only = write(&dir, "header.csv", "x0,x1,x2,x3,x4,x5,x6\n");
    let o = ok(run(&header_only));
    assert_eq!(stdout(&o).lines().count(), 1, "only the output header");
    assert!(stderr(&o).contains("0 people"), "{}", stderr(&o));

    let empty = write(&dir, "empty.csv", "");
    let err = fails(run(&empty), 1);
    assert!(err.contains("empty.csv") && err.contains("empty"), "{err}");
}

#[test]
fn recommend_repeats_the_id_column_and_refuses_an_unknown_one() {
    let dir = TempDir::new("id");
    let people = write(&dir, "people.csv", &people_csv(4));
    let run = |format: &str, id: &str| {
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "--format".as_ref(),
            format.as_ref(),
            "--id".as_ref(),
            id.as_ref(),
        ])
    };
    let text = stdout(&ok(run("text", "id")));
    for i in 0..4 {
        assert!(text.contains(&format!("Person p{i}: ")), "{text}");
    }
    let csv = stdout(&ok(run("csv", "id")));
    assert!(csv.starts_with("row,id,status,"), "{csv}");
    assert!(csv.lines().nth(2).unwrap().starts_with("2,p1,"), "{csv}");
    let err = fails(run("text", "person"), 1);
    assert!(
        err.contains("people.csv") && err.contains("no column 'person'"),
        "{err}"
    );
    assert!(err.contains("id, x0, x1"), "{err}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_while_writing_leaves_no_temporary_and_no_output() {
    use std::io::Write as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = TempDir::new("interrupt");
    let out = dir.path("out.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_carma"))
        .args([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
        ])
        .args(["--input", "-", "--format", "csv", "-o"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the carma binary runs");
    // A header and a few rows, and the input left open: `recommend` waits for more with its
    // output's temporary open beside the destination.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(people_csv(3).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    while !dir.entries().iter().any(|e| e.starts_with(".out.csv.tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            dir.entries()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(130));
    assert_eq!(dir.entries(), Vec::<String>::new());
}

/// `carma recommend` refines by default, as `Bundle::recommend_with` with the default `Refine`
/// does; `--no-refine` gives the networks' proposals (`Bundle::recommend`); both report the
/// proposal's cost as `cost_unrefined`, and a refined cost never exceeds it when the proposal
/// reached the margin.
#[test]
fn recommend_refines_by_default_and_no_refine_shows_the_proposals() {
    let dir = TempDir::new("refine");
    let csv = people_csv(60);
    let people = write(&dir, "people.csv", &csv);
    let bytes = fs::read(carma_fixture()).unwrap();
    let bundle = Bundle::new(&bytes).unwrap();
    let mut scratch = vec![0.0; bundle.scratch_len()];
    let run = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "recommend".to_owned(),
            "--model".to_owned(),
            carma_fixture().display().to_string(),
            "--input".to_owned(),
            people.display().to_string(),
            "--format".to_owned(),
            "json".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let v: serde_json::Value = serde_json::from_str(&stdout(&ok(carma(args)))).unwrap();
        v.as_array().unwrap().clone()
    };
    let refined = run(&[]);
    let raw = run(&["--no-refine"]);
    let (mut changed, mut rejected) = (0, 0);
    for (k, line) in csv.lines().skip(1).enumerate() {
        let x: Vec<f32> = line
            .split(',')
            .skip(1)
            .map(|c| c.parse().unwrap())
            .collect();
        let mut x_cf = vec![0.0; 7];
        let options =
            carma_core::Options::new(FeatureSet::EMPTY, Some(carma_core::Refine::DEFAULT));
        let want = bundle
            .recommend_with(&x, &options, &mut x_cf, &mut scratch)
            .unwrap();
        let proposal = bundle
            .recommend(&x, FeatureSet::EMPTY, &mut x_cf, &mut scratch)
            .unwrap();
        let f = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
        assert_eq!(f(&refined[k]["cost"]), want.cost, "row {k}");
        assert_eq!(f(&refined[k]["prob_after"]), want.prob_after, "row {k}");
        assert_eq!(f(&refined[k]["cost_unrefined"]), proposal.cost, "row {k}");
        assert_eq!(f(&raw[k]["cost"]), proposal.cost, "row {k}");
        assert_eq!(f(&raw[k]["cost_unrefined"]), proposal.cost, "row {k}");
        if want.refined && proposal.prob_after >= carma_core::Refine::DEFAULT.min_prob {
            assert!(want.cost <= proposal.cost, "row {k}");
        }
        changed += usize::from(want.refined);
        rejected += usize::from(!proposal.already_accepted);
    }
    assert!(
        rejected > 5 && changed > 0,
        "{rejected} rejected, {changed} refined"
    );
    let bad = fails(
        carma([
            "recommend".as_ref(),
            "--model".as_ref(),
            carma_fixture().as_os_str(),
            "--input".as_ref(),
            people.as_os_str(),
            "--min-prob".as_ref(),
            "0.3".as_ref(),
        ]),
        2,
    );
    assert!(bad.contains("between 0.5 and 1"), "{bad}");
}
