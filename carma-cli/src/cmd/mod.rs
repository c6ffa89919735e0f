//! One module per subcommand: its clap arguments and its `run`.

pub mod demo;
pub mod evaluate;
pub mod fit;
pub mod import;
pub mod inspect;
pub mod oracle;
pub mod recommend;
pub mod simulate;
pub mod tune;

use std::num::NonZeroUsize;

/// The most worker threads `--jobs` accepts: far more than any machine this runs on has cores,
/// few enough that starting them cannot exhaust the system (`--jobs 100000` used to panic).
pub const MAX_JOBS: usize = 256;

/// `--jobs N`: 1 to [`MAX_JOBS`].
pub fn parse_jobs(s: &str) -> Result<NonZeroUsize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_JOBS).contains(&n) => Ok(NonZeroUsize::new(n).expect("n >= 1")),
        Ok(_) => Err(format!("expected 1 to {MAX_JOBS} threads, found '{s}'")),
        Err(_) => Err(format!(
            "expected a number of threads (1 to {MAX_JOBS}), found '{s}'"
        )),
    }
}

/// A count that must be at least 1 (`oracle -n`).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, found '{s}'"
        )),
    }
}
