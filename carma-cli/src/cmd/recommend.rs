//! `carma recommend`: per person of a CSV, what to change to be accepted.
//!
//! Streams: rows are read in chunks of a fixed size into one reused buffer, each chunk is split
//! among the threads (each with its own scratch area for the core), and the chunk's output is
//! written in input order before the next chunk is read. Memory is the same for ten rows or ten
//! million.

use std::io::{self, BufWriter, Read, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::Context;
use carma_core::error::{Error as CoreError, InputError};
use carma_core::{Bundle, FeatureSet};
use carma_train::data::{
    CsvOptions, CsvRowReader, DataError, MAX_LINE_BYTES, MAX_RECORD_BYTES, line_too_long,
    record_too_long,
};
use carma_train::io::{AtomicFile, WriteOptions, refuse_overwriting_inputs};

use crate::explain::{Explanation, Style};
use crate::model::{self, ModelFile};
use crate::recourse::{PersonError, Recourse, Settings};
use crate::rows::{self, CsvSource, Layout, Parsed, Scan};

/// Rows each thread handles per chunk: large enough to amortize starting the threads, small
/// enough that a chunk's input and output stay a few megabytes.
const ROWS_PER_THREAD: usize = 2048;
/// A chunk with fewer rows than this runs on the calling thread: starting threads costs more.
const PARALLEL_MIN_ROWS: usize = 512;

/// How to print the recommendations.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One plain-language paragraph per person.
    Text,
    /// A JSON array with one object per person.
    Json,
    /// One CSV row per person: status, probabilities, cost, actions, recommended values.
    Csv,
}

/// Arguments of `carma recommend`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model file (from `carma fit` or `carma demo`).
    #[arg(long)]
    pub model: PathBuf,
    /// CSV with one person per row and a column per feature of the model (any order; other
    /// columns such as an id or a label are ignored). `-` reads standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Features a recommendation may not act on directly; they may still change as a
    /// consequence of acting on their causes. Comma-separated (education,income) or repeated
    /// (--forbid education --forbid income; repeat it for a name that contains a comma).
    #[arg(long, value_name = "FEATURES")]
    pub forbid: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Output file (written atomically: complete or not at all; a device or FIFO is written
    /// directly; must not be the model or the input); standard output when absent.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// An input column identifying each person (e.g. id), repeated in the output.
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
    /// Worker threads (default: every core; at most 256).
    #[arg(long, value_parser = crate::cmd::parse_jobs)]
    pub jobs: Option<NonZeroUsize>,
    /// Replace the output file even if it is read-only.
    #[arg(long)]
    pub force: bool,
    /// Show the networks' proposal as it is, without refining it to the smallest change that
    /// works (docs/MATH.md, section 6).
    #[arg(long)]
    pub no_refine: bool,
    /// The acceptance probability a refined recommendation keeps (0.5 to 1; a margin above 0.5
    /// guards against the learned model's error).
    #[arg(long, default_value_t = carma_core::recommend::DEFAULT_MIN_PROB, value_parser = min_prob)]
    pub min_prob: f32,
    /// At most this many features changed directly, for every person (a per-row
    /// `max_changes` column overrides it).
    #[arg(long, value_name = "N")]
    pub max_changes: Option<u8>,
    /// No recommendation sets FEATURE below V (original units), for every person; repeat for
    /// several features (a per-row `<feature>_min` column overrides it).
    #[arg(long = "min", value_name = "FEATURE=V")]
    pub min: Vec<String>,
    /// No recommendation sets FEATURE above V; as --min (per-row column `<feature>_max`).
    #[arg(long = "max", value_name = "FEATURE=V")]
    pub max: Vec<String>,
    /// Features a recommendation may only raise (or keep), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "FEATURES")]
    pub increase_only: Vec<String>,
    /// Features a recommendation may only lower (or keep), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "FEATURES")]
    pub decrease_only: Vec<String>,
    /// Up to K further recommendations per person, each changing a different set of features
    /// (the cheapest found with one more feature of the earlier ones forbidden), by cost.
    #[arg(long, value_name = "K", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=16))]
    pub alternatives: u8,
}

/// The whole run's limits from the command line, checked against the model.
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    /// Lower bound of each feature (`-inf` for none).
    pub min: Vec<f32>,
    /// Upper bound of each feature (`+inf` for none).
    pub max: Vec<f32>,
    /// Features that may only be raised.
    pub increase: FeatureSet,
    /// Features that may only be lowered.
    pub decrease: FeatureSet,
    /// At most this many changes.
    pub max_changes: Option<u8>,
}

impl RunLimits {
    /// No limit beyond the model's own, for `d` features.
    pub fn unlimited(d: usize) -> RunLimits {
        RunLimits {
            min: vec![f32::NEG_INFINITY; d],
            max: vec![f32::INFINITY; d],
            ..RunLimits::default()
        }
    }

    /// Reads `--min`, `--max`, `--increase-only`, `--decrease-only` and `--max-changes`.
    pub fn from_args(bundle: &Bundle<'_>, args: &Args) -> anyhow::Result<RunLimits> {
        let d = bundle.n_features();
        let mut min = vec![f32::NEG_INFINITY; d];
        let mut max = vec![f32::INFINITY; d];
        for (flag, list, out) in [
            ("--min", &args.min, &mut min),
            ("--max", &args.max, &mut max),
        ] {
            for item in list {
                let (name, value) = item.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!(
                        "{flag} {item}: expected FEATURE=VALUE (e.g. {flag} income=3.5)"
                    )
                })?;
                let i = model::feature_indices(bundle, &[name.trim().to_owned()])
                    .with_context(|| flag.to_owned())?[0];
                let v: f32 = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f32| v.is_finite())
                    .ok_or_else(|| {
                        anyhow::anyhow!("{flag} {item}: '{value}' is not a finite number")
                    })?;
                out[i] = v;
            }
        }
        let set = |names: &[String], flag: &str| -> anyhow::Result<FeatureSet> {
            Ok(model::feature_indices(bundle, names)
                .with_context(|| flag.to_owned())?
                .into_iter()
                .collect())
        };
        let increase = set(&args.increase_only, "--increase-only")?;
        let decrease = set(&args.decrease_only, "--decrease-only")?;
        if let Some(i) = increase.intersection(decrease).iter().next() {
            anyhow::bail!(
                "'{}' is both --increase-only and --decrease-only (forbid it instead)",
                model::name(bundle, i)
            );
        }
        if let Some(i) = (0..d).find(|&i| min[i] > max[i]) {
            anyhow::bail!(
                "--min {0}={1} is above --max {0}={2}",
                model::name(bundle, i),
                min[i],
                max[i]
            );
        }
        Ok(RunLimits {
            min,
            max,
            increase,
            decrease,
            max_changes: args.max_changes,
        })
    }
}

fn min_prob(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.5..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a probability between 0.5 and 1, found '{s}'"
        )),
    }
}

/// The refinement `carma recommend` applies: the core's default with `--min-prob`, or none.
pub fn refinement(no_refine: bool, min_prob: f32) -> Option<carma_core::Refine> {
    (!no_refine).then_some(carma_core::Refine {
        min_prob,
        ..carma_core::Refine::DEFAULT
    })
}

/// Counts for the closing summary.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    people: usize,
    already: usize,
    accepted: usize,
    rejected: usize,
    /// Rejected with no accepted recommendation within the limits.
    none_within: usize,
    warnings: usize,
}

impl Tally {
    fn add(&mut self, e: &Explanation) {
        self.people += 1;
        if e.rec.already_accepted {
            self.already += 1;
        } else if e.rec.accepted {
            self.accepted += 1;
        } else {
            self.rejected += 1;
            if e.rec.status == carma_core::Status::NoneWithinLimits {
                self.none_within += 1;
            }
        }
        if e.forbidden_left_none.is_some_and(|(_, u)| u.accepted) {
            self.warnings += 1;
        }
    }

    fn merge(&mut self, o: Tally) {
        self.people += o.people;
        self.already += o.already;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.none_within += o.none_within;
        self.warnings += o.warnings;
    }
}

/// Run `carma recommend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        refuse_overwriting_inputs(out, &[("--model", &args.model), ("--input", &args.input)])?;
    }
    let file = ModelFile::read(&args.model)?;
    let bundle = file.bundle()?;
    warn_imprecise_features(&bundle);
    if bundle.carma().is_none() {
        anyhow::bail!(
            "{}: the model has no CARMA networks (it holds only a causal flow and a classifier, \
             e.g. imported from PyTorch), so it cannot recommend; train a full model with \
             `carma fit`",
            file.path.display()
        );
    }
    let forbid_list = model::forbid_indices(&bundle, &args.forbid).context("--forbid")?;
    for &i in &forbid_list {
        if !bundle.is_actionable(i) {
            note!(
                "warning: --forbid {}: this feature is not actionable in the model anyway, so \
                 forbidding it changes nothing",
                model::name(&bundle, i)
            );
        }
    }
    if !forbid_list.is_empty() {
        let names: Vec<String> = forbid_list
            .iter()
            .map(|&i| model::name(&bundle, i).to_owned())
            .collect();
        note!(
            "--forbid {}: not acted on directly; may still change as a consequence of acting on \
             their causes",
            crate::explain::join(&names)
        );
    }
    let forbid: FeatureSet = forbid_list.into_iter().collect();
    let limits = RunLimits::from_args(&bundle, &args)?;
    let graph = model::graph(&bundle, &file.path)?;

    let (reader, label): (Box<dyn Read>, String) = if args.input == Path::new("-") {
        (Box::new(io::stdin().lock()), "<standard input>".to_owned())
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open input {}", args.input.display()))?;
        (Box::new(f), args.input.display().to_string())
    };
    let options = CsvOptions {
        label: None,
        ignore_extra: true,
    };
    let mut reader = io::BufReader::new(reader);
    let (reader, id_column) = match &args.id {
        Some(name) => {
            let (header, index) = find_column(&mut reader, name, &label)?;
            let reader: Box<dyn Read> = Box::new(io::Cursor::new(header).chain(reader));
            (reader, Some((name.as_str(), index)))
        }
        None => (Box::new(reader) as Box<dyn Read>, None),
    };
    let (mut input, header) = Input::new(reader).map_err(|source| DataError::Io {
        file: label.clone(),
        source,
    })?;
    // The header is checked (and refused) exactly as the trainer's reader does.
    let rows = CsvRowReader::from_reader(header.as_slice(), &label, &graph, &options)?;
    let layout = Layout {
        columns: rows.columns().to_vec(),
        features: graph.features().to_vec(),
        n_cells: rows.n_cells(),
        id: id_column.map(|(_, j)| j),
        limits: rows::limit_columns(&header_cells(&header), &graph.names()),
    };
    let shared = Shared {
        bundle: &bundle,
        forbid,
        refine: refinement(args.no_refine, args.min_prob),
        limits,
        alternatives: usize::from(args.alternatives),
        format: args.format,
        style: Style::new(&bundle),
        layout,
        source: CsvSource {
            header: &header,
            header_newlines: newlines(&header),
            file: &label,
            graph: &graph,
            options: &options,
        },
    };

    let mut sink = match &args.out {
        Some(path) => Sink::File(
            AtomicFile::create_with(
                path,
                WriteOptions {
                    replace_read_only: args.force,
                },
            )
            .with_context(|| format!("cannot create output {}", path.display()))?,
        ),
        None => Sink::Stdout(BufWriter::new(io::stdout().lock())),
    };
    let threads = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);

    let tally = stream(
        &shared,
        threads,
        id_column.map(|(name, _)| name),
        &mut input,
        &mut sink,
    )?;
    sink.finish()?;

    let forbidden = if forbid.is_empty() {
        String::new()
    } else {
        format!(
            "; {} left without an accepted recommendation by --forbid",
            tally.warnings
        )
    };
    let within = if tally.none_within > 0 {
        format!(
            " ({} of them with no recommendation within the limits)",
            tally.none_within
        )
    } else {
        String::new()
    };
    note!(
        "{} people: {} already accepted, {} accepted after the recommendation, {} not accepted{within}{forbidden}{}",
        tally.people,
        tally.already,
        tally.accepted,
        tally.rejected,
        args.out
            .as_ref()
            .map(|p| format!(" (written to {})", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Warn about continuous features whose |mean| / std is too large for 32-bit floats: `fit`
/// refuses them, but a model from elsewhere (an import, an older version) may have one.
fn warn_imprecise_features(bundle: &Bundle<'_>) {
    for i in (0..bundle.n_features()).filter(|&i| !bundle.is_binary(i)) {
        if let (Some(mean), Some(std)) = (bundle.mean(i), bundle.std(i))
            && f64::from(mean.abs()) / f64::from(std) > crate::cmd::fit::MAX_OFFSET_TO_SPREAD
        {
            note!(
                "warning: feature '{}' varies by about {std:e} around {mean:e}: 32-bit floats \
                 cannot represent such small variations of such large values, so its \
                 recommendations are imprecise (retrain on the column minus an offset)",
                model::name(bundle, i)
            );
        }
    }
}

/// The cells of a header record (a byte-order mark dropped); empty if it does not parse.
fn header_cells(header: &[u8]) -> Vec<String> {
    parse_header(header).unwrap_or_default()
}

/// The cells of a header record, trimmed, the byte-order mark of the first dropped.
fn parse_header(header: &[u8]) -> Result<Vec<String>, csv::Error> {
    let mut cells = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(header);
    let mut record = csv::StringRecord::new();
    cells.read_record(&mut record)?;
    Ok(record
        .iter()
        .enumerate()
        .map(|(j, c)| {
            if j == 0 {
                c.trim_start_matches('\u{feff}')
            } else {
                c
            }
            .to_owned()
        })
        .collect())
}

/// Read the header line and find `name` in it; returns the header bytes (to be read again by
/// the CSV reader) and the column's index.
fn find_column(
    reader: &mut (impl io::BufRead + ?Sized),
    name: &str,
    file: &str,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut header = Vec::new();
    io::BufRead::read_until(
        &mut Read::take(&mut *reader, MAX_LINE_BYTES as u64 + 1),
        b'\n',
        &mut header,
    )
    .with_context(|| format!("cannot read {file}"))?;
    if header.len() > MAX_LINE_BYTES {
        return Err(DataError::Io {
            file: file.to_owned(),
            source: line_too_long(1),
        }
        .into());
    }
    let names = parse_header(&header).with_context(|| format!("{file}: cannot read the header"))?;
    let index = names.iter().position(|c| *c == name).ok_or_else(|| {
        anyhow::anyhow!(
            "{file}: no column '{}' for --id (the header has: {})",
            carma_train::data::echo(name),
            carma_train::data::echo_list(&names.join(", "))
        )
    })?;
    Ok((header, index))
}

/// Bytes read per `read` call at least (more while one record is longer).
const READ_BLOCK: usize = 256 * 1024;

/// The input after its header, cut into chunks of whole records. Only the record boundaries are
/// found here (cheaply); the workers parse the records.
struct Input {
    src: Box<dyn Read>,
    /// Bytes read past the last chunk's last record.
    leftover: Vec<u8>,
    eof: bool,
    /// Data rows handed out so far.
    rows: usize,
    /// `\n` bytes before `leftover`.
    newlines: u64,
}

/// Whole records of the input, with where they start in the file.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// End of each record in `bytes`.
    ends: Vec<usize>,
    /// 1-based data row of the first record.
    first_row: usize,
    /// `\n` bytes in the file before `bytes`.
    newlines: u64,
    /// Reading stopped with this error after the records of `bytes`.
    error: Option<io::Error>,
}

impl Input {
    /// Read the header record: returns its bytes (from the start of the file through the first
    /// byte of its terminator).
    fn new(src: Box<dyn Read>) -> io::Result<(Input, Vec<u8>)> {
        let mut input = Input {
            src,
            leftover: Vec::new(),
            eof: false,
            rows: 0,
            newlines: 0,
        };
        let end = loop {
            match rows::next_record(&input.leftover, 0, input.eof) {
                Scan::Record(end) => break end,
                Scan::End => break input.leftover.len(),
                Scan::NeedMore if input.leftover.len() > MAX_LINE_BYTES => {
                    if let Some(e) = too_long(&input.leftover, 0) {
                        return Err(e);
                    }
                    read_more(&mut input.src, &mut input.leftover, 0, &mut input.eof)?
                }
                Scan::NeedMore => {
                    read_more(&mut input.src, &mut input.leftover, 0, &mut input.eof)?
                }
            }
        };
        let header = input.leftover.drain(..end).collect::<Vec<u8>>();
        input.newlines = newlines(&header);
        Ok((input, header))
    }

    /// Fill `chunk` with the next `rows` records (fewer at the end of the input).
    fn fill(&mut self, chunk: &mut Chunk, rows: usize) {
        chunk.bytes.clear();
        chunk.ends.clear();
        chunk.error = None;
        chunk.bytes.append(&mut self.leftover);
        chunk.first_row = self.rows + 1;
        chunk.newlines = self.newlines;
        let mut at = 0;
        while chunk.ends.len() < rows {
            match rows::next_record(&chunk.bytes, at, self.eof) {
                Scan::Record(end) => {
                    chunk.ends.push(end);
                    at = end;
                }
                Scan::End => break,
                Scan::NeedMore if chunk.bytes.len() - at > MAX_LINE_BYTES => {
                    // Possibly a line or record over the limits (a file without line ends, a
                    // quote never closed): stop before it grows further.
                    match too_long(
                        &chunk.bytes[at..],
                        self.newlines + newlines(&chunk.bytes[..at]),
                    ) {
                        Some(e) => {
                            chunk.error = Some(e);
                            self.eof = true;
                            chunk.bytes.truncate(at);
                            break;
                        }
                        None => {
                            if let Err(e) =
                                read_more(&mut self.src, &mut chunk.bytes, at, &mut self.eof)
                            {
                                chunk.error = Some(e);
                                self.eof = true;
                                chunk.bytes.truncate(at);
                                break;
                            }
                        }
                    }
                }
                Scan::NeedMore => {
                    if let Err(e) = read_more(&mut self.src, &mut chunk.bytes, at, &mut self.eof) {
                        chunk.error = Some(e);
                        self.eof = true;
                        chunk.bytes.truncate(at);
                        break;
                    }
                }
            }
        }
        self.leftover.extend_from_slice(&chunk.bytes[at..]);
        chunk.bytes.truncate(at);
        self.rows += chunk.ends.len();
        self.newlines += newlines(&chunk.bytes);
    }
}

/// The error for an unfinished record `pending` (starting after `newlines_before` line ends)
/// whose last line is over [`MAX_LINE_BYTES`] or which is over [`MAX_RECORD_BYTES`] in all.
fn too_long(pending: &[u8], newlines_before: u64) -> Option<io::Error> {
    let last_line = pending
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(pending.len(), |k| pending.len() - k - 1);
    if last_line > MAX_LINE_BYTES {
        Some(line_too_long(newlines_before + newlines(pending) + 1))
    } else if pending.len() > MAX_RECORD_BYTES {
        Some(record_too_long(newlines_before + 1))
    } else {
        None
    }
}

/// Append the next bytes of `src` to `buf`; `from` is where the record being looked for starts
/// (reads grow with it, so a long record is not scanned again and again). Sets `eof` at the end.
fn read_more(src: &mut dyn Read, buf: &mut Vec<u8>, from: usize, eof: &mut bool) -> io::Result<()> {
    let len = buf.len();
    buf.resize(len + READ_BLOCK.max(len - from), 0);
    loop {
        match src.read(&mut buf[len..]) {
            Ok(n) => {
                buf.truncate(len + n);
                *eof = n == 0;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
}

/// Number of `\n` in `bytes` (by blocks of 255, so the count per block fits the byte counter
/// the compiler vectorizes).
fn newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|c| u64::from(c.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n'))))
        .sum()
}

/// What every worker reads.
struct Shared<'s, 'a> {
    bundle: &'s Bundle<'a>,
    forbid: FeatureSet,
    refine: Option<carma_core::Refine>,
    limits: RunLimits,
    alternatives: usize,
    format: Format,
    style: Style,
    layout: Layout,
    source: CsvSource<'s>,
}

/// One worker's share of a chunk: whole records.
#[derive(Clone, Copy)]
struct Job<'c> {
    bytes: &'c [u8],
    first_row: usize,
    newlines: u64,
    /// Its first row is the first of the output (no JSON comma before it).
    first: bool,
}

/// Why a worker stopped.
enum Failure {
    /// A row could not be read: no row of the chunk is written.
    Read(anyhow::Error),
    /// The core refused a row: the parts before this one are written.
    Row(anyhow::Error),
}

/// Cut the chunk's records into the workers' shares: one share on the calling thread for a
/// small chunk or one thread, else `threads` equal shares (the last smaller).
fn jobs<'c>(chunk: &'c Chunk, threads: usize, first: bool) -> Vec<Job<'c>> {
    let n = chunk.ends.len();
    let per = if n < PARALLEL_MIN_ROWS || threads == 1 {
        n
    } else {
        n.div_ceil(threads)
    };
    let mut jobs = Vec::with_capacity(threads);
    let (mut start, mut nl) = (0, chunk.newlines);
    for (k, a) in (0..n).step_by(per).enumerate() {
        let end = chunk.ends[(a + per).min(n) - 1];
        let bytes = &chunk.bytes[start..end];
        jobs.push(Job {
            bytes,
            first_row: chunk.first_row + a,
            newlines: nl,
            first: first && k == 0,
        });
        nl += newlines(bytes);
        start = end;
    }
    jobs
}

/// Read, recommend and write every row, chunk by chunk. With several threads, while the workers
/// parse, recommend and format one chunk, this thread writes the previous chunk's output and
/// finds the records of the next (two chunk buffers, so memory stays fixed).
fn stream(
    shared: &Shared<'_, '_>,
    threads: usize,
    id_name: Option<&str>,
    input: &mut Input,
    out: &mut impl Write,
) -> anyhow::Result<Tally> {
    let bundle = shared.bundle;
    let file = shared.source.file;
    let chunk_rows = ROWS_PER_THREAD * threads;
    let (mut current, mut next) = (Chunk::default(), Chunk::default());
    let mut workers: Vec<Worker> = (0..threads).map(|_| Worker::new(bundle)).collect();
    // Output of the previous chunk's parts, not yet written.
    let mut pending: Vec<Vec<u8>> = vec![Vec::new(); threads];
    let mut n_pending = 0;
    let mut tally = Tally::default();
    let mut first = true;
    match shared.format {
        Format::Json => out.write_all(b"[\n")?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(Explanation::csv_header(bundle, id_name))?;
            out.write_all(&w.into_inner().map_err(|e| e.into_error())?)?;
        }
        Format::Text => {}
    }
    let write_pending = |out: &mut dyn Write, pending: &[Vec<u8>]| -> io::Result<()> {
        pending.iter().try_for_each(|p| out.write_all(p))
    };
    input.fill(&mut current, chunk_rows);
    while !current.ends.is_empty() {
        let jobs = jobs(&current, threads, first);
        let results: Vec<Result<Tally, Failure>> = if jobs.len() == 1 {
            write_pending(out, &pending[..n_pending])?;
            n_pending = 0;
            let result = workers[0].run(shared, jobs[0]);
            input.fill(&mut next, chunk_rows);
            vec![result]
        } else {
            let (results, wrote) = std::thread::scope(|s| {
                // A thread that cannot be started is an error for its share, not a panic.
                let handles: Vec<_> = workers
                    .iter_mut()
                    .zip(&jobs)
                    .map(|(w, &job)| {
                        std::thread::Builder::new().spawn_scoped(s, move || w.run(shared, job))
                    })
                    .collect();
                let wrote = write_pending(out, &pending[..n_pending]);
                input.fill(&mut next, chunk_rows);
                let results: Vec<_> = handles
                    .into_iter()
                    .map(|h| match h {
                        Ok(h) => h.join().unwrap_or_else(|_| {
                            Err(Failure::Row(anyhow::anyhow!("a worker thread panicked")))
                        }),
                        Err(e) => Err(Failure::Row(anyhow::anyhow!(
                            "cannot start a worker thread ({e}); try a smaller --jobs"
                        ))),
                    })
                    .collect();
                (results, wrote)
            });
            wrote?;
            n_pending = 0;
            results
        };
        // As if read row by row: a row that cannot be read stops everything before this chunk
        // is written, then a read error, then the core's refusals in part order.
        let mut results = results;
        if let Some(k) = results
            .iter()
            .position(|r| matches!(r, Err(Failure::Read(_))))
            && let Err(Failure::Read(e)) = results.swap_remove(k)
        {
            return Err(e);
        }
        if let Some(source) = current.error.take() {
            return Err(DataError::Io {
                file: file.to_owned(),
                source,
            }
            .into());
        }
        for (k, r) in results.into_iter().enumerate() {
            match r {
                Ok(t) => {
                    tally.merge(t);
                    std::mem::swap(&mut pending[k], &mut workers[k].out);
                    n_pending = k + 1;
                }
                Err(Failure::Row(e) | Failure::Read(e)) => {
                    write_pending(out, &pending[..n_pending])?;
                    return Err(e);
                }
            }
        }
        first = false;
        std::mem::swap(&mut current, &mut next);
    }
    write_pending(out, &pending[..n_pending])?;
    if shared.format == Format::Json {
        out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
    }
    Ok(tally)
}

/// One thread's reusable buffers.
struct Worker {
    recourse: Recourse,
    rows: Parsed,
    out: Vec<u8>,
}

impl Worker {
    fn new(bundle: &Bundle<'_>) -> Self {
        Worker {
            recourse: Recourse::new(bundle),
            rows: Parsed::default(),
            out: Vec::new(),
        }
    }

    /// Parse the job's records, recommend for each and format them into `self.out`.
    fn run(&mut self, shared: &Shared<'_, '_>, job: Job<'_>) -> Result<Tally, Failure> {
        let Shared {
            bundle,
            forbid,
            refine,
            ref limits,
            alternatives,
            format,
            ref style,
            ref layout,
            ref source,
        } = *shared;
        self.rows.clear();
        if !rows::parse_plain(
            job.bytes,
            layout,
            job.first_row,
            job.newlines,
            &mut self.rows,
        ) {
            rows::parse_with_csv(
                job.bytes,
                source,
                layout.id,
                &layout.limits,
                job.first_row,
                job.newlines,
                &mut self.rows,
            )
            .map_err(|e| Failure::Read(e.into()))?;
        }
        let settings = Settings {
            forbid,
            refine,
            limits,
            alternatives,
        };
        let d = bundle.n_features();
        let mut tally = Tally::default();
        self.out.clear();
        for (k, (x, &(row, line))) in self.rows.xs.chunks(d).zip(&self.rows.info).enumerate() {
            let n_limits = layout.limits.len();
            let cells = self
                .rows
                .limits
                .get(k * n_limits..(k + 1) * n_limits)
                .unwrap_or_default();
            let overrides = layout
                .limits
                .iter()
                .zip(cells)
                .map(|(&(_, what), &v)| (what, v));
            let e = match self
                .recourse
                .explain(bundle, &settings, style, row, x, overrides)
            {
                Ok(e) => e,
                Err(PersonError::MaxChanges(v)) => {
                    return Err(Failure::Row(anyhow::anyhow!(
                        "{}: line {line} (data row {row}), column 'max_changes': \
                         expected a whole number from 0 to 64, found {v}",
                        source.file
                    )));
                }
                Err(PersonError::MinAboveMax { feature, min, max }) => {
                    let name = model::name(bundle, feature);
                    return Err(Failure::Row(anyhow::anyhow!(
                        "{}: line {line} (data row {row}): the minimum of '{name}' ({min}) is \
                         above its maximum ({max})",
                        source.file
                    )));
                }
                Err(PersonError::Core(err)) => {
                    return Err(Failure::Row(row_error(bundle, err, source.file, row, line)));
                }
            };
            if layout.id.is_some() {
                e.set_id(self.rows.id(k));
            }
            tally.add(e);
            match format {
                Format::Csv => e.write_csv(bundle, style, &mut self.out),
                Format::Json => {
                    if !(job.first && k == 0) {
                        self.out.extend_from_slice(b",\n");
                    }
                    self.out.extend_from_slice(b"  ");
                    serde_json::to_writer(&mut self.out, &e.json(bundle))
                        .map_err(|err| Failure::Row(err.into()))?;
                }
                Format::Text => e.write_text(bundle, style, &mut self.out),
            }
        }
        Ok(tally)
    }
}

/// A core refusal of one row, naming the file, the row and, when the core says, the feature.
fn row_error(
    bundle: &Bundle<'_>,
    e: CoreError,
    file: &str,
    row: usize,
    line: u64,
) -> anyhow::Error {
    let feature = match e {
        CoreError::Input(InputError::NotFinite { index } | InputError::NotBinary { index }) => {
            format!(", column '{}'", model::name(bundle, index))
        }
        _ => String::new(),
    };
    let hint = match e {
        CoreError::Input(InputError::NotFinite { .. }) => {
            " (the value does not fit a 32-bit float)"
        }
        _ => "",
    };
    anyhow::Error::new(e).context(format!(
        "{file}: line {line} (data row {row}){feature}: cannot recommend{hint}"
    ))
}

/// Standard output, or a file that appears only when complete.
enum Sink {
    File(AtomicFile),
    Stdout(BufWriter<io::StdoutLock<'static>>),
}

impl Sink {
    fn finish(self) -> io::Result<()> {
        match self {
            Sink::File(f) => {
                let path = f.path().display().to_string();
                f.commit().map_err(|e| named(e, &path))
            }
            Sink::Stdout(mut s) => s.flush().map_err(|e| named(e, "standard output")),
        }
    }

    fn name(&self) -> String {
        match self {
            Sink::File(f) => f.path().display().to_string(),
            Sink::Stdout(_) => "standard output".to_owned(),
        }
    }
}

/// A write error naming the destination (`/dev/full`, standard output); the kind is kept, so a
/// closed pipe is still recognized as one.
fn named(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write to {what}: {e}"))
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        };
        r.map_err(|e| named(e, &self.name()))
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        };
        r.map_err(|e| named(e, &self.name()))
    }
}
