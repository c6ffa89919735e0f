//! Tabular data: CSV reading and writing, splits, the scaler.
//!
//! A [`Table`] holds features in the causal graph's column order, whatever the CSV's order, and
//! optionally a 0/1 label column. Every refusal names the file, the row (1-based data row and
//! file line) and the column.

mod csv_io;
mod scaler;
mod split;

use std::path::PathBuf;

use ndarray::{Array1, Array2, Axis};

use crate::graph::CausalGraph;
use crate::scm::{Dataset, Sample};

pub use csv_io::{
    CsvOptions, CsvRowReader, CsvRowWriter, MAX_LINE_BYTES, MAX_RECORD_BYTES, RowInfo, echo,
    echo_list, line_too_long, record_too_long,
};
pub use scaler::{Scaler, ScalerError};
pub use split::{CLASSIFIER_SPLIT, FLOW_SPLIT, RECOURSE_SPLIT, Split, split_indices};

/// The label column's name in simulated data (`carma simulate`).
pub const DEFAULT_LABEL: &str = "y";

/// Why data was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The CSV reader failed (e.g. invalid UTF-8).
    #[error("{file}{}: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Csv {
        /// The file.
        file: String,
        /// Line, when known.
        line: Option<u64>,
        /// What went wrong.
        message: String,
    },
    /// Nothing at all in the file, not even a header.
    #[error(
        "{file}: the file is empty (expected a header line with the column names, then data rows)"
    )]
    EmptyFile {
        /// The file.
        file: String,
    },
    /// A header line whose cells are all empty (only commas or spaces).
    #[error(
        "{file}: the header has no column names (only commas or spaces); expected the column \
         names, comma-separated"
    )]
    NoColumnNames {
        /// The file.
        file: String,
    },
    /// A quoted cell whose closing quote never comes.
    #[error(
        "{file}: line {line} (data row {row}): a quote opens a cell that is never closed (the \
         cell runs on over the following lines); close the quote, or double a quote inside a \
         quoted cell (\"\")"
    )]
    UnclosedQuote {
        /// The file.
        file: String,
        /// 1-based data row.
        row: usize,
        /// 1-based file line where the row starts.
        line: u64,
    },
    /// A header but no data rows.
    #[error("{file}: the file has a header but no data rows")]
    NoRows {
        /// The file.
        file: String,
    },
    /// A header cell is empty.
    #[error("{file}: header column {index} has an empty name")]
    EmptyColumnName {
        /// The file.
        file: String,
        /// 1-based column number.
        index: usize,
    },
    /// Two header cells are the same.
    #[error("{file}: column '{column}' appears twice in the header")]
    DuplicateColumn {
        /// The file.
        file: String,
        /// The repeated name.
        column: String,
    },
    /// A feature of the graph (or the label) has no column.
    #[error("{file}: missing column '{column}' (the header has: {found})")]
    MissingColumn {
        /// The file.
        file: String,
        /// The missing name.
        column: String,
        /// The header's names, comma-separated.
        found: String,
    },
    /// A column that is neither a feature nor the label.
    #[error(
        "{file}: column '{column}' is not a feature of the causal graph (remove it, or allow extra columns)"
    )]
    ExtraColumn {
        /// The file.
        file: String,
        /// The unexpected name.
        column: String,
    },
    /// A row has the wrong number of cells.
    #[error("{file}: line {line} (data row {row}): expected {expected} cells, found {found}")]
    RowLength {
        /// The file.
        file: String,
        /// 1-based data row.
        row: usize,
        /// 1-based file line.
        line: u64,
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// A cell that is not what its column needs.
    #[error(
        "{file}: line {line} (data row {row}), column '{column}': expected {expected}, found '{value}'"
    )]
    BadCell {
        /// The file.
        file: String,
        /// 1-based data row.
        row: usize,
        /// 1-based file line.
        line: u64,
        /// Column name.
        column: String,
        /// The cell's text.
        value: String,
        /// What the column needs.
        expected: &'static str,
    },
    /// Arrays that should agree in shape do not.
    #[error("wrong shape for {what}: expected {expected}, found {found}")]
    Shape {
        /// Which thing.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size given.
        found: usize,
    },
    /// Split fractions that are negative, non-finite or do not sum to 1.
    #[error("split fractions {fractions:?} must be non-negative and sum to 1")]
    Fractions {
        /// The fractions given.
        fractions: [f64; 3],
    },
    /// A row index out of range.
    #[error("row index {index} is out of range for {len} rows")]
    RowIndex {
        /// The index.
        index: usize,
        /// Number of rows.
        len: usize,
    },
}

impl DataError {
    fn io(file: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io {
            file: file.into().display().to_string(),
            source,
        }
    }
}

/// A 0/1 label column.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Column name.
    pub name: String,
    /// 0.0 or 1.0 per row.
    pub y: Array1<f64>,
}

/// Features (one row per individual, columns in the causal graph's order) and optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Feature names, in column order.
    pub names: Vec<String>,
    /// Features, `n x D`.
    pub x: Array2<f64>,
    /// The label column, when there is one.
    pub labels: Option<Labels>,
}

impl Table {
    /// A table, checking that the shapes agree.
    pub fn new(
        names: Vec<String>,
        x: Array2<f64>,
        labels: Option<Labels>,
    ) -> Result<Table, DataError> {
        if names.len() != x.ncols() {
            return Err(DataError::Shape {
                what: "feature names",
                expected: x.ncols(),
                found: names.len(),
            });
        }
        if let Some(l) = labels.as_ref().filter(|l| l.y.len() != x.nrows()) {
            return Err(DataError::Shape {
                what: "labels",
                expected: x.nrows(),
                found: l.y.len(),
            });
        }
        Ok(Table { names, x, labels })
    }

    /// A simulated sample (consumed: its `u` is dropped) as a table with the dataset's names and
    /// the label column [`DEFAULT_LABEL`].
    pub fn from_sample(dataset: Dataset, sample: Sample) -> Table {
        Table {
            names: dataset
                .feature_names()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            x: sample.x,
            labels: Some(Labels {
                name: DEFAULT_LABEL.to_owned(),
                y: sample.y,
            }),
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    /// The labels, when there are some.
    pub fn y(&self) -> Option<&Array1<f64>> {
        self.labels.as_ref().map(|l| &l.y)
    }

    /// Read a CSV whose columns are exactly the graph's features (any order), no label.
    pub fn read_csv(
        path: impl AsRef<std::path::Path>,
        graph: &CausalGraph,
    ) -> Result<Table, DataError> {
        Table::read_csv_with(path, graph, &CsvOptions::default())
    }

    /// Read a CSV with options (a label column, tolerance of extra columns).
    pub fn read_csv_with(
        path: impl AsRef<std::path::Path>,
        graph: &CausalGraph,
        options: &CsvOptions,
    ) -> Result<Table, DataError> {
        Table::from_rows(CsvRowReader::open(path, graph, options)?)
    }

    /// Read CSV text from any reader; `file_label` names it in errors.
    pub fn from_csv_reader<R: std::io::Read>(
        reader: R,
        file_label: &str,
        graph: &CausalGraph,
        options: &CsvOptions,
    ) -> Result<Table, DataError> {
        Table::from_rows(CsvRowReader::from_reader(
            reader, file_label, graph, options,
        )?)
    }

    fn from_rows<R: std::io::Read>(mut rows: CsvRowReader<R>) -> Result<Table, DataError> {
        let d = rows.n_features();
        let mut flat = Vec::new();
        let mut y = Vec::new();
        let mut buf = vec![0.0; d];
        while let Some(info) = rows.read_into(&mut buf)? {
            flat.extend_from_slice(&buf);
            if let Some(label) = info.label {
                y.push(label);
            }
        }
        let n = flat.len() / d;
        if n == 0 {
            return Err(DataError::NoRows {
                file: rows.file().to_owned(),
            });
        }
        let found = flat.len();
        let x = Array2::from_shape_vec((n, d), flat).map_err(|_| DataError::Shape {
            what: "rows",
            expected: n * d,
            found,
        })?;
        let labels = rows.label_name().map(|name| Labels {
            name: name.to_owned(),
            y: Array1::from_vec(y),
        });
        Ok(Table {
            names: rows.names().to_vec(),
            x,
            labels,
        })
    }

    /// Write the table (features, then the label column if any) as CSV, atomically, streaming
    /// through a temporary file.
    pub fn write_csv(&self, path: impl AsRef<std::path::Path>) -> Result<(), DataError> {
        let path = path.as_ref();
        let mut file = crate::io::AtomicFile::create(path).map_err(|e| DataError::io(path, e))?;
        csv_io::write_table(self, &mut file, &path.display().to_string())?;
        file.commit().map_err(|e| DataError::io(path, e))
    }

    /// Write the table as CSV to any writer.
    pub fn write_csv_to<W: std::io::Write>(&self, writer: W) -> Result<(), DataError> {
        csv_io::write_table(self, writer, "<output>")
    }

    /// The rows `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Table, DataError> {
        let n = self.n_rows();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(DataError::RowIndex { index: bad, len: n });
        }
        Ok(Table {
            names: self.names.clone(),
            x: self.x.select(Axis(0), indices),
            labels: self.labels.as_ref().map(|l| Labels {
                name: l.name.clone(),
                y: l.y.select(Axis(0), indices),
            }),
        })
    }

    /// Seeded shuffle, then train/validation/test tables with the given fractions.
    pub fn split(&self, fractions: [f64; 3], seed: u64) -> Result<[Table; 3], DataError> {
        let s = split_indices(self.n_rows(), fractions, seed)?;
        Ok([
            self.select(&s.train)?,
            self.select(&s.val)?,
            self.select(&s.test)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_split_keep_rows_and_labels_together() {
        let scm = Dataset::ChainLin.scm();
        let t = Table::from_sample(Dataset::ChainLin, scm.sample(40, 2));
        let [train, val, test] = t.split(CLASSIFIER_SPLIT, 5).unwrap();
        assert_eq!((train.n_rows(), val.n_rows(), test.n_rows()), (20, 10, 10));
        // Every row of a split is a row of the table with its own label.
        for part in [&train, &val, &test] {
            for r in 0..part.n_rows() {
                let row = part.x.row(r);
                let src = (0..t.n_rows())
                    .find(|&i| t.x.row(i) == row)
                    .expect("row comes from the table");
                assert_eq!(part.y().unwrap()[r], t.y().unwrap()[src]);
            }
        }
        assert!(matches!(
            t.select(&[40]),
            Err(DataError::RowIndex { index: 40, len: 40 })
        ));
    }

    #[test]
    fn table_new_checks_shapes() {
        let x = Array2::zeros((3, 2));
        assert!(Table::new(vec!["a".into()], x.clone(), None).is_err());
        let bad = Labels {
            name: "y".into(),
            y: Array1::zeros(2),
        };
        assert!(Table::new(vec!["a".into(), "b".into()], x, Some(bad)).is_err());
    }
}
