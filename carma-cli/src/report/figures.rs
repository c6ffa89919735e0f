//! The figures of one runs file (the paper's Fig. 7, 9 and 10 and its preference case study) and
//! of one history file (CARMA's training curves): what each shows, computed from the seeds'
//! scores or epochs, handed to [`super::draw`].

use carma_train::evaluate::{Method, MethodSummary, Stat};
use plotters::style::RGBColor;

use super::draw::{
    Chart, Curve, Curves, Line, PANEL, Panel, Plot, REFERENCE_COLOR, Series, Swatch, TARGET_COLOR,
};
use super::history::HistoryFile;
use super::runs::{RunsFile, SettingRuns, recipe_name};
use crate::cmd::evaluate::{Recipe, TARGET_COST_RATIO, TARGET_COST_RATIO_STEEP};
use crate::progress::EpochRecord;

/// Panels per row in the figures with one panel per setting.
const COLUMNS: usize = 2;
/// A panel alone on its row, pixels (the cost figure: a group of bars per setting; the
/// preference figure: feature names with their weights).
const WIDE_PANEL: (u32, u32) = (1320, 420);
/// Room above the tallest bar and error bar of the cost figure, as a fraction of it.
const HEADROOM: f64 = 0.08;
/// The cost figure's y axis reaches at least this ratio (so the 1.0 line and the target show).
const MIN_COST_AXIS: f64 = 1.4;
/// The cost figure's y axis ends on a multiple of this.
const COST_AXIS_STEP: f64 = 0.25;

/// One figure to write: its file name in the output directory and what to draw.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File name, `<recipe>-<what>.svg`.
    pub file_name: String,
    /// The chart, before drawing.
    pub chart: Chart,
}

/// A method's colour in every figure (colour-blind-safe palette; each method its own).
pub fn method_color(m: Method) -> RGBColor {
    match m {
        Method::Oracle => RGBColor(0x33, 0x33, 0x33),
        Method::Optimizer => RGBColor(0x00, 0x72, 0xB2),
        Method::OptimizerMargin => RGBColor(0x56, 0xB4, 0xE9),
        Method::DiceVae => RGBColor(0xE6, 0x9F, 0x00),
        Method::Carma => RGBColor(0xD5, 0x5E, 0x00),
        Method::CarmaRefined => RGBColor(0x00, 0x9E, 0x73),
    }
}

/// The preference figure's colour for Loan without weights.
pub const UNWEIGHTED_COLOR: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// The preference figure's colour for Loan with the preference weights.
pub const WEIGHTED_COLOR: RGBColor = RGBColor(0xCC, 0x79, 0xA7);

/// The methods of a runs file, in table order.
fn methods_of(run: &RunsFile) -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|m| run.settings.iter().any(|s| s.methods.contains_key(m)))
        .collect()
}

fn legend(methods: &[Method]) -> Vec<(String, Swatch)> {
    methods
        .iter()
        .map(|&m| (m.name().to_owned(), Swatch::Bar(method_color(m))))
        .collect()
}

/// The largest number of seeds any method of the setting ran.
fn seeds(s: &SettingRuns) -> usize {
    s.methods.values().map(Vec::len).max().unwrap_or(0)
}

fn seeds_text(n: usize) -> String {
    if n == 1 {
        "1 seed".to_owned()
    } else {
        format!("{n} seeds")
    }
}

fn source(run: &RunsFile) -> String {
    let name = run.path.file_name().map_or_else(
        || run.path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    format!("The {} classifier recipe; {name}.", recipe_name(run.recipe))
}

/// Every figure of `run` that its methods and settings allow, and a sentence for each left out.
pub fn all(run: &RunsFile) -> (Vec<Figure>, Vec<String>) {
    let mut figures = vec![rates(run), actions(run)];
    let mut skipped = Vec::new();
    match cost(run) {
        Some(f) => figures.push(f),
        None => skipped.push(format!(
            "{}: no cost figure (the oracle and another method never ran on the same seed)",
            run.path.display()
        )),
    }
    match preferences(run) {
        Some(f) => figures.push(f),
        None => skipped.push(format!(
            "{}: no preference figure (it needs CARMA on both loan and loan-weighted)",
            run.path.display()
        )),
    }
    (figures, skipped)
}

/// Per setting, per feature and method: the % of individuals intervened on the feature, mean
/// over seeds (the paper's Fig. 7, 9, 10).
pub fn rates(run: &RunsFile) -> Figure {
    let methods = methods_of(run);
    let panels: Vec<Panel> = run
        .settings
        .iter()
        .map(|s| Panel {
            caption: format!("{} ({})", s.setting.name, seeds_text(seeds(s))),
            categories: s.features.clone(),
            x_desc: "feature".into(),
            y_desc: "% of individuals intervened on".into(),
            y_max: 100.0,
            y_decimals: 0,
            series: method_series(s, &methods, s.features.len(), |r, k| {
                100.0 * r.feature_rates[k]
            }),
            lines: Vec::new(),
        })
        .collect();
    Figure {
        file_name: format!("{}-intervention-rates.svg", recipe_name(run.recipe)),
        chart: Chart {
            title: "Which features the recommendations change".into(),
            subtitle: vec![
                "Per feature: % of rejected test individuals whose recommendation intervenes on \
                 it, mean over seeds."
                    .into(),
                source(run),
            ],
            legend: legend(&methods),
            panels: panels.into_iter().map(Plot::Bars).collect(),
            columns: COLUMNS,
            panel_size: PANEL,
        },
    }
}

/// Per setting: the distribution of the number of intervened features, % of individuals over
/// all seeds.
pub fn actions(run: &RunsFile) -> Figure {
    let methods = methods_of(run);
    let panels: Vec<Panel> = run
        .settings
        .iter()
        .map(|s| {
            let d = s.features.len();
            Panel {
                caption: format!("{} ({})", s.setting.name, seeds_text(seeds(s))),
                categories: (0..=d).map(|k| k.to_string()).collect(),
                x_desc: "number of intervened features".into(),
                y_desc: "% of individuals".into(),
                y_max: 100.0,
                y_decimals: 0,
                series: method_series(s, &methods, d + 1, |r, k| {
                    let total: usize = r.actions_histogram.iter().sum();
                    100.0 * r.actions_histogram[k] as f64 / total.max(1) as f64
                }),
                lines: Vec::new(),
            }
        })
        .collect();
    Figure {
        file_name: format!("{}-actions.svg", recipe_name(run.recipe)),
        chart: Chart {
            title: "How many features the recommendations change".into(),
            subtitle: vec![
                "Per number of intervened features: % of rejected test individuals, all seeds \
                 together."
                    .into(),
                source(run),
            ],
            legend: legend(&methods),
            panels: panels.into_iter().map(Plot::Bars).collect(),
            columns: COLUMNS,
            panel_size: PANEL,
        },
    }
}

/// One seed's cost of `m` over the oracle's on the same seed, per seed where both ran and the
/// oracle's cost is positive.
fn cost_ratios(s: &SettingRuns, m: Method) -> Vec<f64> {
    let (Some(oracle), Some(mine)) = (s.methods.get(&Method::Oracle), s.methods.get(&m)) else {
        return Vec::new();
    };
    mine.iter()
        .filter_map(|(seed, scores)| {
            let o = oracle.iter().find(|(k, _)| k == seed)?;
            (o.1.cost_x100 > 0.0).then(|| scores.cost_x100 / o.1.cost_x100)
        })
        .collect()
}

/// Per setting and method: the cost over the oracle's on the same seed, mean ± standard
/// deviation over seeds, with the oracle at 1 and the recipe's target for CARMA dashed.
pub fn cost(run: &RunsFile) -> Option<Figure> {
    let methods: Vec<Method> = methods_of(run)
        .into_iter()
        .filter(|&m| m != Method::Oracle)
        .collect();
    let series: Vec<Series> = methods
        .iter()
        .map(|&m| {
            let stats: Vec<Option<Stat>> = run
                .settings
                .iter()
                .map(|s| {
                    let r = cost_ratios(s, m);
                    (!r.is_empty()).then(|| Stat::of(r))
                })
                .collect();
            Series {
                label: m.name().into(),
                color: method_color(m),
                values: stats.iter().map(|s| s.map(|s| s.mean)).collect(),
                errors: Some(stats.iter().map(|s| s.map(|s| s.std)).collect()),
            }
        })
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    if series.is_empty() {
        return None;
    }
    let top = series
        .iter()
        .flat_map(|s| {
            s.values
                .iter()
                .zip(s.errors.iter().flatten())
                .filter_map(|(v, e)| Some(v.as_ref()? + e.unwrap_or(0.0)))
        })
        .fold(MIN_COST_AXIS, f64::max);
    let y_max = ((top * (1.0 + HEADROOM)) / COST_AXIS_STEP).ceil() * COST_AXIS_STEP;
    let target = match run.recipe {
        Recipe::Reference => TARGET_COST_RATIO,
        Recipe::Steep => TARGET_COST_RATIO_STEEP,
    };
    let mut legend: Vec<(String, Swatch)> = series
        .iter()
        .map(|s| (s.label.clone(), Swatch::Bar(s.color)))
        .collect();
    legend.push((
        "oracle (1)".into(),
        Swatch::Line {
            color: REFERENCE_COLOR,
            width: 2,
            dashed: false,
        },
    ));
    legend.push((
        format!("CARMA's target ({target:.2})"),
        Swatch::Line {
            color: TARGET_COLOR,
            width: 2,
            dashed: true,
        },
    ));
    let mut subtitle = vec![
        "Each method's mean cost over the oracle's on the same seed's individuals (an uncovered \
         individual counts too): mean ± standard deviation over seeds."
            .to_owned(),
    ];
    let optimizers = [Method::Optimizer, Method::OptimizerMargin];
    if let Some(n) = run.optimizer_individuals {
        if optimizers.iter().any(|m| methods.contains(m)) {
            subtitle.push(format!(
                "The optimizers ran on the first {n} of each seed's individuals (an i.i.d. \
                 subset), the other methods on all of them."
            ));
        }
    }
    subtitle.push(source(run));
    let panel = Panel {
        caption: format!(
            "cost / oracle's cost on the same seed (mean ± std over seeds; {})",
            seeds_text(run.settings.iter().map(seeds).max().unwrap_or(0))
        ),
        categories: run
            .settings
            .iter()
            .map(|s| s.setting.name.clone())
            .collect(),
        x_desc: "setting".into(),
        y_desc: "cost / oracle".into(),
        y_max,
        y_decimals: 2,
        series,
        lines: vec![
            Line {
                y: 1.0,
                dashed: false,
            },
            Line {
                y: target,
                dashed: true,
            },
        ],
    };
    Some(Figure {
        file_name: format!("{}-cost-vs-oracle.svg", recipe_name(run.recipe)),
        chart: Chart {
            title: "Cost against the oracle".into(),
            subtitle,
            legend,
            panels: vec![Plot::Bars(panel)],
            columns: 1,
            panel_size: WIDE_PANEL,
        },
    })
}

/// Loan without and with the preference weights, for each CARMA variant present: per feature,
/// the % of individuals intervened on it (the paper's preference case study).
pub fn preferences(run: &RunsFile) -> Option<Figure> {
    let plain = run.setting("loan")?;
    let weighted = run.setting("loan-weighted")?;
    let weights = weighted.setting.weights.clone().unwrap_or_default();
    let panels: Vec<Panel> = [Method::Carma, Method::CarmaRefined]
        .into_iter()
        .filter_map(|m| {
            let (a, b) = (summary(plain, m)?, summary(weighted, m)?);
            let rate = |r: &MethodSummary| -> Vec<Option<f64>> {
                r.feature_rates.iter().map(|v| Some(100.0 * v)).collect()
            };
            Some(Panel {
                caption: format!(
                    "{} ({} on loan, {} on loan-weighted)",
                    m.name(),
                    seeds_text(plain.methods[&m].len()),
                    seeds_text(weighted.methods[&m].len())
                ),
                categories: weighted
                    .features
                    .iter()
                    .enumerate()
                    .map(|(k, f)| match weights.get(k) {
                        Some(w) => format!("{f} (w {w})"),
                        None => f.clone(),
                    })
                    .collect(),
                x_desc: "feature (its preference weight in loan-weighted)".into(),
                y_desc: "% of individuals intervened on".into(),
                y_max: 100.0,
                y_decimals: 0,
                series: vec![
                    Series {
                        label: "loan".into(),
                        color: UNWEIGHTED_COLOR,
                        values: rate(&a),
                        errors: None,
                    },
                    Series {
                        label: "loan-weighted".into(),
                        color: WEIGHTED_COLOR,
                        values: rate(&b),
                        errors: None,
                    },
                ],
                lines: Vec::new(),
            })
        })
        .collect();
    if panels.is_empty() {
        return None;
    }
    Some(Figure {
        file_name: format!("{}-loan-preferences.svg", recipe_name(run.recipe)),
        chart: Chart {
            title: "Preferences: Loan without and with feature weights".into(),
            subtitle: vec![
                "Per feature: % of rejected test individuals whose recommendation intervenes on \
                 it, mean over seeds. A higher weight makes changing the feature costlier."
                    .into(),
                source(run),
            ],
            legend: vec![
                ("loan".into(), Swatch::Bar(UNWEIGHTED_COLOR)),
                ("loan-weighted".into(), Swatch::Bar(WEIGHTED_COLOR)),
            ],
            columns: 1,
            panels: panels.into_iter().map(Plot::Bars).collect(),
            panel_size: WIDE_PANEL,
        },
    })
}

/// The method's scores on the setting summarized over seeds, if it ran there.
/// One bar series per method over `n` categories, `value(summary, k)` each (none where the
/// method did not run on `s`).
fn method_series(
    s: &SettingRuns,
    methods: &[Method],
    n: usize,
    value: impl Fn(&MethodSummary, usize) -> f64,
) -> Vec<Series> {
    methods
        .iter()
        .map(|&m| {
            let summary = summary(s, m);
            Series {
                label: m.name().into(),
                color: method_color(m),
                values: (0..n)
                    .map(|k| summary.as_ref().map(|r| value(r, k)))
                    .collect(),
                errors: None,
            }
        })
        .collect()
}

fn summary(s: &SettingRuns, m: Method) -> Option<MethodSummary> {
    let scores = s.scores(m);
    (!scores.is_empty()).then(|| MethodSummary::of(&scores))
}

/// The training curves' panel, pixels (four to a row).
const CURVE_PANEL: (u32, u32) = (440, 300);
/// Each seed's curve.
pub const SEED_COLOR: RGBColor = RGBColor(0xBB, 0xBB, 0xBB);

/// What the training curves plot, per epoch: a name and the value (if recorded).
type Quantity = (&'static str, fn(&EpochRecord) -> Option<f64>);

/// CARMA's loss terms, multiplier and validation coverage per epoch (docs/MATH.md section 5).
const QUANTITIES: [Quantity; 4] = [
    ("cost term", |e| Some(e.cost)),
    ("hinge", |e| Some(e.hinge)),
    ("multiplier", |e| Some(e.lambda)),
    ("validation coverage %", |e| {
        e.val_coverage.map(|c| 100.0 * c)
    }),
];

/// CARMA's training per setting: the mean cost term, mean hinge, multiplier and validation
/// coverage per epoch, a thin line per seed and their mean over seeds.
pub fn curves(h: &HistoryFile) -> Figure {
    let mean_color = method_color(Method::Carma);
    let mut panels = Vec::new();
    for s in &h.settings {
        for (name, value) in QUANTITIES {
            let per_seed: Vec<Vec<(f64, f64)>> = s
                .seeds
                .iter()
                .map(|(_, epochs)| {
                    epochs
                        .iter()
                        .filter_map(|e| Some((e.epoch as f64, value(e)?)))
                        .collect()
                })
                .collect();
            let last = s.seeds.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
            let mean: Vec<(f64, f64)> = (1..=last)
                .filter_map(|k| {
                    let at: Vec<f64> = s
                        .seeds
                        .iter()
                        .filter_map(|(_, e)| e.get(k - 1).and_then(value))
                        .collect();
                    (!at.is_empty()).then(|| (k as f64, Stat::of(at).mean))
                })
                .collect();
            let mut lines: Vec<Curve> = per_seed
                .into_iter()
                .map(|points| Curve {
                    color: SEED_COLOR,
                    width: 1,
                    points,
                })
                .collect();
            lines.push(Curve {
                color: mean_color,
                width: 2,
                points: mean,
            });
            panels.push(Plot::Curves(Curves {
                caption: format!("{}: {name}", s.name),
                x_desc: "epoch".into(),
                y_desc: name.into(),
                curves: lines,
            }));
        }
    }
    let seeds = h.settings.iter().map(|s| s.seeds.len()).max().unwrap_or(0);
    Figure {
        file_name: format!("{}-training-curves.svg", recipe_name(h.recipe)),
        chart: Chart {
            title: "CARMA's training".into(),
            subtitle: vec![
                "Per epoch: the mean cost term and hinge over the batches, the multiplier at the \
                 epoch's end, the coverage on the validation split (docs/MATH.md section 5)."
                    .into(),
                format!(
                    "The {} classifier recipe; {}.",
                    recipe_name(h.recipe),
                    h.path.file_name().map_or_else(
                        || h.path.display().to_string(),
                        |f| f.to_string_lossy().into_owned()
                    )
                ),
            ],
            legend: vec![
                (
                    format!("each seed (up to {})", seeds_text(seeds)),
                    Swatch::Line {
                        color: SEED_COLOR,
                        width: 1,
                        dashed: false,
                    },
                ),
                (
                    "mean over seeds".into(),
                    Swatch::Line {
                        color: mean_color,
                        width: 2,
                        dashed: false,
                    },
                ),
            ],
            panels,
            columns: QUANTITIES.len(),
            panel_size: CURVE_PANEL,
        },
    }
}
