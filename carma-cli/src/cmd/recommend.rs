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
use carma_train::data::{CsvOptions, CsvRowReader};
use carma_train::io::AtomicFile;

use crate::explain::{Explanation, Unrestricted};
use crate::model::{self, ModelFile};

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
    /// Features no recommendation may change, comma-separated (e.g. education,income).
    #[arg(long, value_delimiter = ',')]
    pub forbid: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Output file (written atomically: complete or not at all); standard output when absent.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// An input column identifying each person (e.g. id), repeated in the output.
    #[arg(long, value_name = "COLUMN")]
    pub id: Option<String>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<NonZeroUsize>,
}

/// Counts for the closing summary.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    people: usize,
    already: usize,
    accepted: usize,
    rejected: usize,
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
        self.warnings += o.warnings;
    }
}

/// Run `carma recommend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::read(&args.model)?;
    let bundle = file.bundle()?;
    if bundle.carma().is_none() {
        anyhow::bail!(
            "{}: the model has no CARMA networks (it holds only a causal flow and a classifier, \
             e.g. imported from PyTorch), so it cannot recommend; train a full model with \
             `carma fit`",
            file.path.display()
        );
    }
    let forbid: FeatureSet = model::feature_indices(&bundle, &args.forbid)
        .context("--forbid")?
        .into_iter()
        .collect();
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
    let mut rows = CsvRowReader::from_reader(reader, &label, &graph, &options)?;

    let mut sink = match &args.out {
        Some(path) => Sink::File(
            AtomicFile::create(path)
                .with_context(|| format!("cannot create output {}", path.display()))?,
        ),
        None => Sink::Stdout(BufWriter::new(io::stdout().lock())),
    };
    let threads = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);

    let tally = stream(
        &bundle,
        forbid,
        args.format,
        threads,
        id_column,
        &mut rows,
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
    eprintln!(
        "{} people: {} already accepted, {} accepted after the recommendation, {} not accepted{forbidden}{}",
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

/// Read the header line and find `name` in it; returns the header bytes (to be read again by
/// the CSV reader) and the column's index.
fn find_column(
    reader: &mut impl io::BufRead,
    name: &str,
    file: &str,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut header = Vec::new();
    reader
        .read_until(b'\n', &mut header)
        .with_context(|| format!("cannot read {file}"))?;
    let mut cells = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(header.as_slice());
    let mut record = csv::StringRecord::new();
    cells
        .read_record(&mut record)
        .with_context(|| format!("{file}: cannot read the header"))?;
    let names: Vec<&str> = record
        .iter()
        .enumerate()
        .map(|(j, c)| {
            if j == 0 {
                c.trim_start_matches('\u{feff}')
            } else {
                c
            }
        })
        .collect();
    let index = names.iter().position(|c| *c == name).ok_or_else(|| {
        anyhow::anyhow!(
            "{file}: no column '{name}' for --id (the header has: {})",
            names.join(", ")
        )
    })?;
    Ok((header, index))
}

/// One worker's formatted output and counts.
type Part = anyhow::Result<(Vec<u8>, Tally)>;

/// A chunk of input rows: features (`D` per row, graph order) and where each row came from.
struct Chunk {
    xs: Vec<f32>,
    info: Vec<(usize, u64)>,
    /// The `--id` cell of each row (empty without `--id`; strings are reused between chunks).
    ids: Vec<String>,
    n: usize,
}

impl Chunk {
    fn new(rows: usize, d: usize, with_ids: bool) -> Chunk {
        Chunk {
            xs: vec![0.0; rows * d],
            info: vec![(0, 0); rows],
            ids: if with_ids {
                vec![String::new(); rows]
            } else {
                Vec::new()
            },
            n: 0,
        }
    }

    /// Read up to the chunk's capacity; `n == 0` at the end of the input.
    fn fill<R: Read>(
        &mut self,
        rows: &mut CsvRowReader<R>,
        row64: &mut [f64],
        id: Option<usize>,
    ) -> anyhow::Result<()> {
        let d = row64.len();
        self.n = 0;
        while self.n < self.info.len() {
            let Some(r) = rows.read_into(row64)? else {
                break;
            };
            let start = self.n * d;
            for (dst, &v) in self.xs[start..start + d].iter_mut().zip(row64.iter()) {
                *dst = v as f32;
            }
            self.info[self.n] = (r.row, r.line);
            if let (Some(j), Some(slot)) = (id, self.ids.get_mut(self.n)) {
                slot.clear();
                slot.push_str(rows.raw_record().get(j).unwrap_or_default());
            }
            self.n += 1;
        }
        Ok(())
    }
}

/// Read, recommend and write every row, chunk by chunk. With several threads the next chunk is
/// read while the workers process the current one (two chunk buffers, so memory stays fixed).
fn stream<R: Read>(
    bundle: &Bundle<'_>,
    forbid: FeatureSet,
    format: Format,
    threads: usize,
    id_column: Option<(&str, usize)>,
    rows: &mut CsvRowReader<R>,
    out: &mut impl Write,
) -> anyhow::Result<Tally> {
    let id = id_column.map(|(_, j)| j);
    let d = bundle.n_features();
    let file = rows.file().to_owned();
    let chunk_rows = ROWS_PER_THREAD * threads;
    let mut current = Chunk::new(chunk_rows, d, id.is_some());
    let mut next = Chunk::new(chunk_rows, d, id.is_some());
    let mut row64 = vec![0.0f64; d];
    let mut workers: Vec<Worker<'_, '_>> = (0..threads)
        .map(|_| Worker::new(bundle, forbid, format))
        .collect();
    let mut tally = Tally::default();
    let mut first = true;
    match format {
        Format::Json => out.write_all(b"[\n")?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(Explanation::csv_header(
                bundle,
                id_column.map(|(name, _)| name),
            ))?;
            out.write_all(&w.into_inner().map_err(|e| e.into_error())?)?;
        }
        Format::Text => {}
    }
    current.fill(rows, &mut row64, id)?;
    while current.n > 0 {
        let n = current.n;
        let (xs, info) = (&current.xs[..n * d], &current.info[..n]);
        let ids = current.ids.get(..n).filter(|_| id.is_some());
        let (parts, read): (Vec<Part>, _) = if n < PARALLEL_MIN_ROWS || threads == 1 {
            let part = workers[0].part(xs, info, ids, first, &file);
            (vec![part], next.fill(rows, &mut row64, id))
        } else {
            let per = n.div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = workers
                    .iter_mut()
                    .zip(xs.chunks(per * d).zip(info.chunks(per)))
                    .enumerate()
                    .map(|(k, (w, (x, i)))| {
                        let file = file.as_str();
                        let ids = ids.map(|v| &v[k * per..k * per + i.len()]);
                        s.spawn(move || w.part(x, i, ids, first && k == 0, file))
                    })
                    .collect();
                let read = next.fill(rows, &mut row64, id);
                let parts = handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
                    })
                    .collect();
                (parts, read)
            })
        };
        for part in parts {
            let (bytes, t) = part?;
            out.write_all(&bytes)?;
            tally.merge(t);
        }
        read?;
        first = false;
        std::mem::swap(&mut current, &mut next);
    }
    if format == Format::Json {
        out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
    }
    Ok(tally)
}

/// One thread's reusable buffers.
struct Worker<'b, 'a> {
    bundle: &'b Bundle<'a>,
    forbid: FeatureSet,
    format: Format,
    scratch: Vec<f32>,
    x_cf: Vec<f32>,
    x_alt: Vec<f32>,
}

impl<'b, 'a> Worker<'b, 'a> {
    fn new(bundle: &'b Bundle<'a>, forbid: FeatureSet, format: Format) -> Self {
        let d = bundle.n_features();
        Worker {
            bundle,
            forbid,
            format,
            scratch: vec![0.0; bundle.scratch_len()],
            x_cf: vec![0.0; d],
            x_alt: vec![0.0; d],
        }
    }

    /// Recommend for the rows of `xs` (flat, `D` per row) and format them.
    fn part(
        &mut self,
        xs: &[f32],
        info: &[(usize, u64)],
        ids: Option<&[String]>,
        first: bool,
        file: &str,
    ) -> Part {
        let d = self.bundle.n_features();
        let mut tally = Tally::default();
        let mut csv = (self.format == Format::Csv).then(|| csv::Writer::from_writer(Vec::new()));
        let mut text = Vec::new();
        for (k, (x, &(row, line))) in xs.chunks(d).zip(info).enumerate() {
            let mut e = self
                .person(row, x)
                .map_err(|e| row_error(self.bundle, e, file, row, line))?;
            e.id = ids.and_then(|v| v.get(k)).cloned();
            tally.add(&e);
            match (&mut csv, self.format) {
                (Some(w), _) => w.write_record(e.csv_record(self.bundle))?,
                (None, Format::Json) => {
                    if !(first && k == 0) {
                        text.extend_from_slice(b",\n");
                    }
                    text.extend_from_slice(b"  ");
                    serde_json::to_writer(&mut text, &e.json(self.bundle))?;
                }
                (None, _) => text.extend_from_slice(e.text(self.bundle).as_bytes()),
            }
        }
        if let Some(w) = csv {
            text = w.into_inner().map_err(|e| e.into_error())?;
        }
        Ok((text, tally))
    }

    fn person(&mut self, row: usize, x: &[f32]) -> Result<Explanation, CoreError> {
        let rec = self
            .bundle
            .recommend(x, self.forbid, &mut self.x_cf, &mut self.scratch)?;
        let mut e = Explanation::new(self.bundle, row, x, &self.x_cf, rec);
        if !self.forbid.is_empty() && !rec.already_accepted && !rec.accepted {
            // Would the person have had an accepted recommendation without --forbid?
            let alt =
                self.bundle
                    .recommend(x, FeatureSet::EMPTY, &mut self.x_alt, &mut self.scratch)?;
            let unrestricted = Unrestricted {
                mask: alt.mask,
                prob_after: alt.prob_after,
                accepted: alt.accepted,
            };
            e.forbidden_left_none = Some((self.forbid, unrestricted));
        }
        Ok(e)
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
            Sink::File(f) => f.commit(),
            Sink::Stdout(mut s) => s.flush(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}
