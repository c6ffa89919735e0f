//! The `carma` command: causal algorithmic recourse end to end.
//!
//! Exit codes: 0 on success, 1 when a command fails at run time (a missing or malformed file, a
//! training failure), 2 for usage errors (clap's own).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[macro_use]
mod out;
mod cmd;
mod explain;
mod model;
mod progress;
mod recourse;
mod report;
mod rows;
mod serve;

/// Causal algorithmic recourse: tell a rejected applicant what to change, respecting cause and
/// effect.
#[derive(Parser, Debug)]
#[command(name = "carma", version)]
#[command(after_help = "Start with:\n  carma demo\n\nThen your own data:\n  \
    carma fit --data people.csv --graph graph.toml -o model.carma\n  \
    carma recommend --model model.carma --input people.csv")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate Loan, train every stage and show recommendations for rejected applicants.
    #[command(
        after_help = "Example:\n  carma demo\n  carma demo --seed 7 --show 8\n  \
        carma demo --fast"
    )]
    Demo(cmd::demo::Args),
    /// Sample a dataset from one of the built-in structural causal models.
    #[command(after_help = "Example:\n  \
        carma simulate --dataset loan -n 20000 --seed 1 -o loan.csv --graph loan.toml")]
    Simulate(cmd::simulate::Args),
    /// Train the classifier, the causal flow and CARMA on a CSV and a causal graph.
    #[command(after_help = "Example:\n  \
        carma simulate --dataset loan -n 20000 -o loan.csv --graph loan.toml\n  \
        carma fit --data loan.csv --graph loan.toml -o loan.carma\n  \
        carma fit --data loan.csv --graph loan.toml -o quick.carma --epochs-scale 0.2")]
    Fit(cmd::fit::Args),
    /// Recommend to each person of a CSV what to change to be accepted.
    #[command(after_help = "Example:\n  \
        carma recommend --model loan.carma --input people.csv\n  \
        carma recommend --model loan.carma --input people.csv --forbid education,income\n  \
        carma recommend --model loan.carma --input people.csv --forbid education --forbid income\n  \
        carma recommend --model loan.carma --input people.csv --format csv -o out.csv")]
    Recommend(cmd::recommend::Args),
    /// Show a model's metadata, features, sizes and metrics.
    #[command(
        after_help = "Example:\n  carma inspect loan.carma\n  carma inspect loan.carma --json"
    )]
    Inspect(cmd::inspect::Args),
    /// Convert a PyTorch reference JSON (causal flow and classifier) into a model bundle.
    #[command(after_help = "Example:\n  \
        carma import --json loan_flow.json -o loan-reference.carma\n  \
        carma import --json loan_flow.json --scaler causal_estimator -o loan-ll.carma")]
    Import(cmd::import::Args),
    /// Evaluate CARMA, the oracle and the baselines over datasets and seeds (docs/MATH.md,
    /// section 8, metrics).
    #[command(after_help = "Example:\n  \
        carma evaluate --dataset loan --seeds 3 --out results/\n  \
        carma evaluate --dataset all --seeds 10 --out results/\n  \
        carma evaluate --dataset loan,loan-weighted --seeds 3 --methods oracle,carma\n  \
        carma evaluate --dataset chain-lin --seeds 1 --fast --max-individuals 20")]
    Evaluate(cmd::evaluate::Args),
    /// Search CARMA's hyperparameters on the validation split (TPE, pruning, resumable) and
    /// write the best as a `carma fit --config` file (docs/MATH.md, section 5).
    #[command(after_help = "Example:\n  \
        carma tune --dataset chain-lin --trials 60 --study chain.json -o chain-tuned.toml\n  \
        carma tune --data loan.csv --graph loan.toml --trials 40 --study s.json -o tuned.toml\n  \
        carma fit --data loan.csv --graph loan.toml --config tuned.toml -o loan.carma")]
    Tune(cmd::tune::Args),
    /// Draw SVG figures from the runs.json of `carma evaluate --out DIR`: intervention rates,
    /// number of actions, cost against the oracle, Loan preferences, training curves.
    #[command(after_help = "Example:\n  \
        carma report --runs results/runs.json --history results/history.json -o results/figures\n  \
        carma report --runs docs/runs.json --runs docs/runs-steep.json -o docs/figures")]
    Report(report::Args),
    /// Run the brute-force oracle (docs/MATH.md, section 7) next to CARMA on a few rejected
    /// individuals.
    #[command(after_help = "Example:\n  \
        carma oracle --dataset loan -n 10\n  \
        carma oracle --dataset triangle-lin -n 5 --bins 9 --fast")]
    Oracle(cmd::oracle::Args),
    /// Serve recommendations over HTTP for an online decision system (docs/SERVING.md).
    #[command(after_help = "Example:\n  \
        carma serve --model loan.carma\n  \
        carma serve --model loan.carma --addr 127.0.0.1:0 --workers 2 --log-requests\n  \
        curl -s localhost:8080/v1/recommend --json '{\"person\": [0, 0.5, 0.1, 1.2, 0.3, -0.4, -2.0]}'\n\n\
        Reload the model: kill -HUP <pid>. Stop: kill -TERM <pid> (finishes requests in flight).")]
    Serve(serve::Args),
}

fn main() -> ExitCode {
    install_print_failure_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    // Ctrl-C, SIGTERM and SIGHUP (`kill`, `timeout`, systemd, docker, a closed terminal): an
    // output being written through a temporary beside it is abandoned cleanly: the temporary is
    // removed, the destination keeps its old content or stays absent, and the exit status is 130
    // as a shell reports for an interrupt (the handler is not told which signal came).
    // `carma serve` handles these signals itself (reload, graceful shutdown).
    if !matches!(cli.command, Command::Serve(_)) {
        let _ = ctrlc::set_handler(|| {
            carma_train::io::remove_pending_temporaries();
            std::process::exit(130);
        });
    }
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Fit(args) => cmd::fit::run(args),
        Command::Recommend(args) => cmd::recommend::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Evaluate(args) => cmd::evaluate::run(args),
        Command::Tune(args) => cmd::tune::run(args),
        Command::Report(args) => report::run(args),
        Command::Oracle(args) => cmd::oracle::run(args),
        Command::Serve(args) => serve::run(args),
    }
    .and_then(|()| out::flush_stdout());
    match result {
        // A status line that could not be written to standard error is a failure too.
        Ok(()) if out::stderr_failed() => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`carma recommend ... | head`) is not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Print clap's help, version or usage error; a help text that cannot be written (`carma
/// --help > /dev/full`) is a failure.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let printed = e.print().and_then(|()| {
        use std::io::Write;
        std::io::stdout().flush()
    });
    match (e.kind(), printed) {
        (ErrorKind::DisplayHelp | ErrorKind::DisplayVersion, Ok(())) => ExitCode::SUCCESS,
        (ErrorKind::DisplayHelp | ErrorKind::DisplayVersion, Err(err))
            if err.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        (ErrorKind::DisplayHelp | ErrorKind::DisplayVersion, Err(err)) => {
            note!("error: cannot write the help text: {err}");
            ExitCode::FAILURE
        }
        // A usage error (printed to standard error, if it can be): clap's status, 2.
        _ => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
    }
}

/// The commands print through [`out`], which returns errors; a `println!` left somewhere (the
/// demo and the evaluation's reports) panics when standard output is full or closed. Report
/// that as an error (exit status 1, 0 for a closed pipe as in `main`) instead of a panic.
fn install_print_failure_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(what) = text.strip_prefix("failed printing to ") {
            carma_train::io::remove_pending_temporaries();
            if what.contains("Broken pipe") {
                std::process::exit(0);
            }
            note!("error: cannot write to {what}");
            std::process::exit(1);
        }
        default(info);
    }));
}

/// The error and its causes, joined by ": ", skipping a cause whose text the error before it
/// already includes (the libraries' errors often print their source in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
