//! `carma tune` driven as a user would, on the tiny (`--fast`) settings: the study file and the
//! configuration it writes, `carma fit --config` reading that configuration, resuming a
//! study, and the refusals (a corrupt or mismatched study, bad arguments).

use std::fs;
use std::process::Output;

mod support;
use support::cli::{TempDir, carma, failure, ok, text, usage_error};

fn tune(dataset: &str, trials: &str, study: &str, out: &str) -> Output {
    carma(&[
        "tune",
        "--dataset",
        dataset,
        "--fast",
        "--trials",
        trials,
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--startup",
        "2",
        "--max-individuals",
        "60",
        "--study",
        study,
        "-o",
        out,
    ])
}

fn study_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The trials without their wall times.
fn trials(study: &serde_json::Value) -> Vec<serde_json::Value> {
    study["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.as_object_mut().unwrap().remove("seconds");
            t
        })
        .collect()
}

#[test]
fn tune_writes_a_study_and_a_config_that_fit_reads_and_resumes_with_earlier_trials_kept() {
    let dir = TempDir::new("e2e");
    let (study, best) = (dir.arg("study.json"), dir.arg("best.toml"));
    let o = ok(tune("chain-lin", "3", &study, &best));
    let stderr = text(&o.stderr);
    assert!(stderr.contains("trial 3/3"), "{stderr}");
    assert!(stderr.contains("best #"), "{stderr}");
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Pareto front"), "{stdout}");

    let s = study_json(&study);
    assert_eq!(s["format"], "carma-tune-study");
    assert_eq!(s["settings"]["target"]["dataset"]["name"], "chain-lin");
    let first = trials(&s);
    assert_eq!(first.len(), 3);
    for t in &first {
        let scores = t["scores"].as_array().unwrap();
        assert!(!scores.is_empty(), "{t}");
        for sc in scores {
            let cov = sc["coverage_pct"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&cov));
            assert!(sc["cost_x100"].as_f64().unwrap() >= 0.0);
            // The oracle ran on the validation individuals of each seed.
            assert!(sc["cost_over_oracle"].as_f64().is_some(), "{sc}");
        }
    }
    let best_n = s["best"].as_u64().unwrap() as usize;
    let front: Vec<u64> = s["pareto"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(!front.is_empty());

    // The configuration holds the best trial's CARMA settings, as `carma fit --config` reads.
    let cfg: toml::Value = toml::from_str(&fs::read_to_string(&best).unwrap()).unwrap();
    let best_trial = first.iter().find(|t| t["number"] == best_n as u64).unwrap();
    assert_eq!(
        cfg["carma"]["epochs"].as_integer().unwrap() as u64,
        best_trial["carma"]["epochs"].as_u64().unwrap()
    );
    assert_eq!(
        cfg["carma"]["batch_size"].as_integer().unwrap() as u64,
        best_trial["carma"]["batch_size"].as_u64().unwrap()
    );
    let (data, graph, model) = (dir.arg("d.csv"), dir.arg("g.toml"), dir.arg("m.carma"));
    ok(carma(&[
        "simulate",
        "--dataset",
        "chain-lin",
        "-n",
        "1500",
        "--seed",
        "3",
        "-o",
        &data,
        "--graph",
        &graph,
    ]));
    let fit = ok(carma(&[
        "fit", "--data", &data, "--graph", &graph, "--config", &best, "-o", &model,
    ]));
    assert!(text(&fit.stdout).contains("wrote"), "{}", text(&fit.stdout));

    // Resume: the study grows to 4 trials and keeps the first 3 as they were.
    let o = ok(tune("chain-lin", "4", &study, &best));
    assert!(text(&o.stderr).contains("resuming"), "{}", text(&o.stderr));
    let grown = trials(&study_json(&study));
    assert_eq!(grown.len(), 4);
    assert_eq!(&grown[..3], &first[..]);
    assert_eq!(grown[3]["number"], 3);

    // The same study for another dataset is refused, and left as it was.
    let before = fs::read_to_string(&study).unwrap();
    let err = failure(tune("triangle-lin", "5", &study, &best));
    assert!(err.contains("made for another target"), "{err}");
    assert_eq!(fs::read_to_string(&study).unwrap(), before);
}

#[test]
fn a_corrupt_study_file_is_refused_and_left_alone() {
    let dir = TempDir::new("corrupt");
    let (study, best) = (dir.arg("study.json"), dir.arg("best.toml"));
    for bad in [
        "{\"format\": \"carma-tune-study\"",
        "[1, 2, 3]",
        "{\"format\": \"other\"}",
    ] {
        fs::write(&study, bad).unwrap();
        let err = failure(tune("chain-lin", "2", &study, &best));
        assert!(err.contains("not a valid study file"), "{err}");
        assert_eq!(fs::read_to_string(&study).unwrap(), bad);
        assert!(!std::path::Path::new(&best).exists());
    }
}

#[test]
fn tune_on_a_users_csv_scores_cost_and_coverage_without_an_oracle() {
    let dir = TempDir::new("csv");
    let (data, graph) = (dir.arg("d.csv"), dir.arg("g.toml"));
    ok(carma(&[
        "simulate",
        "--dataset",
        "chain-lin",
        "-n",
        "1500",
        "-o",
        &data,
        "--graph",
        &graph,
    ]));
    let (study, best) = (dir.arg("s.json"), dir.arg("best.toml"));
    ok(carma(&[
        "tune", "--data", &data, "--graph", &graph, "--fast", "--trials", "2", "--seeds", "1",
        "--study", &study, "-o", &best,
    ]));
    let s = study_json(&study);
    assert!(s["settings"]["target"]["table"]["data_hash"].is_string());
    for t in trials(&s) {
        for sc in t["scores"].as_array().unwrap() {
            assert!(sc["coverage_pct"].as_f64().is_some());
            assert!(sc["cost_over_oracle"].is_null(), "{sc}");
        }
    }
    let cfg: toml::Value = toml::from_str(&fs::read_to_string(&best).unwrap()).unwrap();
    assert!(cfg["carma"]["lr"].as_float().unwrap() > 0.0);
}

#[test]
fn bad_arguments_get_clear_errors() {
    let dir = TempDir::new("bad");
    let best = dir.arg("b.toml");
    let err = usage_error(carma(&[
        "tune",
        "--dataset",
        "loan",
        "--trials",
        "0",
        "-o",
        &best,
    ]));
    assert!(err.contains("--trials"), "{err}");
    let err = usage_error(carma(&[
        "tune",
        "--dataset",
        "loan",
        "--coverage",
        "101",
        "-o",
        &best,
    ]));
    assert!(err.contains("--coverage"), "{err}");
    let err = usage_error(carma(&["tune", "-o", &best]));
    assert!(err.contains("--dataset"), "{err}");
    let err = failure(carma(&["tune", "--dataset", "nope", "-o", &best]));
    assert!(err.contains("unknown dataset 'nope'"), "{err}");
    let err = failure(carma(&["tune", "--dataset", "all", "-o", &best]));
    assert!(err.contains("one dataset at a time"), "{err}");
    let space = dir.arg("space.toml");
    let paper = "[lr]\nkind = \"float\"\nlo = 0.01\nhi = 0.001\nlog = true\n";
    fs::write(&space, paper).unwrap();
    let err = failure(carma(&[
        "tune",
        "--dataset",
        "loan",
        "--space",
        &space,
        "-o",
        &best,
    ]));
    assert!(err.contains("invalid search space"), "{err}");
    // The output may not replace an input.
    let err = failure(carma(&[
        "tune",
        "--dataset",
        "loan",
        "--space",
        &space,
        "-o",
        &space,
    ]));
    assert!(err.contains("--space"), "{err}");
    assert!(!std::path::Path::new(&best).exists());
}

#[test]
fn tune_is_listed_and_its_help_has_an_example() {
    let top = text(&ok(carma(&["--help"])).stdout);
    assert!(top.contains("tune"), "{top}");
    let help = text(&ok(carma(&["tune", "--help"])).stdout);
    assert!(help.contains("Example"), "{help}");
    assert!(help.contains("carma tune --dataset"), "{help}");
    assert!(help.contains("carma fit --data"), "{help}");
}
