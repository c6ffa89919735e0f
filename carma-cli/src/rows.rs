//! Input rows for `carma recommend`, split so that several threads can parse them.
//!
//! The main thread only finds where records end ([`next_record`], the `csv` crate's rules) and
//! hands each thread whole records. Each thread parses its own records: plain rows (no quotes,
//! LF or CRLF line ends, valid UTF-8, well-formed numbers) by [`parse_plain`]; anything else,
//! including every malformed row, by the trainer's [`CsvRowReader`] on the same bytes
//! ([`parse_with_csv`]), so values, refusals and their row and line numbers are exactly those of
//! reading the whole file with it.

use std::io::{self, Read};

use carma_train::data::{CsvOptions, CsvRowReader, DataError};
use carma_train::graph::{CausalGraph, FeatureKind};
use memchr::{memchr, memchr_iter, memchr2, memchr3};

/// Where the next record ends, as the `csv` crate reads it (quote `"`, delimiter `,`, any of
/// `\r`, `\n` and `\r\n` ending a record, empty lines skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A record ends just past the first byte of its terminator (or at the end of the input);
    /// the next one is searched from there.
    Record(usize),
    /// The bytes end inside a record (or before any): read more and scan again.
    NeedMore,
    /// Only empty lines are left and the input has ended.
    End,
}

/// Find the end of the record starting at `from`, which is the end of the previous record (or
/// the start of the input). `eof` says the input ends with `b`.
pub fn next_record(b: &[u8], from: usize, eof: bool) -> Scan {
    let more = |end: usize| {
        if eof {
            Scan::Record(end)
        } else {
            Scan::NeedMore
        }
    };
    let mut i = from;
    while i < b.len() && (b[i] == b'\n' || b[i] == b'\r') {
        i += 1;
    }
    if i == b.len() {
        return if eof { Scan::End } else { Scan::NeedMore };
    }
    let start = i;
    loop {
        let Some(k) = memchr3(b'\n', b'\r', b'"', &b[i..]) else {
            return more(b.len());
        };
        let p = i + k;
        if b[p] != b'"' {
            return Scan::Record(p + 1);
        }
        i = p + 1;
        // A quote opens a quoted field only at the start of a field; elsewhere it is a byte.
        if p == start || b[p - 1] == b',' {
            loop {
                let Some(k) = memchr(b'"', &b[i..]) else {
                    return more(b.len());
                };
                let q = i + k;
                if q + 1 == b.len() && !eof {
                    return Scan::NeedMore;
                }
                if b.get(q + 1) == Some(&b'"') {
                    i = q + 2; // "" inside quotes
                } else {
                    i = q + 1;
                    break;
                }
            }
        }
    }
}

/// How the CSV's cells map to the model's features.
#[derive(Debug, Clone)]
pub struct Layout {
    /// CSV column of each feature, graph order.
    pub columns: Vec<usize>,
    /// The model's features, graph order: a binary one's cells must be 0 or 1, an integer or
    /// categorical one's on its grid.
    pub features: Vec<carma_train::graph::Feature>,
    /// Cells per row.
    pub n_cells: usize,
    /// The `--id` column.
    pub id: Option<usize>,
    /// Per-row limit columns (`<feature>_min`, `<feature>_max`, `max_changes`) and what each
    /// limits.
    pub limits: Vec<(usize, RowLimit)>,
}

/// What a per-row limit column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLimit {
    /// `<feature>_min`: the lowest value a recommendation may set.
    Min(usize),
    /// `<feature>_max`: the highest.
    Max(usize),
    /// `max_changes`: at most this many features changed.
    MaxChanges,
    /// `<feature>_direction`: `increase`, `decrease` or `any`.
    Direction(usize),
}

/// The per-row limit columns of a header: `max_changes`, and `<feature>_min`, `<feature>_max`,
/// `<feature>_direction` for a feature of the model (a column that is itself a feature is not a
/// limit).
pub fn limit_columns(header: &[String], features: &[String]) -> Vec<(usize, RowLimit)> {
    let mut out = Vec::new();
    for (j, name) in header.iter().enumerate() {
        if features.contains(name) {
            continue;
        }
        let feature = |suffix: &str| {
            name.strip_suffix(suffix)
                .and_then(|f| features.iter().position(|n| n == f))
        };
        if name == "max_changes" {
            out.push((j, RowLimit::MaxChanges));
        } else if let Some(i) = feature("_min") {
            out.push((j, RowLimit::Min(i)));
        } else if let Some(i) = feature("_max") {
            out.push((j, RowLimit::Max(i)));
        } else if let Some(i) = feature("_direction") {
            out.push((j, RowLimit::Direction(i)));
        }
    }
    out
}

/// A limit cell: empty for none (NaN), else a finite number, or for a direction column
/// `any` (0), `increase` (1) or `decrease` (2).
fn limit_cell(what: RowLimit, text: &str) -> Option<f32> {
    let t = text.trim();
    if t.is_empty() {
        return Some(f32::NAN);
    }
    if let RowLimit::Direction(_) = what {
        return match t {
            "any" => Some(0.0),
            "increase" => Some(1.0),
            "decrease" => Some(2.0),
            _ => None,
        };
    }
    t.parse::<f32>().ok().filter(|v| v.is_finite())
}

/// Parsed rows of one slice: features (`D` per row, graph order, as `f32`), the 1-based data row
/// and file line of each, and the `--id` cells.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Features, `D` per row.
    pub xs: Vec<f32>,
    /// `(data row, line)` of each row.
    pub info: Vec<(usize, u64)>,
    /// Every `--id` cell, one after the other.
    pub ids: String,
    /// End of each row's id in `ids`.
    pub id_ends: Vec<usize>,
    /// Each row's per-row limit cells, one per `Layout::limits` entry (NaN for an empty cell).
    pub limits: Vec<f32>,
    /// Byte offsets of the commas of the line being parsed (reused).
    commas: Vec<usize>,
}

impl Parsed {
    /// Forget the rows, keep the memory.
    pub fn clear(&mut self) {
        self.xs.clear();
        self.info.clear();
        self.ids.clear();
        self.id_ends.clear();
        self.limits.clear();
    }

    /// Row `k`'s id (empty without `--id`).
    pub fn id(&self, k: usize) -> &str {
        match k {
            _ if self.id_ends.is_empty() => "",
            0 => &self.ids[..self.id_ends[0]],
            _ => &self.ids[self.id_ends[k - 1]..self.id_ends[k]],
        }
    }

    fn push_id(&mut self, id: &str) {
        self.ids.push_str(id);
        self.id_ends.push(self.ids.len());
    }
}

/// Parse the records of `s` (whole records, starting at a record boundary) when every one is a
/// plain row: no quote, no lone `\r`, valid UTF-8, the header's number of cells, and every
/// feature cell a finite number (0 or 1 for a binary feature). `first_row` is the 1-based data
/// row of the first record and `newlines` the number of `\n` before `s` in the file. Returns
/// `false`, with `out` partly filled, as soon as a record is not plain: the caller then reads
/// the slice with [`parse_with_csv`], which also words any refusal.
pub fn parse_plain(
    s: &[u8],
    layout: &Layout,
    first_row: usize,
    newlines: u64,
    out: &mut Parsed,
) -> bool {
    let mut row = first_row;
    let mut line = newlines + 1;
    let mut i = 0;
    while i < s.len() {
        let end = memchr(b'\n', &s[i..]).map_or(s.len(), |k| i + k);
        let mut bytes = &s[i..end];
        let this_line = line;
        line += 1;
        i = end + 1;
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        if bytes.is_empty() {
            continue; // an empty line is no record
        }
        if memchr2(b'"', b'\r', bytes).is_some() {
            return false;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return false;
        };
        out.commas.clear();
        out.commas.extend(memchr_iter(b',', bytes));
        if out.commas.len() + 1 != layout.n_cells {
            return false;
        }
        let commas = &out.commas;
        let cell = |j: usize| {
            let a = if j == 0 { 0 } else { commas[j - 1] + 1 };
            let b = commas.get(j).copied().unwrap_or(text.len());
            text[a..b].trim()
        };
        for (&j, f) in layout.columns.iter().zip(&layout.features) {
            let Ok(v) = cell(j).parse::<f64>() else {
                return false;
            };
            let binary = f.kind == FeatureKind::Binary;
            if !v.is_finite() || (binary && v != 0.0 && v != 1.0) {
                return false;
            }
            // On the grid exactly, as the trainer's reader gives it.
            let Some(v) = f.grid_value(v) else {
                return false;
            };
            out.xs.push(v as f32);
        }
        for &(j, what) in &layout.limits {
            let Some(v) = limit_cell(what, cell(j)) else {
                return false;
            };
            out.limits.push(v);
        }
        if let Some(j) = layout.id {
            let id = cell(j);
            out.push_id(id);
        }
        out.info.push((row, this_line));
        row += 1;
    }
    true
}

/// The column name of a per-row limit.
fn limit_name(graph: &CausalGraph, what: RowLimit) -> String {
    let name = |i: usize| {
        graph
            .features()
            .get(i)
            .map_or("?", |f| f.name.as_str())
            .to_owned()
    };
    match what {
        RowLimit::Min(i) => format!("{}_min", name(i)),
        RowLimit::Max(i) => format!("{}_max", name(i)),
        RowLimit::MaxChanges => "max_changes".to_owned(),
        RowLimit::Direction(i) => format!("{}_direction", name(i)),
    }
}

/// What [`parse_with_csv`] needs besides the slice: the header bytes exactly as read (through
/// the first byte of their terminator) and what the reader was opened with.
pub struct CsvSource<'a> {
    /// The file's first record, from the start of the file.
    pub header: &'a [u8],
    /// `\n` bytes in `header`.
    pub header_newlines: u64,
    /// The input's name in errors.
    pub file: &'a str,
    /// The model's graph.
    pub graph: &'a CausalGraph,
    /// The reader's options.
    pub options: &'a CsvOptions,
}

/// Read the records of `s` with [`CsvRowReader`], as if it had read the whole file: the reader
/// reads the header, then `s`, and its row and line numbers (in rows and errors) are shifted by
/// the rows and newlines that came before `s`. The `csv` crate counts lines by `\n` bytes read,
/// so the shift is the same for its own line numbers.
pub fn parse_with_csv(
    s: &[u8],
    src: &CsvSource<'_>,
    id: Option<usize>,
    limits: &[(usize, RowLimit)],
    first_row: usize,
    newlines: u64,
    out: &mut Parsed,
) -> Result<(), DataError> {
    out.clear();
    let dr = first_row - 1;
    let dl = newlines - src.header_newlines;
    let shift = |e: DataError| match e {
        DataError::BadCell {
            file,
            row,
            line,
            column,
            value,
            expected,
        } => DataError::BadCell {
            file,
            row: row + dr,
            line: line + dl,
            column,
            value,
            expected,
        },
        DataError::RowLength {
            file,
            row,
            line,
            expected,
            found,
        } => DataError::RowLength {
            file,
            row: row + dr,
            line: line + dl,
            expected,
            found,
        },
        DataError::UnclosedQuote { file, row, line } => DataError::UnclosedQuote {
            file,
            row: row + dr,
            line: line + dl,
        },
        DataError::Csv {
            file,
            line,
            message,
        } => DataError::Csv {
            file,
            line: line.map(|l| l + dl),
            message,
        },
        other => other,
    };
    let bytes = io::Cursor::new(src.header).chain(s);
    let mut rows = CsvRowReader::from_reader(bytes, src.file, src.graph, src.options)?;
    let mut x = vec![0.0f64; rows.n_features()];
    while let Some(r) = rows.read_into(&mut x).map_err(shift)? {
        out.xs.extend(x.iter().map(|&v| v as f32));
        out.info.push((r.row + dr, r.line + dl));
        for &(j, what) in limits {
            let text = rows.raw_record().get(j).unwrap_or_default();
            let v = limit_cell(what, text).ok_or_else(|| DataError::BadCell {
                file: src.file.to_owned(),
                row: r.row + dr,
                line: r.line + dl,
                column: limit_name(src.graph, what),
                value: text.to_owned(),
                expected: match what {
                    RowLimit::Direction(_) => {
                        "increase, decrease, any or an empty cell (the run's direction)"
                    }
                    _ => "a finite number or an empty cell (no limit)",
                },
            })?;
            out.limits.push(v);
        }
        if let Some(j) = id {
            out.push_id(rows.raw_record().get(j).unwrap_or_default());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record ends as the `csv` crate finds them.
    fn csv_ends(text: &[u8]) -> Vec<usize> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        let mut rec = csv::ByteRecord::new();
        let mut ends = Vec::new();
        while r.read_byte_record(&mut rec).unwrap() {
            ends.push(r.position().byte() as usize);
        }
        ends
    }

    fn our_ends(text: &[u8]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut at = 0;
        while let Scan::Record(end) = next_record(text, at, true) {
            ends.push(end);
            at = end;
        }
        ends
    }

    #[test]
    fn record_ends_match_the_csv_crate() {
        let fixed: [&[u8]; 12] = [
            b"a,b\n1,2\n",
            b"a,b\r\n1,2\r\n\r\n3,4",
            b"\n\n\"x\ny\",2\n3,\"4\"\"\n\"\n",
            b"a\"b,c\nd\n",
            b"\"a\"b\"\n,c\n",
            b"1,\"2\r\n",
            b"\r\r1\r2\n",
            b"\"\"",
            b"x,\"\"\"\"\n",
            b" \"a\nb\"\n",
            b"",
            b"\n\r\n",
        ];
        for t in fixed {
            assert_eq!(our_ends(t), csv_ends(t), "{:?}", String::from_utf8_lossy(t));
        }
        // Random texts over the bytes that matter.
        let alphabet = b"ab,\"\r\n ";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut t = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                t.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            assert_eq!(
                our_ends(&t),
                csv_ends(&t),
                "{:?}",
                String::from_utf8_lossy(&t)
            );
            // Fed in two parts: a record found in the first must be one of the whole text.
            for cut in 0..=t.len() {
                let (mut ends, mut at, mut avail) = (Vec::new(), 0, cut);
                loop {
                    match next_record(&t[..avail], at, avail == t.len()) {
                        Scan::Record(end) => {
                            ends.push(end);
                            at = end;
                        }
                        Scan::NeedMore => {
                            assert!(avail < t.len());
                            avail = t.len();
                        }
                        Scan::End => break,
                    }
                }
                assert_eq!(
                    ends,
                    csv_ends(&t),
                    "{:?} cut {cut}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }
}
