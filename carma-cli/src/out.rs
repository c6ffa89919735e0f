//! Writing to standard output and standard error without panicking (issue 14: `println!` panics
//! with exit 101 when standard output is full or closed).
//!
//! [`outln!`] and [`out!`] write to standard output and return an `anyhow::Result` whose error
//! says "cannot write to standard output"; a command propagates it with `?` and exits with
//! status 1 (0 for a closed pipe, see `main`). [`note!`] writes a status line to standard error
//! and never fails: a failed write is remembered, and `main` then exits with status 1 even if
//! the command succeeded ([`stderr_failed`]).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDERR_FAILED: AtomicBool = AtomicBool::new(false);

/// Write `args` to standard output.
pub fn stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .map_err(|e| anyhow::Error::new(e).context("cannot write to standard output"))
}

/// Flush standard output (buffered up to a line).
pub fn flush_stdout() -> anyhow::Result<()> {
    io::stdout()
        .flush()
        .map_err(|e| anyhow::Error::new(e).context("cannot write to standard output"))
}

/// Write `args` to standard error; a failure is remembered, not reported (there is nowhere to).
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if err.write_fmt(args).and_then(|()| err.flush()).is_err() {
        STDERR_FAILED.store(true, Ordering::Relaxed);
    }
}

/// Whether a write to standard error failed.
pub fn stderr_failed() -> bool {
    STDERR_FAILED.load(Ordering::Relaxed)
}

/// `println!` that returns an error instead of panicking.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that returns an error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics (see the module).
macro_rules! note {
    ($($arg:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
