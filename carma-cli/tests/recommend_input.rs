//! `carma recommend` reads its input in parallel: the main thread cuts it into whole records and
//! each thread parses its own share. These tests check that every form of CSV the reader accepts
//! gives the same recommendations, and that a bad row is named by the same data row and file line
//! whatever the number of threads, with quoted line breaks and blank lines before it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The CLI's hand-built model (7 features `x0..x6`, `x2` binary).
fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cli/handmade.carma")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("carma-input-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn recommend(input: &Path, jobs: &str, format: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carma"))
        .args(["recommend", "--model"])
        .arg(model())
        .arg("--input")
        .arg(input)
        .args(["--jobs", jobs, "--format", format, "--id", "id"])
        .output()
        .unwrap()
}

/// Rows of `id, x0..x6` (cells as text), more than one chunk of three threads.
fn rows(n: usize) -> Vec<Vec<String>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            let mut row = vec![format!("p{i}")];
            for j in 0..7 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                row.push(if j == 2 {
                    ((u < 0.5) as u8).to_string()
                } else {
                    format!("{:.6}", (u - 0.5) * 8.0)
                });
            }
            row
        })
        .collect()
}

const HEADER: &str = "id,x0,x1,x2,x3,x4,x5,x6";

fn join(rows: &[Vec<String>], cell: impl Fn(&str) -> String, end: &str) -> Vec<u8> {
    let mut s = format!("{HEADER}{end}");
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
        s += &cells.join(",");
        s += end;
    }
    s.into_bytes()
}

#[test]
fn every_form_of_csv_gives_the_same_output_on_any_number_of_threads() {
    let dir = TempDir::new("forms");
    let rows = rows(9000);
    let plain = dir.write("plain.csv", &join(&rows, str::to_owned, "\n"));
    let mut forms = vec![
        dir.write("crlf.csv", &join(&rows, str::to_owned, "\r\n")),
        dir.write("cr.csv", &join(&rows, str::to_owned, "\r")),
        dir.write("quoted.csv", &join(&rows, |c| format!("\"{c}\""), "\n")),
        dir.write("spaced.csv", &join(&rows, |c| format!(" {c}\t"), "\n")),
        dir.write("blank_lines.csv", &join(&rows, str::to_owned, "\n\n")),
    ];
    let mut no_end = join(&rows, str::to_owned, "\n");
    no_end.pop();
    forms.push(dir.write("no_final_newline.csv", &no_end));
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend(join(&rows, str::to_owned, "\n"));
    forms.push(dir.write("bom.csv", &bom));
    for format in ["csv", "text"] {
        let expected = recommend(&plain, "1", format);
        assert!(expected.status.success());
        assert!(String::from_utf8_lossy(&expected.stdout).lines().count() >= 9000);
        for jobs in ["1", "2", "3"] {
            for input in std::iter::once(&plain).chain(&forms) {
                let got = recommend(input, jobs, format);
                assert!(
                    got.stdout == expected.stdout,
                    "{} --jobs {jobs} --format {format}: {}",
                    input.display(),
                    String::from_utf8_lossy(&got.stderr)
                );
            }
        }
    }
}

#[test]
fn a_bad_row_is_named_by_its_data_row_and_line_on_any_number_of_threads() {
    let dir = TempDir::new("bad");
    let rows = rows(7000);
    // Every 7th id holds a quoted line break and every 11th row is followed by a blank line, so
    // lines and data rows drift apart.
    let text_with = |bad: &dyn Fn(usize, &mut Vec<String>)| -> (Vec<u8>, Vec<u64>) {
        let mut s = format!("{HEADER}\n");
        let mut line = 2u64;
        let mut lines = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let mut r = r.clone();
            if i % 7 == 0 {
                r[0] = format!("\"p{i}\nsecond line\"");
            }
            bad(i, &mut r);
            lines.push(line);
            let row = r.join(",") + "\n";
            line += row.matches('\n').count() as u64;
            s += &row;
            if i % 11 == 0 {
                s += "\n";
                line += 1;
            }
        }
        (s.into_bytes(), lines)
    };
    type Spoil<'a> = &'a dyn Fn(usize, &mut Vec<String>);
    let cases: [(&str, usize, Spoil<'_>, &str); 3] = [
        (
            "cell.csv",
            4500,
            &|i, r| {
                if i == 4499 {
                    r[4] = "oops".into();
                }
            },
            "column 'x3': expected a number, found 'oops'",
        ),
        (
            "binary.csv",
            6001,
            &|i, r| {
                if i == 6000 {
                    r[3] = "0.5".into();
                }
            },
            "column 'x2': expected 0 or 1, found '0.5'",
        ),
        (
            "length.csv",
            2049,
            &|i, r| {
                if i == 2048 {
                    r.push("1".into());
                }
            },
            "expected 8 cells, found 9",
        ),
    ];
    for (name, row, bad, message) in cases {
        let (bytes, lines) = text_with(bad);
        let input = dir.write(name, &bytes);
        let line = lines[row - 1];
        for jobs in ["1", "2", "3"] {
            let o = recommend(&input, jobs, "csv");
            assert_eq!(o.status.code(), Some(1), "{name} --jobs {jobs}");
            let err = String::from_utf8_lossy(&o.stderr);
            let expected = format!("line {line} (data row {row})");
            assert!(
                err.contains(&expected) && err.contains(message),
                "{name} --jobs {jobs}: expected '{expected}' and '{message}' in: {err}"
            );
        }
    }

    // Invalid UTF-8: the reader names the line.
    let (mut bytes, lines) = text_with(&|_, _| {});
    let at = bytes
        .windows(7)
        .position(|w| w == b"\np5000,")
        .expect("row 5001")
        + 2;
    bytes[at] = 0xff;
    let input = dir.write("utf8.csv", &bytes);
    for jobs in ["1", "3"] {
        let err = String::from_utf8_lossy(&recommend(&input, jobs, "csv").stderr).into_owned();
        let expected = format!("line {}: not valid UTF-8", lines[5000]);
        assert!(err.contains(&expected), "--jobs {jobs}: {err}");
    }
}
