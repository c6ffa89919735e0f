//! The READMEs' shell blocks run as written, in order, as a new user would run them on a fresh
//! clone (issue 14: "Your own data in four commands" failed as written).
//!
//! Every ` ```sh ` block of `README.md` and `carma-cli/README.md` is run with `sh -eu`, the
//! blocks of one README one after the other in one fresh directory, unless the line before it
//! (or the HTML comment ending there) says `<!-- readme-test: skip (why) -->`. What the test
//! provides, so that the commands need not be edited:
//!
//! - the built binary at `$PWD/target/release/carma` and as `carma` on the `PATH`;
//! - a `cargo` on the `PATH` that treats `cargo build --release -p carma-cli` as done and runs
//!   `cargo run --release -p carma-cli -- ARGS` as `carma ARGS` (anything else fails);
//! - two size substitutions, said next to the blocks in the READMEs: `-n 20000` becomes
//!   `-n 400`, and `fit` gets `--epochs-scale 0.02`, so that the blocks take seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The runnable ` ```sh ` blocks of a Markdown text, and how many were skipped.
fn sh_blocks(markdown: &str) -> (Vec<String>, usize) {
    let (mut blocks, mut skipped) = (Vec::new(), 0);
    let mut skip_next = false;
    let mut in_comment = false;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("<!--") {
            in_comment = !t.contains("-->");
            skip_next = t.contains("readme-test: skip");
            continue;
        }
        if in_comment {
            in_comment = !t.contains("-->");
            continue;
        }
        if let Some(info) = t.strip_prefix("```") {
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            if info.trim() == "sh" {
                if skip_next {
                    skipped += 1;
                } else {
                    blocks.push(body);
                }
            }
            skip_next = false;
        } else if !t.is_empty() {
            skip_next = false;
        }
    }
    (blocks, skipped)
}

/// The documented size substitutions.
fn shrink(block: &str) -> String {
    block
        .replace("-n 20000", "-n 400")
        .replace(" fit --", " fit --epochs-scale 0.02 --")
}

/// A directory laid out like a clone after `cargo build --release -p carma-cli`.
fn sandbox(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("carma-readme-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("target/release")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    let carma = env!("CARGO_BIN_EXE_carma");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink(carma, dir.join("target/release/carma")).unwrap();
        std::os::unix::fs::symlink(carma, dir.join("bin/carma")).unwrap();
        let cargo = dir.join("bin/cargo");
        fs::write(
            &cargo,
            "#!/bin/sh\n\
             case \"$*\" in\n\
             \"build --release -p carma-cli\") exit 0 ;;\n\
             \"run --release -p carma-cli -- \"*) shift 5; exec carma \"$@\" ;;\n\
             *) echo \"readme test: cargo $* is not provided\" >&2; exit 1 ;;\n\
             esac\n",
        )
        .unwrap();
        fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Run every runnable block of `readme` in one sandbox; returns their standard outputs.
fn run_readme(readme: &Path, tag: &str) -> (Vec<String>, PathBuf) {
    let text = fs::read_to_string(readme).unwrap();
    let (blocks, _) = sh_blocks(&text);
    let dir = sandbox(tag);
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for block in &blocks {
        let script = shrink(block);
        let o = Command::new("sh")
            .args(["-eu", "-c", &script])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .expect("sh runs");
        assert!(
            o.status.success(),
            "{}: this block failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
            readme.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    (outputs, dir)
}

#[cfg(unix)]
#[test]
fn the_top_readme_runs_as_written() {
    let (outputs, dir) = run_readme(&Path::new(ROOT).join("README.md"), "top");
    assert_eq!(outputs.len(), 1, "the 'Your own data' block");
    assert!(outputs[0].contains("Person 1:"), "{}", outputs[0]);
    assert!(outputs[0].contains("Features (7)"), "{}", outputs[0]);
    for f in ["loan.csv", "loan.toml", "loan.carma", "people.csv"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let _ = fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn the_cli_readme_runs_as_written() {
    let (outputs, dir) = run_readme(&Path::new(ROOT).join("carma-cli/README.md"), "cli");
    assert_eq!(outputs.len(), 1, "the 'Your own data' block");
    assert!(outputs[0].contains("Person 1:"), "{}", outputs[0]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_block_parser_finds_runnable_and_skipped_blocks() {
    let md = "text\n\n<!-- readme-test: skip (long\nreason) -->\n```sh\nslow\n```\n\n```sh\nfast\n```\n\
              ```toml\nx = 1\n```\n<!-- readme-test: skip -->\n```sh\nalso slow\n```\n";
    let (blocks, skipped) = sh_blocks(md);
    assert_eq!(blocks, ["fast\n"]);
    assert_eq!(skipped, 2);
    assert_eq!(
        shrink("carma simulate -n 20000 -o a.csv\n\"$carma\" fit --data a.csv"),
        "carma simulate -n 400 -o a.csv\n\"$carma\" fit --epochs-scale 0.02 --data a.csv"
    );
}

/// "SPEC.md" and "SPEC section N" named files that are not in the repository; the project's
/// account of the math is docs/MATH.md. Both licenses the crates declare are present.
#[test]
fn readmes_and_help_cite_no_missing_spec_and_the_licenses_exist() {
    for readme in ["README.md", "carma-cli/README.md"] {
        let text = fs::read_to_string(Path::new(ROOT).join(readme)).unwrap();
        assert!(!text.contains("SPEC"), "{readme} cites SPEC");
    }
    for sub in [
        "",
        "demo",
        "simulate",
        "fit",
        "recommend",
        "inspect",
        "import",
        "evaluate",
        "oracle",
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_carma"));
        if !sub.is_empty() {
            c.arg(sub);
        }
        let o = c.arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && !help.is_empty(), "{sub}");
        assert!(
            !help.contains("SPEC"),
            "carma {sub} --help cites SPEC:\n{help}"
        );
        assert!(!help.contains("--out docs/"), "carma {sub} --help: {help}");
    }
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let text = fs::read_to_string(Path::new(ROOT).join(license)).unwrap();
        assert!(text.len() > 1000, "{license}");
    }
}
