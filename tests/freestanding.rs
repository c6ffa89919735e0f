//! Builds and runs the freestanding proof (`freestanding/`): a `#![no_std]`,
//! `#![no_main]` static binary linked without the Rust standard library or a
//! C runtime, which embeds a bundle, runs `recommend` on embedded inputs and
//! exits 0 only if every output equals the expected bits (issue 2).

use std::path::Path;
use std::process::Command;

#[test]
fn freestanding_program_links_without_std_and_reproduces_the_expected_outputs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("freestanding/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("bash runs the freestanding build script");
    assert!(
        out.status.success(),
        "freestanding proof failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
