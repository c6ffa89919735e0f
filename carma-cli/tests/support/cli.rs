//! Running the `carma` binary from a test, and scratch directories.

// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory named after `tag`, the process and a counter.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("carma-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// [`TempDir::path`] as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// The contents of `name`.
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap()
    }

    /// The names of the directory's entries, sorted.
    pub fn entries(&self) -> Vec<String> {
        entries(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The names of `dir`'s entries, sorted (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `carma` with `args`.
pub fn carma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carma"))
        .args(args)
        .output()
        .expect("the carma binary runs")
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `o`, asserting that it succeeded.
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    o
}

/// A run-time failure (exit 1), returning standard error.
pub fn failure(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    text(&o.stderr)
}

/// A usage error (exit 2), returning standard error.
pub fn usage_error(o: Output) -> String {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", text(&o.stderr));
    text(&o.stderr)
}
