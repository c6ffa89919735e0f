//! One module per subcommand: its clap arguments and its `run`.

pub mod demo;
pub mod evaluate;
pub mod fit;
pub mod import;
pub mod inspect;
pub mod oracle;
pub mod recommend;
pub mod simulate;
