//! The `sluice` binary: parses the command line, loads the configuration (whose
//! errors name file, line and key), sets up logging and runs the command on tokio.

use clap::Parser;
use sluice_net::cli::{self, Cli, Command};
use sluice_net::config::Config;
use sluice_net::logging;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = match &cli.command {
        Command::CheckConfig { file: Some(file) } => Some(file.clone()),
        _ => cli.global.config.clone(),
    };
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sluice: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig { .. } = cli.command {
        let name = config_path.map_or_else(
            || "built-in defaults".to_owned(),
            |path| path.display().to_string(),
        );
        println!("{name}: ok");
        return ExitCode::SUCCESS;
    }
    let format = cli.global.log_format.map_or(config.log.format, Into::into);
    logging::init(format, &config.log.level);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads(cores))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sluice: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error:#}");
            ExitCode::FAILURE
        }
    }
}
