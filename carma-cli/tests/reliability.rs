//! Regression tests of issue 14 (docs/RELIABILITY.md, section 4): each drives the built `carma`
//! binary the way the hostile or careless user of the issue did, and checks the fixed behaviour.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// The hand-built model with CARMA networks: features `x0..x6`, `x2` binary, `x0` and `x2` not
/// actionable.
fn model() -> PathBuf {
    Path::new(FIXTURES).join("cli/handmade.carma")
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "carma-reliability-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(env!("CARGO_BIN_EXE_carma"));
    c.args(args);
    c
}

/// Run to the end, killed after `limit` (a regression that reads `/dev/zero` forever must fail
/// the test, not hang it).
fn run_within(mut c: Command, limit: Duration) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the carma binary runs");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("carma {:?} did not finish within {limit:?}", c.get_args());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn carma<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_within(command(args), Duration::from_secs(120))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", stderr(&o), stdout(&o));
    o
}

/// Failed with `code` (and did not panic), returning standard error.
fn fails(o: Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn people(dir: &TempDir) -> PathBuf {
    dir.write(
        "people.csv",
        "id,x0,x1,x2,x3,x4,x5,x6\n\
         a,-1.1,0.5,1,0.4,-1.2,-0.4,-1.3\n\
         b,2.0,-2.0,0,3.0,1.0,-3.0,0.5\n\
         c,-3.0,-1.0,1,-2.0,-4.0,-2.0,-3.0\n",
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn recommend(input: &Path) -> Vec<String> {
    ["recommend", "--model", p(&model()), "--input", p(input)]
        .map(String::from)
        .to_vec()
}

#[cfg(unix)]
#[test]
fn fifos_symlinks_and_dev_stdout_are_written_through() {
    let dir = TempDir::new("special");
    let input = people(&dir);
    let expected = stdout(&ok(carma(recommend(&input))));
    // A FIFO: its reader gets the output, and it stays a FIFO.
    let fifo = dir.path("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
    };
    let mut args = recommend(&input);
    args.extend(["-o".into(), p(&fifo).into()]);
    ok(carma(&args));
    assert_eq!(reader.join().unwrap(), expected);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A symbolic link: the target is replaced, the link stays a link.
    fs::write(dir.path("target.txt"), "old").unwrap();
    let link = dir.path("link.txt");
    std::os::unix::fs::symlink("target.txt", &link).unwrap();
    let mut args = recommend(&input);
    args.extend(["-o".into(), p(&link).into()]);
    ok(carma(&args));
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(dir.path("target.txt")).unwrap(),
        expected
    );
    // /dev/stdout reaches standard output (a pipe here), not a file beside it.
    let mut args = recommend(&input);
    args.extend(["-o".into(), "/dev/stdout".into()]);
    assert_eq!(stdout(&ok(carma(&args))), expected);
    assert_eq!(
        dir.entries(),
        ["link.txt", "out.fifo", "people.csv", "target.txt"]
    );
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = TempDir::new("same");
    let input = people(&dir);
    let before = fs::read(&input).unwrap();
    let model_copy = dir.path("m.carma");
    fs::copy(model(), &model_copy).unwrap();
    let model_bytes = fs::read(&model_copy).unwrap();
    let err = fails(
        carma([
            "recommend",
            "--model",
            p(&model_copy),
            "--input",
            p(&input),
            "-o",
            p(&input),
        ]),
        1,
    );
    assert!(err.contains("same file as --input"), "{err}");
    // Through another spelling of the path.
    let other = format!(
        "{}/../{}/m.carma",
        p(&dir.0),
        dir.0.file_name().unwrap().to_str().unwrap()
    );
    let err = fails(
        carma([
            "recommend",
            "--model",
            p(&model_copy),
            "--input",
            p(&input),
            "-o",
            &other,
        ]),
        1,
    );
    assert!(err.contains("same file as --model"), "{err}");
    let graph = dir.write(
        "g.toml",
        "[[feature]]\nname = \"a\"\nkind = \"continuous\"\nactionable = true\nparents = []\n",
    );
    let data = dir.write("d.csv", "a,y\n1,0\n2,1\n");
    let graph_before = fs::read(&graph).unwrap();
    for (out, flag) in [(&data, "--data"), (&graph, "--graph")] {
        let err = fails(
            carma([
                "fit",
                "--data",
                p(&data),
                "--graph",
                p(&graph),
                "-o",
                p(out),
            ]),
            1,
        );
        assert!(err.contains(&format!("same file as {flag}")), "{err}");
    }
    assert_eq!(fs::read(&input).unwrap(), before);
    assert_eq!(fs::read(&model_copy).unwrap(), model_bytes);
    assert_eq!(fs::read(&graph).unwrap(), graph_before);
    assert_eq!(fs::read_to_string(&data).unwrap(), "a,y\n1,0\n2,1\n");
}

#[cfg(unix)]
#[test]
fn the_output_keeps_its_mode_and_a_read_only_one_needs_force() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let input = people(&dir);
    let out = dir.write("out.txt", "old");
    fs::set_permissions(&out, fs::Permissions::from_mode(0o640)).unwrap();
    let mut args = recommend(&input);
    args.extend(["-o".into(), p(&out).into()]);
    ok(carma(&args));
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o640
    );
    fs::set_permissions(&out, fs::Permissions::from_mode(0o444)).unwrap();
    fs::write(dir.path("marker"), "").unwrap();
    let err = fails(carma(&args), 1);
    assert!(
        err.contains("read-only") && err.contains("--force"),
        "{err}"
    );
    args.push("--force".into());
    ok(carma(&args));
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert!(fs::read_to_string(&out).unwrap().starts_with("Person 1"));
}

/// `kill -SIGNAL` a `recommend` that is writing its output (its input left open).
fn signal_while_writing(signal: &str) {
    use std::io::Write as _;
    let dir = TempDir::new(&format!("signal-{signal}"));
    let out = dir.path("out.txt");
    let mut child: Child = command(["recommend", "--model", p(&model()), "--input", "-", "-o"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"x0,x1,x2,x3,x4,x5,x6\n1,2,1,0,0,1,2\n")
        .unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    while !dir.entries().iter().any(|e| e.starts_with(".out.txt.tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            dir.entries()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(130), "{signal}");
    assert_eq!(dir.entries(), Vec::<String>::new(), "{signal}");
}

#[test]
fn sigterm_and_sighup_remove_the_temporary_like_sigint() {
    signal_while_writing("TERM");
    signal_while_writing("HUP");
}

/// A stale temporary of an earlier process with the pid the next run gets: the run must pick
/// another name. The pid is guessed from the kernel's last one; a guess missed (another process
/// started in between) is retried.
#[cfg(target_os = "linux")]
#[test]
fn a_stale_temporary_with_a_reused_pid_does_not_fail_the_run() {
    let dir = TempDir::new("stale");
    let input = people(&dir);
    let out = dir.path("out.txt");
    for _attempt in 0..20 {
        let Ok(last) = fs::read_to_string("/proc/sys/kernel/ns_last_pid") else {
            // A kernel without it (no CONFIG_CHECKPOINT_RESTORE): the unit test
            // `io::tests::a_stale_temporary_with_our_pid_is_skipped` covers the logic.
            eprintln!("no /proc/sys/kernel/ns_last_pid: the child's pid cannot be predicted");
            return;
        };
        let last: u32 = last.trim().parse().unwrap();
        let stale: Vec<PathBuf> = (last + 1..last + 40)
            .map(|pid| dir.path(&format!(".out.txt.tmp.{pid}.0")))
            .collect();
        for s in &stale {
            fs::write(s, "stale").unwrap();
        }
        let mut args = recommend(&input);
        args.extend(["-o".into(), p(&out).into()]);
        let child = command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        let hit = stale
            .iter()
            .any(|s| s.ends_with(format!(".out.txt.tmp.{pid}.0")));
        for s in &stale {
            let _ = fs::remove_file(s);
        }
        if hit {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(fs::read_to_string(&out).unwrap().starts_with("Person 1"));
            assert_eq!(dir.entries(), ["out.txt", "people.csv"]);
            return;
        }
    }
    panic!("could not predict the child's pid in 20 attempts");
}

#[test]
fn model_files_are_read_header_first_with_a_size_limit() {
    let dir = TempDir::new("model-limit");
    let quick = Duration::from_secs(10);
    // /dev/zero and /dev/urandom: bad magic bytes at once.
    for dev in ["/dev/zero", "/dev/urandom"] {
        let err = fails(run_within(command(["inspect", dev]), quick), 1);
        assert!(err.contains("bad magic"), "{err}");
    }
    #[cfg(unix)]
    {
        let link = dir.path("zero.carma");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = fails(run_within(command(["inspect", p(&link)]), quick), 1);
        assert!(err.contains("bad magic"), "{err}");
    }
    // A header announcing 4 GB, and a (sparse) 20 MiB file: refused with the limit.
    let mut header = b"CARMA\0BN".to_vec();
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&u32::MAX.to_le_bytes());
    let announced = dir.path("announced.carma");
    fs::write(&announced, &header).unwrap();
    let err = fails(run_within(command(["inspect", p(&announced)]), quick), 1);
    assert!(err.contains("16 MiB"), "{err}");
    let big = dir.path("big.carma");
    fs::write(&big, fs::read(model()).unwrap()).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(20 << 20)
        .unwrap();
    let err = fails(run_within(command(["inspect", p(&big)]), quick), 1);
    assert!(err.contains("16 MiB"), "{err}");
    let input = people(&dir);
    let err = fails(
        run_within(
            command(["recommend", "--model", "/dev/zero", "--input", p(&input)]),
            quick,
        ),
        1,
    );
    assert!(err.contains("bad magic"), "{err}");
}

#[test]
fn a_line_without_end_is_refused_with_its_line_number() {
    let dir = TempDir::new("long-line");
    let quick = Duration::from_secs(20);
    let err = fails(
        run_within(
            command(["recommend", "--model", p(&model()), "--input", "/dev/zero"]),
            quick,
        ),
        1,
    );
    assert!(err.contains("line 1 is longer than 1048576 bytes"), "{err}");
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loan-graph.toml");
    let err = fails(
        run_within(
            command([
                "fit",
                "--data",
                "/dev/zero",
                "--graph",
                p(&graph),
                "-o",
                p(&dir.path("m.carma")),
            ]),
            quick,
        ),
        1,
    );
    assert!(err.contains("line 1 is longer than 1048576 bytes"), "{err}");
    // A 2 MB line after a good one, with and without --id (which reads the header itself).
    let mut text = String::from("x0,x1,x2,x3,x4,x5,x6\n1,2,1,0,0,1,2\n");
    text.push_str(&"7".repeat(2 << 20));
    let long = dir.write("long.csv", &text);
    let err = fails(run_within(command(recommend(&long)), quick), 1);
    assert!(err.contains("line 3 is longer"), "{err}");
    // A quote never closed, then short lines without end: a record over 4 MiB.
    let mut text = String::from("x0,x1,x2,x3,x4,x5,x6,y\n1,2,1,0,0,1,2,0\n\"");
    text.push_str(&"abc\n".repeat(1_500_000));
    let quoted = dir.write("quoted.csv", &text);
    let err = fails(run_within(command(recommend(&quoted)), quick), 1);
    assert!(
        err.contains("line 3: a row longer than 4194304 bytes"),
        "{err}"
    );
    let err = fails(
        run_within(
            command([
                "fit",
                "--data",
                p(&quoted),
                "--graph",
                p(&graph),
                "-o",
                p(&dir.path("m.carma")),
            ]),
            quick,
        ),
        1,
    );
    // (The header is not Loan's: the columns are refused before the rows are read.)
    assert!(err.contains("missing column 'gender'"), "{err}");
    let loan_header = "gender,age,education,loan_amount,duration,income,savings,y\n\"";
    let quoted_loan = dir.write(
        "quoted-loan.csv",
        &(loan_header.to_owned() + &"abc\n".repeat(1_500_000)),
    );
    let err = fails(
        run_within(
            command([
                "fit",
                "--data",
                p(&quoted_loan),
                "--graph",
                p(&graph),
                "-o",
                p(&dir.path("m.carma")),
            ]),
            quick,
        ),
        1,
    );
    assert!(
        err.contains("line 2: a row longer than 4194304 bytes"),
        "{err}"
    );
    let header = dir.write("header.csv", &"x".repeat(2 << 20));
    let mut args = recommend(&header);
    args.extend(["--id".into(), "id".into()]);
    let err = fails(run_within(command(&args), quick), 1);
    assert!(err.contains("line 1 is longer"), "{err}");
    assert!(
        err.len() < 400,
        "the error echoes the line: {} bytes",
        err.len()
    );
}

/// `simulate` streams its rows: any `-n` starts at once in constant memory, and the bytes are
/// those of the in-memory table it used to build.
#[test]
fn simulate_streams_any_number_of_rows_and_jobs_are_bounded() {
    // What simulate wrote before it streamed: the whole sample as a table.
    let dataset = carma_train::scm::Dataset::Loan;
    let table = carma_train::data::Table::from_sample(dataset, dataset.scm().sample(500, 3));
    let mut expected = Vec::new();
    table.write_csv_to(&mut expected).unwrap();
    let streamed = ok(carma([
        "simulate", "-d", "loan", "-n", "500", "--seed", "3",
    ]))
    .stdout;
    assert_eq!(
        String::from_utf8(streamed).unwrap(),
        String::from_utf8(expected).unwrap()
    );
    // The largest -n: a reader that stops after 100 KB ends it (it used to panic at once).
    let mut child = command(["simulate", "-d", "loan", "-n", "18446744073709551615"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = vec![0u8; 100_000];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert!(head.starts_with(b"gender,age,"));
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // -n 1000000000 (it used to abort on a 56 GB allocation): after a second of writing, its
    // resident memory is a few MB.
    #[cfg(target_os = "linux")]
    {
        let mut child = command([
            "simulate",
            "-d",
            "loan",
            "-n",
            "1000000000",
            "-o",
            "/dev/null",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert!(rss_kb < 64 * 1024, "{rss_kb} kB");
    }
    for n in ["0", "99999999999999999999999", "-5"] {
        let err = fails(carma(["simulate", "-d", "loan", "-n", n]), 2);
        assert!(err.contains("row"), "{err}");
    }
    let dir = TempDir::new("jobs");
    let input = people(&dir);
    for jobs in ["100000", "0", "257"] {
        let mut args = recommend(&input);
        args.extend(["--jobs".into(), jobs.into()]);
        let err = fails(carma(&args), 2);
        assert!(err.contains("expected 1 to 256 threads"), "{err}");
    }
    let mut args = recommend(&input);
    args.extend(["--jobs".into(), "256".into()]);
    ok(carma(&args));
    let err = fails(carma(["oracle", "-d", "loan", "-n", "0"]), 2);
    assert!(err.contains("at least 1"), "{err}");
    assert_eq!(dir.entries(), ["people.csv"]);
}

/// Run with standard output (or error) on `/dev/full`.
fn to_full(args: &[&str], stderr_full: bool) -> Output {
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut c = command(args);
    if stderr_full {
        c.stdout(Stdio::null()).stderr(full());
    } else {
        c.stdout(full()).stderr(Stdio::piped());
    }
    c.output().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_or_stderr_is_an_error_not_a_panic() {
    let dir = TempDir::new("full");
    let input = people(&dir);
    let m = model();
    for args in [
        vec!["inspect", p(&m)],
        vec!["inspect", "--json", p(&m)],
        vec!["--help"],
        vec!["recommend", "--help"],
        vec!["recommend", "--model", p(&m), "--input", p(&input)],
        vec![
            "recommend",
            "--model",
            p(&m),
            "--input",
            p(&input),
            "--format",
            "json",
        ],
        vec!["simulate", "-d", "loan", "-n", "5"],
        // The demo's report still uses println!: the panic hook turns its failure into an error.
        vec!["demo", "--fast"],
    ] {
        let err = fails(to_full(&args, false), 1);
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
    }
    // Standard error full: nothing can be said, but the status says it failed.
    let o = to_full(&["recommend", "--model", p(&m), "--input", p(&input)], true);
    assert_eq!(o.status.code(), Some(1));
    let o = to_full(
        &["recommend", "--model", p(&m), "--input", "/nonexistent.csv"],
        true,
    );
    assert_eq!(o.status.code(), Some(1));
}

/// `carma simulate` then a transformation of one column, as a user's own data would be.
fn loan_with(dir: &TempDir, rows: &str, change: impl Fn(&str, f64) -> f64) -> (PathBuf, PathBuf) {
    let data = dir.path("loan.csv");
    let graph = dir.path("loan.toml");
    ok(carma([
        "simulate",
        "-d",
        "loan",
        "-n",
        rows,
        "--seed",
        "3",
        "-o",
        p(&data),
        "--graph",
        p(&graph),
    ]));
    let text = fs::read_to_string(&data).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let mut out = header.join(",") + "\n";
    for line in lines {
        let cells: Vec<String> = line
            .split(',')
            .zip(&header)
            .map(|(c, h)| {
                let v: f64 = c.parse().unwrap();
                let w = change(h, v);
                if w == v {
                    c.to_owned()
                } else {
                    format!("{w:e}")
                }
            })
            .collect();
        out += &(cells.join(",") + "\n");
    }
    fs::write(&data, out).unwrap();
    (data, graph)
}

fn tiny_config(dir: &TempDir) -> PathBuf {
    let cfg = carma_train::pipeline::PipelineConfig::tiny(carma_train::scm::Dataset::Loan);
    dir.write("tiny.toml", &toml::to_string(&cfg).unwrap())
}

#[test]
fn a_feature_on_a_tiny_scale_is_shown_with_its_digits() {
    let dir = TempDir::new("tiny-scale");
    let (data, graph) = loan_with(
        &dir,
        "1500",
        |h, v| if h == "savings" { v * 1e-9 } else { v },
    );
    let cfg = tiny_config(&dir);
    let m = dir.path("m.carma");
    ok(carma([
        "fit",
        "--data",
        p(&data),
        "--graph",
        p(&graph),
        "--config",
        p(&cfg),
        "-o",
        p(&m),
        "--name",
        "loan\u{1b}[2J\nforged line",
    ]));
    // inspect: the tiny mean and std in exponent notation, the name's control bytes escaped.
    let shown = stdout(&ok(carma(["inspect", p(&m)])));
    let savings = shown.lines().find(|l| l.contains(" savings ")).unwrap();
    assert!(
        savings.contains("e-9") && !savings.contains("0.0000"),
        "{savings}"
    );
    assert!(shown.contains("loan\\u{1b}[2J\\nforged line"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "{shown}");
    let text = stdout(&ok(carma([
        "recommend",
        "--model",
        p(&m),
        "--input",
        p(&data),
    ])));
    // Every move of savings reads "savings [rises|falls] from A to B" with A != B, in exponent
    // notation (the values are about 1e-9).
    let mut moves = 0;
    for sentence in text.split("savings").skip(1) {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "from");
        if let Some(k) = at.filter(|&k| k <= 1 && words.len() > k + 3) {
            let (a, b) = (words[k + 1], words[k + 3].trim_end_matches(['.', ',', ';']));
            assert_ne!(a, b, "{sentence}");
            assert!(a.contains('e') && b.contains('e'), "{a} {b}");
            assert!(!a.starts_with("0.000000"), "{a}");
            moves += 1;
        }
    }
    assert!(moves > 0, "no recommendation moves savings:\n{text}");
}

#[test]
fn a_feature_with_a_large_offset_is_refused_before_training() {
    let dir = TempDir::new("offset");
    let (data, graph) = loan_with(&dir, "50", |h, v| if h == "income" { v + 1e9 } else { v });
    let o = carma([
        "fit",
        "--data",
        p(&data),
        "--graph",
        p(&graph),
        "-o",
        p(&dir.path("m.carma")),
    ]);
    let err = fails(o, 1);
    assert!(
        err.contains("column 'income'") && err.contains("32-bit"),
        "{err}"
    );
    assert!(err.contains("subtract an offset"), "{err}");
    assert!(!err.contains("training on"), "{err}");
    assert!(!dir.path("m.carma").exists());
}

/// A model made elsewhere (here imported, with income's mean moved to 1e9) is still read, with
/// a warning that 32-bit floats cannot follow that feature.
#[test]
fn recommend_warns_about_a_model_feature_with_a_large_offset() {
    let dir = TempDir::new("offset-model");
    let json = Path::new(FIXTURES).join("reference/loan_flow.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    doc["scalers"]["recourse"]["mean"][5] = serde_json::json!(1e9);
    let shifted = dir.write("shifted.json", &doc.to_string());
    let m = dir.path("shifted.carma");
    ok(carma(["import", "--json", p(&shifted), "-o", p(&m)]));
    let input = dir.write(
        "people.csv",
        "gender,age,education,loan_amount,duration,income,savings\n1,0,0,0,0,1000000000,0\n",
    );
    let err = fails(
        carma(["recommend", "--model", p(&m), "--input", p(&input)]),
        1,
    );
    assert!(
        err.contains("warning: feature 'income' varies by about"),
        "{err}"
    );
    assert!(err.contains("no CARMA networks"), "{err}");
}

#[test]
fn csv_output_writes_compact_numbers() {
    let dir = TempDir::new("compact");
    let input = people(&dir);
    let mut args = recommend(&input);
    args.extend(["--format".into(), "csv".into()]);
    let text = stdout(&ok(carma(&args)));
    let mut numbers = 0;
    for line in text.lines().skip(1) {
        for cell in line.split(',') {
            if cell.parse::<f32>().is_ok() {
                numbers += 1;
                assert!(cell.len() <= 16, "{cell}");
                assert!(!cell.contains("00000"), "{cell}");
            }
        }
    }
    assert!(numbers > 20, "{text}");
}

#[test]
fn misleading_errors_now_say_what_is_wrong() {
    let dir = TempDir::new("messages");
    let commas = dir.write("commas.csv", ",,,\n1,2,3,4\n");
    let err = fails(carma(recommend(&commas)), 1);
    assert!(err.contains("no column names"), "{err}");
    // -o a directory names it.
    let sub = dir.path("outdir");
    fs::create_dir(&sub).unwrap();
    let input = people(&dir);
    let mut args = recommend(&input);
    args.extend(["-o".into(), p(&sub).into()]);
    let err = fails(carma(&args), 1);
    assert!(
        err.contains(p(&sub)) && err.contains("is a directory"),
        "{err}"
    );
    // An unclosed quote.
    let quote = dir.write(
        "quote.csv",
        "x0,x1,x2,x3,x4,x5,x6\n1,2,1,0,0,1,2\n\"1,2,1,0,0,1,2\n1,2,1,0,0,1,2\n",
    );
    let err = fails(carma(recommend(&quote)), 1);
    assert!(
        err.contains("line 3") && err.contains("never closed"),
        "{err}"
    );
    // A long cell with control bytes: echoed short and escaped.
    let cell = format!("1\u{0}\u{1b}[2J{}", "9".repeat(100_000));
    let bad = dir.write(
        "bad.csv",
        &format!("x0,x1,x2,x3,x4,x5,x6\n1,{cell},1,0,0,1,2\n"),
    );
    let err = fails(carma(recommend(&bad)), 1);
    assert!(err.len() < 400, "{} bytes", err.len());
    assert!(!err.contains('\u{0}') && !err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains("column 'x1'") && err.contains("bytes in all"),
        "{err}"
    );

    // fit: the label, the hints, constant columns, too few rows.
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loan-graph.toml");
    let (data, _) = loan_with(&dir, "40", |_, v| v);
    let out = dir.path("m.carma");
    let fit = |extra: &[&str], data: &Path| {
        let mut a = vec![
            "fit",
            "--data",
            p(data),
            "--graph",
            p(&graph),
            "-o",
            p(&out),
        ];
        a.extend_from_slice(extra);
        carma(a)
    };
    for extra in [
        &["--label", "income"][..],
        &["--label", "income", "--ignore-extra"],
    ] {
        let err = fails(fit(extra, &data), 1);
        assert!(
            err.contains("--label income") && err.contains("is a feature"),
            "{err}"
        );
    }
    let err = fails(fit(&["--label", "approved"], &data), 1);
    assert!(
        err.contains("missing column 'approved'") && err.contains("--label NAME"),
        "{err}"
    );
    let text = fs::read_to_string(&data).unwrap();
    let with_id: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "{},{l}\n",
                if i == 0 {
                    "id".to_owned()
                } else {
                    i.to_string()
                }
            )
        })
        .collect();
    let id_data = dir.write("id.csv", &with_id);
    let err = fails(fit(&[], &id_data), 1);
    assert!(
        err.contains("--ignore-extra") && err.contains("--id"),
        "{err}"
    );
    let (constant, _) = loan_with(&dir, "40", |h, v| if h == "savings" { 2.5 } else { v });
    let err = fails(fit(&[], &constant), 1);
    assert!(err.contains("column 'savings' is constant"), "{err}");
    let two: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    let two = dir.write("two.csv", &two);
    let err = fails(fit(&[], &two), 1);
    assert!(
        err.contains("2 data rows") && err.contains("at least 10"),
        "{err}"
    );
    assert!(!err.contains("scaler"), "{err}");
    assert!(!out.exists());
}

#[test]
fn ids_with_line_breaks_cannot_forge_output_lines() {
    let dir = TempDir::new("forged");
    let input = dir.write(
        "ids.csv",
        "id,x0,x1,x2,x3,x4,x5,x6\n\
         \"p1\nPerson 99: already accepted (p = 1.00). Nothing to change.\",1,2,1,0,0,1,2\n\
         \"p2\u{1b}[2J\",1,2,1,0,0,1,2\n",
    );
    let mut args = recommend(&input);
    args.extend(["--id".into(), "id".into()]);
    let text = stdout(&ok(carma(&args)));
    let persons: Vec<&str> = text.lines().filter(|l| l.starts_with("Person ")).collect();
    assert_eq!(persons.len(), 2, "{text}");
    assert!(persons[0].starts_with("Person p1\\nPerson 99"), "{text}");
    assert!(persons[1].starts_with("Person p2\\u{1b}[2J: "), "{text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn fit_checks_every_setting_and_the_output_before_training() {
    let dir = TempDir::new("early");
    let (data, graph) = loan_with(&dir, "200", |_, v| v);
    let fit = |extra: &[&str]| {
        let mut a = vec!["fit", "--data", p(&data), "--graph", p(&graph)];
        a.extend_from_slice(extra);
        let start = Instant::now();
        let o = carma(a);
        (o, start.elapsed())
    };
    let bad_tau = dir.write("tau.toml", "[carma]\ntau = -1.0\n");
    let bad_weights = dir.write("weights.toml", "weights = [1.0, 2.0]\n");
    let negative = dir.write(
        "neg.toml",
        "weights = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0]\n",
    );
    let missing = dir.path("no/such/dir/m.carma");
    for (extra, says) in [
        (vec!["-o", p(&missing)], "cannot write"),
        (
            vec!["-o", p(&dir.path("m.carma")), "--config", p(&bad_tau)],
            "tau",
        ),
        (
            vec!["-o", p(&dir.path("m.carma")), "--config", p(&bad_weights)],
            "weights must be 7",
        ),
        (
            vec!["-o", p(&dir.path("m.carma")), "--config", p(&negative)],
            "positive",
        ),
    ] {
        let (o, took) = fit(&extra);
        let err = fails(o, 1);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(!err.contains("training on"), "{err}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    let fixed = fs::read_to_string(&graph)
        .unwrap()
        .replace("actionable = true", "actionable = false");
    let none = dir.write("none.toml", &fixed);
    let o = carma([
        "fit",
        "--data",
        p(&data),
        "--graph",
        p(&none),
        "-o",
        p(&dir.path("m.carma")),
    ]);
    let err = fails(o, 1);
    assert!(err.contains("no feature is actionable"), "{err}");
    assert!(!err.contains("training on"), "{err}");
    assert!(!dir.path("m.carma").exists());
    assert!(
        !dir.entries().iter().any(|e| e.contains(".tmp.")),
        "{:?}",
        dir.entries()
    );
}

#[test]
fn forbid_may_be_repeated_says_what_it_does_and_warns_when_it_does_nothing() {
    let dir = TempDir::new("forbid");
    let input = people(&dir);
    let run = |forbid: &[&str]| {
        let mut args = recommend(&input);
        for f in forbid {
            args.extend(["--forbid".into(), (*f).into()]);
        }
        ok(carma(&args))
    };
    let joined = run(&["x1,x3"]);
    let repeated = run(&["x1", "x3"]);
    assert_eq!(stdout(&joined), stdout(&repeated));
    assert!(
        stderr(&repeated).contains("not acted on directly; may still change as a consequence"),
        "{}",
        stderr(&repeated)
    );
    let warned = stderr(&run(&["x0"]));
    assert!(
        warned.contains("--forbid x0: this feature is not actionable"),
        "{warned}"
    );
    let help = stdout(&ok(carma(["recommend", "--help"])));
    assert!(help.contains("may still change as a"), "{help}");
}

#[test]
fn import_says_one_layer() {
    let dir = TempDir::new("import");
    let json = Path::new(FIXTURES).join("reference/loan_flow.json");
    let out = dir.path("ref.carma");
    let text = stdout(&ok(carma(["import", "--json", p(&json), "-o", p(&out)])));
    assert!(text.contains("causal flow (1 layer)"), "{text}");
    let err = fails(carma(["import", "--json", p(&json), "-o", p(&json)]), 1);
    assert!(err.contains("same file as --json"), "{err}");
}
