//! Shared by the CLI tests (`cli`) and the serve tests and load benchmark (`http`).

pub mod cli;
pub mod http;
