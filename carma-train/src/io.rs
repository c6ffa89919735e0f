//! File output: atomic writes (temporary file, then rename).
