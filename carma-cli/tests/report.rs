//! `carma report` as a user runs it: figures drawn from a small runs.json and history.json built
//! here (two seeds, a few settings, no training), parsed as XML and checked for their series
//! (names, number of bars and lines, which bar is taller), not their pixels; bad input; the
//! committed figures.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

mod support;
use support::cli::{TempDir, carma, entries, text};

const LOAN: [&str; 7] = [
    "gender",
    "age",
    "education",
    "loan_amount",
    "duration",
    "income",
    "savings",
];
const FOUR: [&str; 4] = ["x_s", "x_1", "x_2", "x_3"];

/// One method's scores on one seed: `rates` per feature, everyone intervened on exactly one
/// feature (so the histogram has all `n` in bin 1).
fn scores(cost_x100: f64, rates: &[f64]) -> Value {
    let n = 20;
    let mut hist = vec![0; rates.len() + 1];
    hist[1] = n;
    json!({
        "cost_x100": cost_x100,
        "coverage_pct": 100.0,
        "mean_actions": 1.0,
        "mean_prob": 0.7,
        "us_per_individual": 3.0,
        "validity_pct": 100.0,
        "n_test": n,
        "feature_rates": rates,
        "actions_histogram": hist,
    })
}

/// The costs the fixture gives every method on loan: carma twice the oracle's, dice-vae equal
/// to it, carma-refined 1.5 times.
const LOAN_RATIO: [(&str, f64); 4] = [
    ("oracle", 1.0),
    ("dice-vae", 1.0),
    ("carma", 2.0),
    ("carma-refined", 1.5),
];

/// chain-lin, loan and loan-weighted over seeds 0 and 1; on chain-lin, carma-refined ran on
/// seed 0 only and dice-vae not at all.
fn fixture(classifier: &str) -> Value {
    let mut runs = BTreeMap::new();
    let loan_rates = [0.0, 0.0, 0.5, 0.25, 0.0, 0.5, 0.25];
    let weighted_rates = [0.0, 0.0, 0.1, 0.1, 0.0, 0.25, 0.75];
    for setting in ["chain-lin", "loan", "loan-weighted"] {
        let mut seeds = BTreeMap::new();
        for seed in 0..2u64 {
            let oracle_cost = 10.0 + seed as f64;
            let mut methods = serde_json::Map::new();
            for (method, ratio) in LOAN_RATIO {
                let rates: &[f64] = match setting {
                    "chain-lin" => &[0.0, 1.0, 0.5, 0.25],
                    "loan" => &loan_rates,
                    _ => &weighted_rates,
                };
                if setting == "chain-lin"
                    && (method == "dice-vae" || (method == "carma-refined" && seed == 1))
                {
                    continue;
                }
                methods.insert(method.into(), scores(ratio * oracle_cost, rates));
            }
            seeds.insert(seed.to_string(), Value::Object(methods));
        }
        runs.insert(setting.to_owned(), seeds);
    }
    json!({
        "options": {
            "fast": true,
            "epochs_scale": 1.0,
            "max_individuals": null,
            "classifier": classifier,
            "optimizer_individuals": null,
        },
        "runs": runs,
    })
}

/// A parsed figure.
struct Svg(String);

impl Svg {
    fn read(path: &Path) -> Svg {
        let s = fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&s)
            .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        Svg(s)
    }

    fn doc(&self) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(&self.0).unwrap()
    }

    /// Every text element's text, trimmed.
    fn texts(&self) -> Vec<String> {
        self.doc()
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").trim().to_owned())
            .collect()
    }

    /// The fill of the legend swatch drawn just before the legend text `label`.
    fn legend_fill(&self, label: &str) -> String {
        let doc = self.doc();
        let text = doc
            .descendants()
            .find(|n| n.has_tag_name("text") && n.text().unwrap_or("").trim() == label)
            .unwrap_or_else(|| panic!("no legend entry '{label}'"));
        let swatch = text.prev_sibling_element().expect("a swatch before it");
        assert!(swatch.has_tag_name("rect"), "{label}: swatch is not a bar");
        swatch.attribute("fill").unwrap().to_owned()
    }

    /// Heights of the filled rectangles in `fill` (bars and the legend swatch), in order.
    fn bars(&self, fill: &str) -> Vec<i64> {
        self.doc()
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(fill))
            .map(|n| n.attribute("height").unwrap().parse().unwrap())
            .collect()
    }

    fn polylines(&self) -> usize {
        self.doc()
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .count()
    }

    /// The points of each line stroked in `stroke`, in order.
    fn lines(&self, stroke: &str) -> Vec<usize> {
        self.doc()
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(stroke))
            .map(|n| {
                n.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .count()
            })
            .collect()
    }

    /// The stroke of the legend line drawn just before the legend text `label`.
    fn legend_stroke(&self, label: &str) -> String {
        let doc = self.doc();
        let text = doc
            .descendants()
            .find(|n| n.has_tag_name("text") && n.text().unwrap_or("").trim() == label)
            .unwrap_or_else(|| panic!("no legend entry '{label}'"));
        let swatch = text.prev_sibling_element().expect("a swatch before it");
        assert!(
            swatch.has_tag_name("polyline"),
            "{label}: swatch is not a line"
        );
        swatch.attribute("stroke").unwrap().to_owned()
    }
}

/// Write the fixture, run `carma report` on it, and return the output directory's guard.
fn report(dir: &TempDir, classifier: &str) -> (Output, PathBuf) {
    let runs = dir.write(
        "runs.json",
        &serde_json::to_string_pretty(&fixture(classifier)).unwrap(),
    );
    let out = dir.path("figures");
    let o = carma(&[
        "report",
        "--runs",
        runs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    (o, out)
}

#[test]
fn report_writes_the_four_figures_and_lists_them() {
    let dir = TempDir::new("four");
    let (o, out) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let names = [
        "reference-actions.svg",
        "reference-cost-vs-oracle.svg",
        "reference-intervention-rates.svg",
        "reference-loan-preferences.svg",
    ];
    // Only the figures: no temporary left behind.
    assert_eq!(entries(&out), names);
    let listed: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    assert_eq!(listed.len(), 4);
    for name in names {
        assert!(listed.iter().any(|l| l.ends_with(name)), "{listed:?}");
        Svg::read(&out.join(name));
    }
}

#[test]
fn intervention_rates_have_every_feature_and_a_bar_per_method_and_feature() {
    let dir = TempDir::new("rates");
    let (o, out) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = Svg::read(&out.join("reference-intervention-rates.svg"));
    let texts = svg.texts();
    for name in FOUR.iter().chain(&LOAN) {
        assert!(texts.iter().any(|t| t == name), "no feature {name}");
    }
    for caption in [
        "chain-lin (2 seeds)",
        "loan (2 seeds)",
        "loan-weighted (2 seeds)",
    ] {
        assert!(texts.iter().any(|t| t == caption), "no panel {caption}");
    }
    // A bar per feature of each setting where the method ran, plus the legend swatch.
    let per_setting = FOUR.len() + 2 * LOAN.len();
    for method in ["oracle", "carma"] {
        assert_eq!(svg.bars(&svg.legend_fill(method)).len(), per_setting + 1);
    }
    // dice-vae never ran on chain-lin: no bars there.
    let dice = svg.bars(&svg.legend_fill("dice-vae"));
    assert_eq!(dice.len(), 2 * LOAN.len() + 1);
    // The bars follow the rates: on chain-lin, x_1 (rate 1) is twice x_2 (0.5), four times
    // x_3 (0.25), and x_s (0) has no height.
    let oracle = svg.bars(&svg.legend_fill("oracle"));
    let chain = &oracle[1..=FOUR.len()];
    assert_eq!(chain[0], 0);
    assert!((chain[1] - 2 * chain[2]).abs() <= 1, "{chain:?}");
    assert!((chain[1] - 4 * chain[3]).abs() <= 2, "{chain:?}");
}

#[test]
fn actions_histogram_has_a_bin_per_count_of_features() {
    let dir = TempDir::new("actions");
    let (o, out) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = Svg::read(&out.join("reference-actions.svg"));
    let texts = svg.texts();
    for k in 0..=LOAN.len() {
        assert!(texts.iter().any(|t| *t == k.to_string()), "no bin {k}");
    }
    // Bins 0..=D of each setting, plus the legend swatch.
    let bins = (FOUR.len() + 1) + 2 * (LOAN.len() + 1);
    let carma = svg.bars(&svg.legend_fill("carma"));
    assert_eq!(carma.len(), bins + 1);
    // Everyone changed exactly one feature: bin 1 holds every bar's height, the rest none.
    let chain = &carma[1..=FOUR.len() + 1];
    assert!(chain[1] > 0 && chain.iter().enumerate().all(|(k, &h)| k == 1 || h == 0));
}

#[test]
fn cost_figure_has_a_bar_and_error_bar_per_method_and_setting_and_the_oracle_line() {
    let dir = TempDir::new("cost");
    let (o, out) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = Svg::read(&out.join("reference-cost-vs-oracle.svg"));
    let texts = svg.texts();
    for setting in ["chain-lin", "loan", "loan-weighted"] {
        assert!(texts.iter().any(|t| t == setting), "no setting {setting}");
    }
    assert!(texts.iter().any(|t| t == "oracle (1)"));
    assert!(texts.iter().any(|t| t == "CARMA's target (1.10)"));
    // The oracle is the line at 1, not a bar.
    assert!(!texts.iter().any(|t| t == "oracle"));
    let carma = svg.bars(&svg.legend_fill("carma"));
    let refined = svg.bars(&svg.legend_fill("carma-refined"));
    let dice = svg.bars(&svg.legend_fill("dice-vae"));
    assert_eq!((carma.len(), refined.len(), dice.len()), (4, 4, 3));
    // On loan (the second setting) carma costs twice the oracle, dice-vae as much as it.
    assert!((carma[2] - 2 * dice[1]).abs() <= 1, "{carma:?} {dice:?}");
    assert!(
        (2 * refined[2] - 3 * dice[1]).abs() <= 2,
        "{refined:?} {dice:?}"
    );
    // Error bars (3 strokes per bar: 10 bars), the two reference lines, the mesh and axes.
    assert!(svg.polylines() >= 3 * 10 + 2, "{}", svg.polylines());
    // The steep recipe's target.
    let dir = TempDir::new("cost-steep");
    let (o, out) = report(&dir, "steep");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = Svg::read(&out.join("steep-cost-vs-oracle.svg"));
    assert!(svg.texts().iter().any(|t| t == "CARMA's target (1.25)"));
}

#[test]
fn preference_figure_puts_loan_and_loan_weighted_side_by_side_for_carma() {
    let dir = TempDir::new("prefs");
    let (o, out) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = Svg::read(&out.join("reference-loan-preferences.svg"));
    let texts = svg.texts();
    for label in ["education (w 3)", "loan_amount (w 2)", "savings (w 1)"] {
        assert!(texts.iter().any(|t| t == label), "no feature {label}");
    }
    for panel in [
        "carma (2 seeds on loan, 2 seeds on loan-weighted)",
        "carma-refined (2 seeds on loan, 2 seeds on loan-weighted)",
    ] {
        assert!(texts.iter().any(|t| t == panel), "no panel {panel}");
    }
    // Two panels (carma, carma-refined) of a bar per feature, plus the legend swatch.
    let plain = svg.bars(&svg.legend_fill("loan"));
    let weighted = svg.bars(&svg.legend_fill("loan-weighted"));
    assert_eq!((plain.len(), weighted.len()), (2 * 7 + 1, 2 * 7 + 1));
    // savings: 25 % unweighted, 75 % weighted.
    assert!(
        (weighted[7] - 3 * plain[7]).abs() <= 2,
        "{plain:?} {weighted:?}"
    );
}

#[test]
fn figures_are_deterministic() {
    let a = TempDir::new("det-a");
    let b = TempDir::new("det-b");
    let (oa, out_a) = report(&a, "reference");
    let (ob, out_b) = report(&b, "reference");
    assert!(oa.status.success() && ob.status.success());
    for name in entries(&out_a) {
        assert_eq!(
            fs::read(out_a.join(&name)).unwrap(),
            fs::read(out_b.join(&name)).unwrap(),
            "{name}"
        );
    }
}

/// `carma report --runs runs -o out` on bad input: status 1, the message, no panic, nothing
/// written.
fn refused(dir: &TempDir, runs: &[&Path], wanted: &str) {
    let out = dir.path("out");
    let mut args = vec!["report".to_owned()];
    for r in runs {
        args.push("--runs".into());
        args.push(r.to_str().unwrap().into());
    }
    args.extend(["-o".into(), out.to_str().unwrap().into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = carma(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(wanted), "wanted '{wanted}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

#[test]
fn bad_runs_files_are_refused_with_the_reason() {
    let dir = TempDir::new("bad");
    let missing = dir.path("absent.json");
    refused(&dir, &[&missing], "cannot read");
    let malformed = dir.write("malformed.json", "{\"options\": ");
    refused(&dir, &[&malformed], "not a runs.json of carma evaluate");
    // results.json's shape (setting -> method -> summary) is not runs.json's.
    let summary = dir.write(
        "results.json",
        r#"{"loan": {"carma": {"cost_x100": {"mean": 1.0, "std": 0.0}}}}"#,
    );
    refused(&dir, &[&summary], "not a runs.json of carma evaluate");

    let mut narrow = fixture("reference");
    narrow["runs"]["chain-lin"]["1"]["carma"]["feature_rates"] = json!([0.5, 0.5, 0.5]);
    let narrow = dir.write("narrow.json", &narrow.to_string());
    refused(
        &dir,
        &[&narrow],
        "chain-lin, seed 1, carma: 3 feature rates for a graph of 4 features",
    );

    let mut rate = fixture("reference");
    rate["runs"]["loan"]["0"]["oracle"]["feature_rates"][2] = json!(1.5);
    let rate = dir.write("rate.json", &rate.to_string());
    refused(&dir, &[&rate], "a feature rate of 1.5, outside 0 to 1");

    let mut count = fixture("reference");
    count["runs"]["loan"]["0"]["oracle"]["n_test"] = json!(21);
    let count = dir.write("count.json", &count.to_string());
    refused(&dir, &[&count], "counting 20 individuals for n_test 21");

    let mut setting = fixture("reference");
    setting["runs"]["all"] = setting["runs"]["loan"].clone();
    let setting = dir.write("setting.json", &setting.to_string());
    refused(&dir, &[&setting], "unknown setting 'all'");

    let mut method = fixture("reference");
    method["runs"]["loan"]["0"]["carma-v2"] = method["runs"]["loan"]["0"]["carma"].clone();
    let method = dir.write("method.json", &method.to_string());
    refused(&dir, &[&method], "loan: unknown method 'carma-v2'");

    let empty = dir.write(
        "empty.json",
        &json!({"options": fixture("reference")["options"], "runs": {}}).to_string(),
    );
    refused(&dir, &[&empty], "nothing to draw");
}

#[test]
fn two_runs_files_of_one_recipe_are_refused_before_anything_is_written() {
    let dir = TempDir::new("same");
    let good = dir.write("a.json", &fixture("reference").to_string());
    let other = dir.write("b.json", &fixture("reference").to_string());
    refused(
        &dir,
        &[&good, &other],
        "both made with the reference classifier recipe",
    );
    // A bad second file stops the first one's figures too.
    let bad = dir.write("bad.json", "[]");
    refused(&dir, &[&good, &bad], "bad.json: not a runs.json");
}

#[test]
fn two_recipes_write_side_by_side() {
    let dir = TempDir::new("both");
    let reference = dir.write("runs.json", &fixture("reference").to_string());
    let steep = dir.write("runs-steep.json", &fixture("steep").to_string());
    let out = dir.path("figures");
    let o = carma(&[
        "report",
        "--runs",
        reference.to_str().unwrap(),
        "--runs",
        steep.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let names = entries(&out);
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("steep-")).count(), 4);
}

#[test]
fn a_figure_path_that_is_a_directory_is_refused_and_an_old_figure_is_replaced_whole() {
    let dir = TempDir::new("dest");
    let out = dir.path("figures");
    fs::create_dir_all(out.join("reference-actions.svg")).unwrap();
    let (o, _) = report(&dir, "reference");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    fs::remove_dir(out.join("reference-actions.svg")).unwrap();
    // A longer old file is replaced, not overwritten in place.
    fs::write(out.join("reference-actions.svg"), "x".repeat(1 << 20)).unwrap();
    let (o, _) = report(&dir, "reference");
    assert!(o.status.success(), "{}", text(&o.stderr));
    Svg::read(&out.join("reference-actions.svg"));
    assert_eq!(entries(&out).len(), 4, "{:?}", entries(&out));
}

#[test]
fn the_committed_figures_are_what_the_committed_runs_draw() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = TempDir::new("committed");
    let out = dir.path("figures");
    let o = carma(&[
        "report",
        "--runs",
        root.join("docs/runs.json").to_str().unwrap(),
        "--runs",
        root.join("docs/runs-steep.json").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let committed = root.join("docs/figures");
    let names = entries(&out);
    assert_eq!(names.len(), 8, "{names:?}");
    for name in names {
        let fresh = fs::read_to_string(out.join(&name)).unwrap();
        let old = fs::read_to_string(committed.join(&name)).unwrap_or_default();
        assert!(
            fresh == old,
            "docs/figures/{name} is out of date: regenerate with \
             carma report --runs docs/runs.json --runs docs/runs-steep.json -o docs/figures"
        );
    }
}

/// CARMA's training of `epochs` epochs on seeds 0 and 1 of chain-lin and loan (seed 1 of loan
/// stopped one epoch short), as `carma evaluate` writes history.json.
fn history_fixture(epochs: usize) -> Value {
    let mut carma = BTreeMap::new();
    for setting in ["loan", "chain-lin"] {
        let mut seeds = BTreeMap::new();
        for seed in 0..2u64 {
            let n = if setting == "loan" && seed == 1 {
                epochs - 1
            } else {
                epochs
            };
            let e: Vec<Value> = (1..=n)
                .map(|k| {
                    let t = k as f64 / epochs as f64;
                    json!({
                        "epoch": k,
                        "loss": 1.0 - t,
                        "cost": 0.1 * t,
                        "hinge": 0.5 * (1.0 - t),
                        "lambda": t + seed as f64,
                        "val_coverage": t,
                        "val_cost": 0.1 * t,
                    })
                })
                .collect();
            seeds.insert(seed.to_string(), e);
        }
        carma.insert(setting.to_owned(), seeds);
    }
    json!({"options": fixture("reference")["options"], "carma": carma})
}

#[test]
fn training_curves_have_a_line_per_seed_and_their_mean_for_each_quantity() {
    let dir = TempDir::new("curves");
    let history = dir.write("history.json", &history_fixture(5).to_string());
    let out = dir.path("figures");
    // The history alone is enough.
    let o = carma(&[
        "report",
        "--history",
        history.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(entries(&out), ["reference-training-curves.svg"]);
    let svg = Svg::read(&out.join("reference-training-curves.svg"));
    let texts = svg.texts();
    // chain-lin comes first (the paper's order), each with the four quantities.
    for setting in ["chain-lin", "loan"] {
        for q in ["cost term", "hinge", "multiplier", "validation coverage %"] {
            let caption = format!("{setting}: {q}");
            assert!(texts.contains(&caption), "no panel {caption}");
        }
    }
    let seed_lines = svg.lines(&svg.legend_stroke("each seed (up to 2 seeds)"));
    let mean_lines = svg.lines(&svg.legend_stroke("mean over seeds"));
    // 2 settings x 4 quantities: a line per seed and one mean, plus the legend's (2 points).
    assert_eq!(seed_lines.len(), 2 * 4 * 2 + 1);
    assert_eq!(mean_lines.len(), 2 * 4 + 1);
    // Every epoch is a point; the mean reaches the longest seed's last epoch.
    assert_eq!(seed_lines[1..9], [5; 8]);
    assert_eq!(seed_lines[9..], [5, 4, 5, 4, 5, 4, 5, 4]);
    assert_eq!(mean_lines[1..], [5; 8]);
}

#[test]
fn bad_history_files_are_refused_with_the_reason() {
    let dir = TempDir::new("bad-history");
    let mut skipped = history_fixture(4);
    skipped["carma"]["loan"]["1"][2]["epoch"] = json!(7);
    let skipped = dir.write("skipped.json", &skipped.to_string());
    let o = carma(&[
        "report",
        "--history",
        skipped.to_str().unwrap(),
        "-o",
        dir.path("out").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("loan, seed 1: epoch 7 where epoch 3 was expected"),
        "{err}"
    );
    // A runs.json given as a history.
    let runs = dir.write("runs.json", &fixture("reference").to_string());
    let o = carma(&[
        "report",
        "--history",
        runs.to_str().unwrap(),
        "-o",
        dir.path("out").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not a history.json of carma evaluate"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(entries(&dir.path("out")).is_empty());
    // Neither --runs nor --history: a usage error.
    let o = carma(&["report", "-o", dir.path("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}
