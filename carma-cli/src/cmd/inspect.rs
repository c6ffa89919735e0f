//! `carma inspect`: what a model file holds, for a person deciding whether to trust it.

use std::path::PathBuf;

use carma_core::format::{MetricsWire, MlpWire};
use carma_core::le::U16s;
use carma_core::{Bundle, Kind};
use carma_train::inspect::{kind_word, levels};
use serde_json::Value;

use crate::explain::escaped;
use crate::model::{self, ModelFile};

/// Arguments of `carma inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model file (`.carma`).
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `carma inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::read(&args.model)?;
    let bundle = file.bundle()?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json(&file, &bundle))?)?;
    } else {
        let summary = Summary::new(&file, &bundle);
        out!("{}", summary.text(&bundle))?;
    }
    Ok(())
}

/// What `carma inspect --json` prints (and `carma serve` answers on `GET /v1/model`).
pub fn json(file: &ModelFile, bundle: &Bundle<'_>) -> Value {
    carma_train::inspect::summary_json(&file.path.display().to_string(), &file.bytes, bundle)
}

/// One network's shape.
struct Net {
    name: &'static str,
    dims: Vec<u16>,
    params: usize,
}

impl Net {
    fn new(name: &'static str, wire: &MlpWire<'_>) -> Net {
        Net {
            name,
            dims: dims(wire.dims),
            params: model::n_params(wire.params),
        }
    }

    fn dims_text(&self) -> String {
        self.dims
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("-")
    }
}

fn dims(bytes: &[u8]) -> Vec<u16> {
    U16s::new(bytes)
        .map(|d| d.iter().collect())
        .unwrap_or_default()
}

struct Summary {
    path: String,
    file_bytes: usize,
    version: u16,
    nets: Vec<Net>,
    flow_layers: u8,
}

impl Summary {
    fn new(file: &ModelFile, bundle: &Bundle<'_>) -> Summary {
        let w = bundle.wire();
        let mut nets = vec![
            Net {
                name: "causal flow",
                dims: dims(w.flow.dims),
                params: model::n_params(w.flow.params),
            },
            Net::new("classifier", &w.classifier),
        ];
        if let Some(c) = &w.carma {
            nets.push(Net::new("mask network", &c.mask_net));
            nets.push(Net::new("action network", &c.action_net));
        }
        Summary {
            path: file.path.display().to_string(),
            file_bytes: file.bytes.len(),
            // Bundle::new checked the header, so these two bytes are the version it read.
            version: u16::from_le_bytes([file.bytes[8], file.bytes[9]]),
            nets,
            flow_layers: w.flow.layers,
        }
    }

    fn text(&self, bundle: &Bundle<'_>) -> String {
        let w = bundle.wire();
        let mut s = String::new();
        s += &format!("{}\n", self.path);
        // Strings from the file are escaped: a crafted model must not write to the terminal.
        s += &format!("  dataset          {}\n", escaped(w.meta.dataset));
        s += &format!("  seed             {}\n", w.meta.seed);
        s += &format!("  trainer          {}\n", escaped(w.meta.trainer));
        s += &format!("  format version   {}\n", self.version);
        s += &format!(
            "  recommends       {}\n",
            if w.carma.is_some() {
                "yes (CARMA networks present)"
            } else {
                "no: causal flow and classifier only (no CARMA networks)"
            }
        );

        let d = bundle.n_features();
        s += &format!("\nFeatures ({d}):\n");
        let rows: Vec<[String; 11]> = (0..d).map(|i| feature_row(bundle, i)).collect();
        let header = [
            "#",
            "name",
            "kind",
            "actionable",
            "parents",
            "weight",
            "mean",
            "std",
            "min",
            "max",
            "direction",
        ]
        .map(String::from);
        s += &table(&header, &rows);

        s += "\nSizes:\n";
        s += &format!("  file on disk     {} bytes\n", self.file_bytes);
        for net in &self.nets {
            let extra = if net.name == "causal flow" {
                let plural = if self.flow_layers == 1 { "" } else { "s" };
                format!(", {} layer{plural}", self.flow_layers)
            } else {
                String::new()
            };
            s += &format!(
                "  {:<16} {} parameters (widths {}{extra})\n",
                net.name,
                net.params,
                net.dims_text()
            );
        }
        s += &format!(
            "  scratch          {} floats ({} bytes) at inference\n",
            bundle.scratch_len(),
            bundle.scratch_bytes()
        );

        s += "\nMetrics:\n";
        for (label, value) in metrics_text(&w.meta.metrics) {
            s += &format!("  {label:<34} {value}\n");
        }
        s
    }
}

fn feature_row(bundle: &Bundle<'_>, i: usize) -> [String; 11] {
    let parents: Vec<String> = bundle
        .parents(i)
        .iter()
        .map(|p| escaped(model::name(bundle, p)))
        .collect();
    let num = |v: Option<f32>| v.map_or("-".to_owned(), number);
    [
        i.to_string(),
        escaped(model::name(bundle, i)),
        match bundle.kind(i) {
            Kind::Integer { step } => format!("integer (step {step})"),
            Kind::Categorical { .. } => format!("categorical ({})", levels(bundle, i).join(", ")),
            _ => kind_word(bundle, i).to_owned(),
        },
        if bundle.is_actionable(i) { "yes" } else { "no" }.to_owned(),
        if parents.is_empty() {
            "-".to_owned()
        } else {
            parents.join(", ")
        },
        model::weight(bundle, i).map_or("-".to_owned(), |w| format!("{w}")),
        num(bundle.mean(i)),
        num(bundle.std(i)),
        bound(bundle.bounds(i).map(|b| b.0)),
        bound(bundle.bounds(i).map(|b| b.1)),
        direction(bundle, i).to_owned(),
    ]
}

/// Four decimals, or four significant digits in exponent notation for values so small (or
/// large) that decimals would hide them (a feature on a scale of 1e-9).
fn number(v: f32) -> String {
    if v != 0.0 && !(1e-3..1e7).contains(&v.abs()) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// A bound as shown: `-` when the model has none (an unbounded `f32::MAX`).
fn bound(v: Option<f32>) -> String {
    match v {
        Some(v) if v.abs() < f32::MAX => number(v),
        _ => "-".to_owned(),
    }
}

use carma_train::inspect::direction;

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in std::iter::once(header).chain(rows) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in std::iter::once(header).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s += &format!("  {}\n", line.join("  ").trim_end());
    }
    s
}

fn metrics_text(m: &MetricsWire) -> Vec<(&'static str, String)> {
    let pct =
        |v: Option<f32>| v.map_or("not measured".to_owned(), |v| format!("{:.2} %", 100.0 * v));
    let count = |n: u32| {
        if n == 0 {
            "not recorded".to_owned()
        } else {
            n.to_string()
        }
    };
    let num = |v: Option<f32>, unit: &str| {
        v.map_or("not measured".to_owned(), |v| format!("{v:.4}{unit}"))
    };
    vec![
        ("flow training rows", count(m.n_train)),
        ("rejected test individuals", count(m.n_test)),
        ("classifier test accuracy", pct(m.classifier_test_accuracy)),
        (
            "flow test log-likelihood",
            num(m.flow_test_loglik, " nats per individual"),
        ),
        ("CARMA coverage", pct(m.carma_coverage)),
        ("CARMA causal validity", pct(m.carma_validity)),
        ("CARMA mean cost", num(m.carma_cost, "")),
        (
            "CARMA mean number of actions",
            num(m.carma_mean_actions, ""),
        ),
    ]
}
