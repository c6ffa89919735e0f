//! Shared by the serve tests and the serve load benchmark.

pub mod http;
