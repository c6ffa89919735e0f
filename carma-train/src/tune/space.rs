//! The search space of `carma tune` (docs/MATH.md, section 5, "Tuning"): CARMA's
//! hyperparameters as the paper searches them, each a range or a list of choices, and the map
//! between a [`CarmaConfig`] and a point of the unit cube the sampler works in.

use crate::carma::CarmaConfig;

/// One searched hyperparameter: a continuous range, an integer range or a list of values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Param {
    /// A real number in `[lo, hi]`, searched on a log scale when `log`.
    Float {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
        /// Search `ln(value)` uniformly instead of the value.
        #[serde(default)]
        log: bool,
    },
    /// A whole number in `[lo, hi]`, a multiple of `step` above `lo`.
    Int {
        /// Lower bound.
        lo: usize,
        /// Upper bound.
        hi: usize,
        /// Spacing of the allowed values (1 when absent).
        #[serde(default = "one")]
        step: usize,
    },
    /// One of a few values (batch sizes, widths).
    Choice {
        /// The values.
        values: Vec<usize>,
    },
}

fn one() -> usize {
    1
}

/// What a [`Param`] is internally: a coordinate in `[0, 1]` or an index into choices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dim {
    /// A coordinate in `[0, 1]`, rounded onto `levels` equally spaced points when `Some`.
    Numeric {
        /// Number of allowed values for an integer range.
        levels: Option<usize>,
    },
    /// An index among this many choices.
    Categorical(usize),
}

impl Param {
    /// How the sampler sees this parameter.
    pub fn dim(&self) -> Dim {
        match self {
            Param::Float { .. } => Dim::Numeric { levels: None },
            Param::Int { lo, hi, step } => Dim::Numeric {
                levels: Some((hi - lo) / step + 1),
            },
            Param::Choice { values } => Dim::Categorical(values.len()),
        }
    }

    /// The value at unit coordinate `u` (or choice index `u`).
    pub fn value(&self, u: f64) -> f64 {
        let index = u.max(0.0) as usize;
        let u = u.clamp(0.0, 1.0);
        match self {
            Param::Float { lo, hi, log: true } => (lo.ln() + u * (hi.ln() - lo.ln())).exp(),
            Param::Float { lo, hi, log: false } => lo + u * (hi - lo),
            Param::Int { lo, hi, step } => {
                let levels = (hi - lo) / step;
                let k = (u * levels as f64).round() as usize;
                (lo + k.min(levels) * step) as f64
            }
            Param::Choice { values } => values[index.min(values.len() - 1)] as f64,
        }
    }

    fn check(&self, name: &'static str) -> Result<(), SpaceError> {
        let bad = |why: &'static str| Err(SpaceError { name, why });
        match self {
            Param::Float { lo, hi, log } => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return bad("needs finite bounds with lo < hi");
                }
                if *log && *lo <= 0.0 {
                    return bad("a log-scale range needs lo > 0");
                }
            }
            Param::Int { lo, hi, step } => {
                if *step == 0 || lo > hi {
                    return bad("needs lo <= hi and step >= 1");
                }
                if *lo == 0 {
                    return bad("needs lo >= 1");
                }
            }
            Param::Choice { values } => {
                if values.is_empty() || values.contains(&0) {
                    return bad("needs at least one value, each >= 1");
                }
            }
        }
        Ok(())
    }
}

/// A range of the space that cannot be searched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("search space: `{name}` {why}")]
pub struct SpaceError {
    /// The hyperparameter.
    pub name: &'static str,
    /// What is wrong.
    pub why: &'static str,
}

/// CARMA's search space (docs/MATH.md, section 5): the paper's hyperparameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    /// Adam learning rate.
    pub lr: Param,
    /// Mask network depth (hidden layers).
    pub mask_depth: Param,
    /// Mask network width (every hidden layer).
    pub mask_width: Param,
    /// Action network depth.
    pub action_depth: Param,
    /// Action network width.
    pub action_width: Param,
    /// Training epochs.
    pub epochs: Param,
    /// Mini-batch size.
    pub batch_size: Param,
    /// Hinge margin.
    pub margin: Param,
    /// Gumbel-softmax temperature.
    pub tau: Param,
    /// Weight of the mask prior's KL (`CarmaConfig::kl_weight`; not in the paper's search,
    /// which keeps it at 1; docs/MATH.md section 5). A space file without it searches
    /// [`Space::paper`]'s range.
    #[serde(default = "kl_weight_range")]
    pub kl_weight: Param,
}

fn kl_weight_range() -> Param {
    Param::Float {
        lo: 0.01,
        hi: 1.0,
        log: true,
    }
}

/// Number of searched hyperparameters.
pub const N_PARAMS: usize = 10;

/// The names of the searched hyperparameters, in [`Space::params`] order.
pub const PARAM_NAMES: [&str; N_PARAMS] = [
    "lr",
    "mask_depth",
    "mask_width",
    "action_depth",
    "action_width",
    "epochs",
    "batch_size",
    "margin",
    "tau",
    "kl_weight",
];

impl Space {
    /// The paper's space: it covers every Table 5 row (learning rates 1e-3 to 1e-2, one to
    /// four hidden layers of 8 to 32, 150 to 500 epochs, batches of 32 to 256, margins
    /// 0.002 to 0.013, temperatures 0.08 to 0.87), a little wider on each side; and the KL
    /// weight from 0.01 to 1 (the paper's 1), which moved CARMA's cost most where Table 5 did
    /// not fit (docs/MATH.md, section 5).
    pub fn paper() -> Self {
        Self {
            lr: Param::Float {
                lo: 5e-4,
                hi: 2e-2,
                log: true,
            },
            mask_depth: Param::Int {
                lo: 1,
                hi: 3,
                step: 1,
            },
            mask_width: Param::Choice {
                values: vec![8, 16, 32, 64],
            },
            action_depth: Param::Int {
                lo: 1,
                hi: 4,
                step: 1,
            },
            action_width: Param::Choice {
                values: vec![8, 16, 32, 64],
            },
            epochs: Param::Int {
                lo: 100,
                hi: 500,
                step: 50,
            },
            batch_size: Param::Choice {
                values: vec![32, 64, 128, 256],
            },
            margin: Param::Float {
                lo: 1e-3,
                hi: 2e-2,
                log: true,
            },
            tau: Param::Float {
                lo: 0.05,
                hi: 1.0,
                log: true,
            },
            kl_weight: kl_weight_range(),
        }
    }

    /// A small space for smoke tests (`carma tune --fast`): few epochs, narrow networks.
    pub fn fast() -> Self {
        Self {
            mask_width: Param::Choice {
                values: vec![8, 16],
            },
            action_width: Param::Choice {
                values: vec![8, 16],
            },
            mask_depth: Param::Int {
                lo: 1,
                hi: 2,
                step: 1,
            },
            action_depth: Param::Int {
                lo: 1,
                hi: 2,
                step: 1,
            },
            epochs: Param::Int {
                lo: 4,
                hi: 10,
                step: 2,
            },
            ..Self::paper()
        }
    }

    /// The parameters in [`PARAM_NAMES`] order.
    pub fn params(&self) -> [&Param; N_PARAMS] {
        [
            &self.lr,
            &self.mask_depth,
            &self.mask_width,
            &self.action_depth,
            &self.action_width,
            &self.epochs,
            &self.batch_size,
            &self.margin,
            &self.tau,
            &self.kl_weight,
        ]
    }

    /// Every range is searchable.
    pub fn check(&self) -> Result<(), SpaceError> {
        for (p, name) in self.params().into_iter().zip(PARAM_NAMES) {
            p.check(name)?;
        }
        Ok(())
    }

    /// The sampler's view of every parameter.
    pub fn dims(&self) -> Vec<Dim> {
        self.params().iter().map(|p| p.dim()).collect()
    }

    /// `base` with the searched settings at point `point` (one coordinate per parameter).
    pub fn config(&self, point: &[f64], base: &CarmaConfig) -> CarmaConfig {
        let v: Vec<f64> = self
            .params()
            .iter()
            .zip(point)
            .map(|(p, &u)| p.value(u))
            .collect();
        let layers = |depth: f64, width: f64| vec![width as usize; depth as usize];
        CarmaConfig {
            lr: v[0],
            mask_hidden: layers(v[1], v[2]),
            action_hidden: layers(v[3], v[4]),
            epochs: v[5] as usize,
            batch_size: v[6] as usize,
            margin: v[7],
            tau: v[8],
            kl_weight: v[9],
            ..base.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_space_checks_and_maps_its_corners_onto_its_bounds() {
        let s = Space::paper();
        s.check().unwrap();
        let lo = s.config(&[0.0; N_PARAMS], &CarmaConfig::default());
        assert!((lo.lr - 5e-4).abs() < 1e-12);
        assert_eq!(lo.mask_hidden, vec![8]);
        assert_eq!(lo.epochs, 100);
        assert_eq!(lo.batch_size, 32);
        assert!((lo.kl_weight - 0.01).abs() < 1e-12);
        let hi = s.config(
            &[1.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 1.0, 1.0],
            &CarmaConfig::default(),
        );
        assert!((hi.kl_weight - 1.0).abs() < 1e-12);
        assert_eq!(hi.action_hidden, vec![64; 4]);
        assert_eq!(hi.epochs, 500);
        assert_eq!(hi.batch_size, 256);
        assert!(hi.check().is_ok());
    }

    #[test]
    fn bad_ranges_are_refused_with_the_parameter_named() {
        let mut s = Space::paper();
        s.lr = Param::Float {
            lo: 0.0,
            hi: 1.0,
            log: true,
        };
        assert_eq!(s.check().unwrap_err().name, "lr");
        let mut s = Space::paper();
        s.epochs = Param::Int {
            lo: 10,
            hi: 5,
            step: 1,
        };
        assert_eq!(s.check().unwrap_err().name, "epochs");
        let mut s = Space::paper();
        s.batch_size = Param::Choice { values: vec![] };
        assert_eq!(s.check().unwrap_err().name, "batch_size");
    }
}
