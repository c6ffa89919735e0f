//! Tabular data: CSV reading and writing, splits, the scaler.
