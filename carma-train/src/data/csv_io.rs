//! CSV in and out. Reading streams: one reused record, so memory stays flat however long the file
//! (issue 7: `carma recommend` on a million rows).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use csv::{ReaderBuilder, StringRecord, Trim};

use super::{DataError, Table};
use crate::graph::{CausalGraph, FeatureKind};

/// The UTF-8 byte-order mark some spreadsheet programs put before the header.
const BOM: char = '\u{feff}';

/// The longest line a CSV may have (1 MiB): a row of 64 features takes a few kilobytes, and a
/// file without line ends (`/dev/zero`, a binary file) must not be buffered whole (issue 14).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The longest record (row) a CSV may have, quoted line breaks included (4 MiB): a quote that
/// is never closed followed by endless short lines must not be buffered whole either.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// The error for a record over [`MAX_RECORD_BYTES`] starting at 1-based `line`.
pub fn record_too_long(line: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "line {line}: a row longer than {MAX_RECORD_BYTES} bytes, the limit for one CSV \
             record (a quote that is never closed?)"
        ),
    )
}

/// The error for a line over [`MAX_LINE_BYTES`], with its 1-based number.
pub fn line_too_long(line: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "line {line} is longer than {MAX_LINE_BYTES} bytes, the limit for one line of CSV \
             (is this a CSV file?)"
        ),
    )
}

/// Longest text of a cell or a column name echoed in an error.
const ECHO_CHARS: usize = 60;
/// Longest list of column names (a header) echoed in an error.
const ECHO_LIST_CHARS: usize = 400;

/// `text` as an error may quote it: control characters (NUL, line breaks, escapes) escaped,
/// and cut after 60 characters with the total length said.
pub fn echo(text: &str) -> String {
    echo_at_most(text, ECHO_CHARS)
}

/// [`echo`] for a list of column names: cut after 400 characters.
pub fn echo_list(text: &str) -> String {
    echo_at_most(text, ECHO_LIST_CHARS)
}

fn echo_at_most(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (shown, c) in text.chars().enumerate() {
        if shown == max {
            out.push_str(&format!("... ({} bytes in all)", text.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How to read a CSV.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Name of a 0/1 label column to read as well (required to be present when set).
    pub label: Option<String>,
    /// Skip columns that are neither features nor the label instead of refusing them.
    pub ignore_extra: bool,
}

impl CsvOptions {
    /// Read the label column `name`.
    pub fn with_label(name: &str) -> CsvOptions {
        CsvOptions {
            label: Some(name.to_owned()),
            ignore_extra: false,
        }
    }
}

/// Where a row came from, returned by [`CsvRowReader::read_into`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowInfo {
    /// 1-based data row (the header is not counted).
    pub row: usize,
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// The label, when a label column was asked for.
    pub label: Option<f64>,
}

/// Counts lines under the CSV reader: the `csv` crate's own line numbers drift on CRLF files and
/// after blank lines, and errors must name the right line. Keeps only the newline offsets not yet
/// passed, so memory is bounded by the reader's look-ahead.
struct LineIndex<R> {
    inner: R,
    /// Bytes since the last `\n` or `\r` (a line over [`MAX_LINE_BYTES`] is an error).
    line_len: usize,
    /// `\n` bytes read so far.
    lines: u64,
    /// Offset where the record being read starts (just past the last record returned).
    record_start: u64,
    /// Bytes read so far.
    offset: u64,
    /// Offsets of `\n` bytes at or after the last record end.
    newlines: VecDeque<u64>,
    /// Newlines already dropped from `newlines`.
    passed: u64,
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (k, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                self.line_len = 0;
                if b == b'\n' {
                    self.newlines.push_back(self.offset + k as u64);
                    self.lines += 1;
                }
            } else {
                self.line_len += 1;
                if self.line_len > MAX_LINE_BYTES {
                    return Err(line_too_long(self.lines + 1));
                }
            }
        }
        self.offset += n as u64;
        if self.offset - self.record_start > MAX_RECORD_BYTES as u64 {
            let before = self
                .newlines
                .iter()
                .take_while(|&&p| p < self.record_start)
                .count() as u64;
            return Err(record_too_long(self.passed + before + 1));
        }
        Ok(n)
    }
}

impl<R> LineIndex<R> {
    /// 1-based line of byte `at`; forgets newlines before it (queries only move forward).
    fn line_at(&mut self, at: u64) -> u64 {
        // Called with the last byte of each record read: the next one starts after it.
        self.record_start = self.record_start.max(at + 1);
        while self.newlines.front().is_some_and(|&p| p < at) {
            self.newlines.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// Reads a CSV row by row into caller buffers, features in the graph's order.
pub struct CsvRowReader<R: Read> {
    reader: csv::Reader<LineIndex<R>>,
    record: StringRecord,
    file: String,
    names: Vec<String>,
    kinds: Vec<Cell>,
    /// CSV column of each feature.
    columns: Vec<usize>,
    label: Option<(String, usize)>,
    n_cells: usize,
    row: usize,
}

impl CsvRowReader<File> {
    /// Open `path` and match its header to `graph`.
    pub fn open(
        path: impl AsRef<Path>,
        graph: &CausalGraph,
        options: &CsvOptions,
    ) -> Result<CsvRowReader<File>, DataError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        CsvRowReader::from_reader(file, &path.display().to_string(), graph, options)
    }
}

impl<R: Read> CsvRowReader<R> {
    /// Read the header from `reader` and match it to `graph`; `file_label` names the source in
    /// errors.
    pub fn from_reader(
        reader: R,
        file_label: &str,
        graph: &CausalGraph,
        options: &CsvOptions,
    ) -> Result<CsvRowReader<R>, DataError> {
        let file = file_label.to_owned();
        let lines = LineIndex {
            inner: reader,
            line_len: 0,
            lines: 0,
            record_start: 0,
            offset: 0,
            newlines: VecDeque::new(),
            passed: 0,
        };
        let mut reader = ReaderBuilder::new()
            .has_headers(false)
            .trim(Trim::All)
            .flexible(true)
            .from_reader(lines);
        let mut header = StringRecord::new();
        let got_header = reader
            .read_record(&mut header)
            .map_err(|e| csv_error(&file, e))?;
        if !got_header {
            return Err(DataError::EmptyFile { file });
        }
        // The first data record starts after the header (for the record length limit).
        let header_end = reader.position().byte();
        reader.get_mut().record_start = header_end;
        if header
            .iter()
            .all(|c| c.trim_start_matches(BOM).trim().is_empty())
        {
            return Err(DataError::NoColumnNames { file });
        }
        let cells: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(j, c)| {
                if j == 0 {
                    c.trim_start_matches(BOM).trim().to_owned()
                } else {
                    c.to_owned()
                }
            })
            .collect();
        for (j, c) in cells.iter().enumerate() {
            if c.is_empty() {
                return Err(DataError::EmptyColumnName { file, index: j + 1 });
            }
            if cells[..j].contains(c) {
                return Err(DataError::DuplicateColumn {
                    file,
                    column: echo(c),
                });
            }
        }
        let find = |name: &str| cells.iter().position(|c| c == name);
        let missing = |name: &str| DataError::MissingColumn {
            file: file.clone(),
            column: echo(name),
            found: echo_list(&cells.join(", ")),
        };
        let mut columns = Vec::with_capacity(graph.len());
        for f in graph.features() {
            columns.push(find(&f.name).ok_or_else(|| missing(&f.name))?);
        }
        let label = match &options.label {
            Some(name) => Some((name.clone(), find(name).ok_or_else(|| missing(name))?)),
            None => None,
        };
        if !options.ignore_extra {
            let used =
                |j: usize| columns.contains(&j) || label.as_ref().is_some_and(|(_, l)| *l == j);
            if let Some(j) = (0..cells.len()).find(|&j| !used(j)) {
                return Err(DataError::ExtraColumn {
                    file,
                    column: echo(&cells[j]),
                });
            }
        }
        Ok(CsvRowReader {
            reader,
            record: StringRecord::new(),
            file,
            names: graph.names(),
            kinds: graph.features().iter().map(Cell::of).collect(),
            columns,
            label,
            n_cells: cells.len(),
            row: 0,
        })
    }

    /// The file label used in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Feature names, in the graph's order (the order of the buffers filled).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of features per row.
    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    /// The label column's name, when one was asked for.
    pub fn label_name(&self) -> Option<&str> {
        self.label.as_ref().map(|(n, _)| n.as_str())
    }

    /// The CSV column (0-based) of each feature, in the graph's order.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Number of cells in the header (every row must have as many).
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// The raw cells of the row last read (for passing extra columns such as an id through).
    pub fn raw_record(&self) -> &StringRecord {
        &self.record
    }

    /// Read the next row's features into `x` (graph order). `Ok(None)` at the end of the file.
    /// After a bad row, the next call continues with the following row.
    pub fn read_into(&mut self, x: &mut [f64]) -> Result<Option<RowInfo>, DataError> {
        if x.len() != self.names.len() {
            return Err(DataError::Shape {
                what: "row buffer",
                expected: self.names.len(),
                found: x.len(),
            });
        }
        if !self
            .reader
            .read_record(&mut self.record)
            .map_err(|e| csv_error(&self.file, e))?
        {
            return Ok(None);
        }
        self.row += 1;
        let line = self.record_line();
        if self.record.len() < self.n_cells
            && self
                .record
                .iter()
                .next_back()
                .is_some_and(|f| f.contains(['\n', '\r']))
        {
            // The csv reader read a quote that was never closed: the cell ran on over the next
            // lines (to the end of the file, or to the next lone quote).
            return Err(DataError::UnclosedQuote {
                file: self.file.clone(),
                row: self.row,
                line,
            });
        }
        if self.record.len() != self.n_cells {
            return Err(DataError::RowLength {
                file: self.file.clone(),
                row: self.row,
                line,
                expected: self.n_cells,
                found: self.record.len(),
            });
        }
        for (i, &j) in self.columns.iter().enumerate() {
            x[i] = self.cell(j, &self.names[i], &self.kinds[i], line)?;
        }
        let label = match &self.label {
            Some((name, j)) => Some(self.cell(*j, name, &Cell::Binary, line)?),
            None => None,
        };
        Ok(Some(RowInfo {
            row: self.row,
            line,
            label,
        }))
    }

    /// The line where the record just read starts: the line of its last byte (the reader stops
    /// just past the terminator's first byte), less the newlines quoted inside its fields.
    fn record_line(&mut self) -> u64 {
        let end = self.reader.position().byte();
        let last_line = self.reader.get_mut().line_at(end.saturating_sub(1));
        let inside: usize = self
            .record
            .iter()
            .map(|f| f.bytes().filter(|&b| b == b'\n').count())
            .sum();
        last_line.saturating_sub(inside as u64).max(1)
    }

    fn cell(&self, j: usize, column: &str, kind: &Cell, line: u64) -> Result<f64, DataError> {
        let text = &self.record[j];
        let binary = matches!(kind, Cell::Binary);
        if let Cell::Grid(f) = kind {
            if let Some(code) = f.level_code(text.trim()) {
                return Ok(code as f64);
            }
        }
        let bad = |expected| DataError::BadCell {
            file: self.file.clone(),
            row: self.row,
            line,
            column: column.to_owned(),
            value: echo(text),
            expected,
        };
        let v: f64 = text
            .parse()
            .map_err(|_| bad(if binary { "0 or 1" } else { "a number" }))?;
        if !v.is_finite() {
            return Err(bad("a finite number"));
        }
        if binary && v != 0.0 && v != 1.0 {
            return Err(bad("0 or 1"));
        }
        match kind {
            Cell::Grid(f) => f.grid_value(v).ok_or_else(|| {
                bad(if f.kind == FeatureKind::Categorical {
                    "one of the feature's levels (its name or its code)"
                } else {
                    "a multiple of the feature's step"
                })
            }),
            _ => Ok(v),
        }
    }
}

/// What a feature's cells hold.
#[derive(Debug, Clone)]
enum Cell {
    Number,
    Binary,
    /// An integer or categorical feature (a categorical cell may also name its level).
    Grid(Box<crate::graph::Feature>),
}

impl Cell {
    fn of(f: &crate::graph::Feature) -> Cell {
        match f.kind {
            FeatureKind::Continuous => Cell::Number,
            FeatureKind::Binary => Cell::Binary,
            FeatureKind::Integer | FeatureKind::Categorical => Cell::Grid(Box::new(f.clone())),
        }
    }
}

impl<R: Read> Iterator for CsvRowReader<R> {
    /// `(1-based data row, features in graph order)`.
    type Item = Result<(usize, Vec<f64>), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut x = vec![0.0; self.names.len()];
        match self.read_into(&mut x) {
            Ok(Some(info)) => Some(Ok((info.row, x))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

fn csv_error(file: &str, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            file: file.to_owned(),
            source,
        },
        csv::ErrorKind::Utf8 { err, .. } => DataError::Csv {
            file: file.to_owned(),
            line,
            message: format!("not valid UTF-8 text ({err})"),
        },
        other => DataError::Csv {
            file: file.to_owned(),
            line,
            message: format!("{other:?}"),
        },
    }
}

/// Shortest text that parses back to the same `f64`, without Display's long zero runs.
fn format_number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Writes a CSV row by row (a header, then rows of numbers), each number as the shortest text
/// that parses back to the same `f64`: what [`Table::write_csv`] writes, for output too large to
/// hold (`carma simulate -n 100000000`).
pub struct CsvRowWriter<W: Write> {
    writer: csv::Writer<W>,
    cells: Vec<String>,
    file: String,
}

impl<W: Write> CsvRowWriter<W> {
    /// Write the header; `file_label` names the destination in errors.
    pub fn new(writer: W, header: &[&str], file_label: &str) -> Result<Self, DataError> {
        let mut w = CsvRowWriter {
            writer: csv::Writer::from_writer(writer),
            cells: Vec::with_capacity(header.len()),
            file: file_label.to_owned(),
        };
        w.writer
            .write_record(header)
            .map_err(|e| csv_error(&w.file, e))?;
        Ok(w)
    }

    /// Write one row of numbers.
    pub fn write_row(&mut self, values: impl IntoIterator<Item = f64>) -> Result<(), DataError> {
        self.cells.clear();
        self.cells.extend(values.into_iter().map(format_number));
        self.writer
            .write_record(&self.cells)
            .map_err(|e| csv_error(&self.file, e))
    }

    /// Flush everything written.
    pub fn finish(mut self) -> Result<(), DataError> {
        self.writer.flush().map_err(|e: io::Error| DataError::Io {
            file: self.file.clone(),
            source: e,
        })
    }
}

/// Write `table` as CSV; `file_label` names the destination in errors.
pub(super) fn write_table<W: Write>(
    table: &Table,
    writer: W,
    file_label: &str,
) -> Result<(), DataError> {
    let mut header: Vec<&str> = table.names.iter().map(String::as_str).collect();
    if let Some(l) = &table.labels {
        header.push(&l.name);
    }
    let mut w = CsvRowWriter::new(writer, &header, file_label)?;
    for (r, row) in table.x.rows().into_iter().enumerate() {
        let label = table.labels.as_ref().map(|l| l.y[r]);
        w.write_row(row.iter().copied().chain(label))?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Feature, FeatureKind};
    use crate::io::TempDir;
    use crate::scm::Dataset;

    fn graph() -> CausalGraph {
        CausalGraph::new(vec![
            Feature::new("sex", FeatureKind::Binary, false, vec![]),
            Feature::new("income", FeatureKind::Continuous, true, vec![0]),
        ])
        .unwrap()
    }

    fn read(text: &str, options: &CsvOptions) -> Result<Table, DataError> {
        Table::from_csv_reader(text.as_bytes(), "people.csv", &graph(), options)
    }

    #[test]
    fn columns_are_matched_by_name_in_graph_order() {
        let t = read(
            "income,y,sex\n2.5,1,0\n-1e3,0,1\n",
            &CsvOptions::with_label("y"),
        )
        .unwrap();
        assert_eq!(t.names, ["sex", "income"]);
        assert_eq!(t.x, ndarray::array![[0.0, 2.5], [1.0, -1000.0]]);
        assert_eq!(t.y().unwrap().to_vec(), vec![1.0, 0.0]);
    }

    #[test]
    fn byte_order_mark_crlf_and_spaces_are_accepted() {
        let t = read(
            "\u{feff}sex , income\r\n1, 3.25\r\n0,4\r\n",
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(t.x, ndarray::array![[1.0, 3.25], [0.0, 4.0]]);
    }

    #[test]
    fn missing_column_is_named() {
        let err = read("sex,salary\n1,2\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { column, .. } if column == "income"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("people.csv: missing column 'income'") && msg.contains("sex, salary"),
            "{msg}"
        );
        let err = read("sex,income\n1,2\n", &CsvOptions::with_label("approved")).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { column, .. } if column == "approved"),
            "{err}"
        );
    }

    #[test]
    fn extra_columns_are_refused_unless_allowed() {
        let text = "id,sex,income\n7,1,2\n";
        let err = read(text, &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::ExtraColumn { column, .. } if column == "id"),
            "{err}"
        );
        let t = read(
            text,
            &CsvOptions {
                ignore_extra: true,
                ..CsvOptions::default()
            },
        )
        .unwrap();
        assert_eq!(t.x, ndarray::array![[1.0, 2.0]]);
    }

    #[test]
    fn empty_file_and_header_only_are_refused() {
        for text in ["", "\u{feff}", "\n\n"] {
            assert!(
                matches!(
                    read(text, &CsvOptions::default()),
                    Err(DataError::EmptyFile { .. })
                ),
                "{text:?}"
            );
        }
        let err = read("sex,income\r\n", &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::NoRows { .. }), "{err}");
    }

    #[test]
    fn bad_header_cells_are_refused() {
        let err = read("sex,,income\n1,2,3\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(err, DataError::EmptyColumnName { index: 2, .. }),
            "{err}"
        );
        let err = read("sex,income,sex\n1,2,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::DuplicateColumn { column, .. } if column == "sex"),
            "{err}"
        );
    }

    #[test]
    fn non_numeric_cells_name_row_line_and_column() {
        let err = read("sex,income\n1,2\n\n0,abc\n", &CsvOptions::default()).unwrap_err();
        match &err {
            DataError::BadCell {
                row,
                line,
                column,
                value,
                ..
            } => {
                // The blank line is skipped: data row 2 sits on file line 4.
                assert_eq!(
                    (*row, *line, column.as_str(), value.as_str()),
                    (2, 4, "income", "abc")
                );
            }
            other => panic!("expected a bad cell, got {other}"),
        }
        assert_eq!(
            err.to_string(),
            "people.csv: line 4 (data row 2), column 'income': expected a number, found 'abc'"
        );
        let err = read("sex,income\n1,\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadCell {
                    row: 1,
                    line: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn nan_and_infinite_cells_are_refused() {
        for cell in ["NaN", "inf", "-infinity", "1e400"] {
            let err = read(&format!("sex,income\n1,{cell}\n"), &CsvOptions::default()).unwrap_err();
            assert!(
                matches!(&err, DataError::BadCell { expected: "a finite number", column, .. } if column == "income"),
                "{cell}: {err}"
            );
        }
    }

    #[test]
    fn binary_features_and_labels_must_be_zero_or_one() {
        let err = read("sex,income\n0.5,1\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::BadCell { expected: "0 or 1", column, .. } if column == "sex"),
            "{err}"
        );
        let err = read("sex,income,y\n1,1,2\n", &CsvOptions::with_label("y")).unwrap_err();
        assert!(
            matches!(&err, DataError::BadCell { expected: "0 or 1", column, .. } if column == "y"),
            "{err}"
        );
    }

    #[test]
    fn line_numbers_count_crlf_blank_lines_and_quoted_newlines() {
        let text = "sex,income\r\n1,2\r\n\r\n\"0\",\"1\n2\"\r\n1,x\r\n";
        let mut rows =
            CsvRowReader::from_reader(text.as_bytes(), "l.csv", &graph(), &CsvOptions::default())
                .unwrap();
        let mut buf = [0.0; 2];
        assert_eq!(
            rows.read_into(&mut buf).unwrap().map(|i| (i.row, i.line)),
            Some((1, 2))
        );
        // Row 2 starts on line 4 and holds a quoted newline, so it is not a number.
        assert!(matches!(
            rows.read_into(&mut buf),
            Err(DataError::BadCell {
                row: 2,
                line: 4,
                ..
            })
        ));
        assert!(matches!(
            rows.read_into(&mut buf),
            Err(DataError::BadCell {
                row: 3,
                line: 6,
                ..
            })
        ));
        let long: String = std::iter::once("sex,income\n".to_owned())
            .chain((0..5000).map(|i| format!("{},{i}\n", i % 2)))
            .collect();
        let rows = CsvRowReader::from_reader(
            long.as_bytes(),
            "long.csv",
            &graph(),
            &CsvOptions::default(),
        )
        .unwrap();
        let mut rows = rows;
        let mut last = None;
        while let Some(info) = rows.read_into(&mut buf).unwrap() {
            assert_eq!(info.line, info.row as u64 + 1);
            last = Some(info.row);
        }
        assert_eq!(last, Some(5000));
    }

    #[test]
    fn rows_of_the_wrong_length_are_refused() {
        let err = read("sex,income\n1,2,3\n", &CsvOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::RowLength {
                    row: 1,
                    line: 2,
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        let bytes: &[u8] = b"sex,income\n1,\xff\xfe\n";
        let err =
            Table::from_csv_reader(bytes, "bin.csv", &graph(), &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Csv { line: Some(2), .. }), "{err}");
    }

    #[test]
    fn streaming_reader_fills_buffers_and_continues_after_a_bad_row() {
        let text = "income,sex\n1.5,0\nx,1\n2.5,1\n";
        let mut rows =
            CsvRowReader::from_reader(text.as_bytes(), "s.csv", &graph(), &CsvOptions::default())
                .unwrap();
        let mut buf = [0.0; 2];
        assert_eq!(
            rows.read_into(&mut buf).unwrap().map(|i| (i.row, i.line)),
            Some((1, 2))
        );
        assert_eq!(buf, [0.0, 1.5]);
        assert!(matches!(
            rows.read_into(&mut buf),
            Err(DataError::BadCell { row: 2, .. })
        ));
        assert_eq!(rows.read_into(&mut buf).unwrap().map(|i| i.row), Some(3));
        assert_eq!(buf, [1.0, 2.5]);
        assert_eq!(rows.raw_record().get(0), Some("2.5"));
        assert_eq!(rows.read_into(&mut buf).unwrap(), None);
        assert!(matches!(
            rows.read_into(&mut [0.0; 3]),
            Err(DataError::Shape { .. })
        ));

        let rows =
            CsvRowReader::from_reader(text.as_bytes(), "s.csv", &graph(), &CsvOptions::default())
                .unwrap();
        let items: Vec<_> = rows.collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap(), &(1, vec![0.0, 1.5]));
        assert!(items[1].is_err());
    }

    #[test]
    fn write_then_read_round_trips_exactly() {
        let dir = TempDir::new("csv");
        let path = dir.0.join("loan.csv");
        let scm = Dataset::Loan.scm();
        let mut t = Table::from_sample(Dataset::Loan, scm.sample(300, 4));
        t.x[[0, 3]] = 1e-300;
        t.x[[1, 3]] = -3.5e17;
        t.x[[2, 3]] = 0.1 + 0.2;
        t.write_csv(&path).unwrap();
        let back = Table::read_csv_with(&path, scm.graph(), &CsvOptions::with_label("y")).unwrap();
        assert_eq!(back, t);
        let err = Table::read_csv(dir.0.join("nope.csv"), scm.graph()).unwrap_err();
        assert!(
            matches!(err, DataError::Io { .. }) && err.to_string().contains("nope.csv"),
            "{err}"
        );
    }
}
