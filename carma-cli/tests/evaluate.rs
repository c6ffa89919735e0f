//! `carma evaluate` driven as a user would: tiny (`--fast`) runs of one seed on a few rejected
//! individuals, the files it writes, and its usage errors.

use std::fs;

mod support;
use support::cli::{TempDir, carma, ok, text, usage_error};

/// The figures every method must carry in results.json (issue 4).
const REQUIRED: [&str; 6] = [
    "cost_x100",
    "coverage_pct",
    "mean_actions",
    "mean_prob",
    "us_per_individual",
    "validity_pct",
];

#[test]
fn fast_evaluate_writes_results_json_and_results_md_for_the_requested_methods() {
    let dir = TempDir::new("all-methods");
    let out = dir.0.to_str().unwrap();
    let args = [
        "evaluate",
        "--dataset",
        "chain-lin",
        "--seeds",
        "1",
        "--first-seed",
        "4",
        "--methods",
        "carma,oracle,optimizer,dice-vae",
        "--max-individuals",
        "6",
        "--fast",
        "--jobs",
        "2",
        "--out",
        out,
    ];
    let o = ok(carma(&args));
    let stdout = text(&o.stdout);
    assert_eq!(
        dir.entries(),
        ["RESULTS.md", "history.json", "results.json", "runs.json"]
    );
    // CARMA's training, epoch by epoch, for the one seed trained.
    let h: serde_json::Value = serde_json::from_str(&dir.read("history.json")).unwrap();
    let epochs = h["carma"]["chain-lin"]["4"].as_array().unwrap();
    assert!(!epochs.is_empty());
    for (k, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], k + 1);
        for q in ["loss", "cost", "hinge", "lambda", "val_coverage"] {
            assert!(e[q].is_number(), "epoch {}: {q} {}", k + 1, e[q]);
        }
    }

    let v: serde_json::Value = serde_json::from_str(&dir.read("results.json")).unwrap();
    let settings = v.as_object().unwrap();
    assert_eq!(settings.keys().collect::<Vec<_>>(), ["chain-lin"]);
    let methods = settings["chain-lin"].as_object().unwrap();
    let mut names: Vec<&str> = methods.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["carma", "dice-vae", "optimizer", "oracle"]);
    for (method, r) in methods {
        for key in REQUIRED {
            assert!(r[key]["mean"].is_number(), "{method}.{key}: {r}");
            // One seed: no spread.
            assert_eq!(r[key]["std"].as_f64(), Some(0.0), "{method}.{key}");
        }
        let n = r["n_test"].as_u64().unwrap();
        assert!((1..=6).contains(&n), "{method}: n_test {n}");
        assert_eq!(r["feature_names"].as_array().unwrap().len(), 4);
        assert_eq!(r["feature_rates"].as_array().unwrap().len(), 4);
        let hist: u64 = r["actions_histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(hist, n, "{method}: every individual counted once");
        assert_eq!(r["seeds"], serde_json::json!([4]));
    }
    // Every method scored the same individuals.
    let n = methods["carma"]["n_test"].clone();
    assert!(methods.values().all(|r| r["n_test"] == n));
    // The oracle searches the true SCM: what it accepts is causally valid.
    let oracle = &methods["oracle"];
    assert_eq!(
        oracle["coverage_pct"]["mean"],
        oracle["validity_pct"]["mean"]
    );

    let md = dir.read("RESULTS.md");
    assert!(
        md.contains(&format!("carma {}", args.join(" "))),
        "the exact command:\n{md}"
    );
    assert!(md.contains("logical CPUs (`nproc`)") && md.contains(" UTC"));
    for m in ["oracle", "optimizer", "dice-vae", "carma"] {
        let row = format!("| chain-lin | {m} |");
        assert!(md.contains(&row), "{row} missing from\n{md}");
        assert!(stdout.contains(&row), "{row} missing from stdout\n{stdout}");
    }
    assert!(!md.contains("Partial"), "a finished run is not partial");
    for section in [
        "## Targets",
        "## Interventions per setting",
        "### chain-lin",
    ] {
        assert!(md.contains(section), "{section} missing from\n{md}");
    }
    // The targets row of chain-lin compares CARMA's cost with the oracle's.
    let targets = md
        .lines()
        .find(|l| l.starts_with("| chain-lin |") && l.contains("met") && l.contains(" vs "))
        .unwrap_or_else(|| panic!("no targets row in\n{md}"));
    assert!(!targets.contains("not checked"), "{targets}");
    // Per-feature rates name the dataset's features.
    assert!(md.contains("| x_s |") && md.contains("| x_3 |"), "{md}");
    // Progress goes to standard error, per method.
    let err = text(&o.stderr);
    assert!(err.contains("chain-lin, seed 4"), "{err}");
    assert!(err.contains("dice-vae") && err.contains("µs per individual"));
}

#[test]
fn fast_loan_and_loan_weighted_are_compared_side_by_side() {
    let dir = TempDir::new("loan");
    let o = ok(carma(&[
        "evaluate",
        "--dataset",
        "loan,loan-weighted",
        "--seeds",
        "1",
        "--methods",
        "carma",
        "--max-individuals",
        "8",
        "--fast",
        "--out",
        dir.0.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_str(&dir.read("results.json")).unwrap();
    for setting in ["loan", "loan-weighted"] {
        let r = &v[setting]["carma"];
        assert!(r["cost_x100"]["mean"].is_number(), "{setting}: {v}");
        assert_eq!(r["feature_names"][2], "education");
        assert!(
            v[setting].get("oracle").is_none(),
            "only the methods asked for"
        );
    }
    let md = dir.read("RESULTS.md");
    assert!(
        md.contains("## Preferences: Loan unweighted and weighted"),
        "{md}"
    );
    assert!(md.contains("carma loan | carma loan-weighted |"), "{md}");
    // Education carries weight 3 in the weighted setting.
    assert!(md.contains("| education | 3 |"), "{md}");
    assert!(md.contains("not checked (oracle not run)"), "{md}");
    assert!(text(&o.stdout).contains("## Preferences"));
}

#[test]
fn resume_runs_only_the_missing_methods_and_refuses_other_options() {
    let dir = TempDir::new("resume");
    let out = dir.0.to_str().unwrap();
    let base = [
        "evaluate",
        "--dataset",
        "triangle-lin",
        "--seeds",
        "1",
        "--max-individuals",
        "4",
        "--fast",
        "--out",
        out,
    ];
    let first = ok(carma(&[&base[..], &["--methods", "carma"]].concat()));
    assert!(text(&first.stderr).contains("carma running"));
    let carma_first: serde_json::Value = serde_json::from_str(&dir.read("results.json")).unwrap();
    // A runs.json written before history.json existed resumes as well.
    fs::remove_file(dir.0.join("history.json")).unwrap();
    let second = ok(carma(
        &[&base[..], &["--methods", "carma,oracle", "--resume"]].concat(),
    ));
    let err = text(&second.stderr);
    assert!(err.contains("oracle running"), "{err}");
    assert!(
        !err.contains("carma running"),
        "CARMA's scores are reused: {err}"
    );
    let v: serde_json::Value = serde_json::from_str(&dir.read("results.json")).unwrap();
    assert_eq!(
        v["triangle-lin"]["carma"],
        carma_first["triangle-lin"]["carma"]
    );
    assert!(v["triangle-lin"]["oracle"]["cost_x100"]["mean"].is_number());
    // The seed was trained again (for the oracle): its history is back.
    let history = dir.read("history.json");
    let h: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert!(
        h["carma"]["triangle-lin"]["0"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    // Everything present: nothing is trained again.
    let third = ok(carma(
        &[&base[..], &["--methods", "oracle", "--resume"]].concat(),
    ));
    assert!(text(&third.stderr).contains("scores reused"));
    assert_eq!(dir.read("history.json"), history, "kept as it was");
    // Scores made with other options are not mixed in.
    let o = carma(
        &[
            &base[..7],
            &["--out", out, "--methods", "carma", "--resume"],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("other options"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn unknown_dataset_or_method_is_a_usage_error_naming_the_valid_ones() {
    let err = usage_error(carma(&["evaluate", "--dataset", "mortgage", "--fast"]));
    assert!(err.contains("mortgage"), "{err}");
    for name in ["triangle-lin", "chain-nlin", "loan", "loan-weighted", "all"] {
        assert!(err.contains(name), "{name} missing from {err}");
    }
    let err = usage_error(carma(&[
        "evaluate",
        "--dataset",
        "loan",
        "--methods",
        "carma,dice",
    ]));
    assert!(err.contains("dice"), "{err}");
    for name in ["oracle", "optimizer", "dice-vae", "carma"] {
        assert!(err.contains(name), "{name} missing from {err}");
    }
    let err = usage_error(carma(&["evaluate", "--epochs-scale", "0"]));
    assert!(err.contains("positive"), "{err}");
    let err = usage_error(carma(&["evaluate", "--seeds", "0"]));
    assert!(err.contains("--seeds"), "{err}");
}
