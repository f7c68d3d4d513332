//! The `sluice-sim` binary: `run` one seed with its summary, `sweep` a range of
//! seeds on every core with a progress line, `replay` a seed's full trace, `bench`
//! the standard scenarios' speed. The wall clock is read here only, for budgets,
//! progress and speed, never by a run.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use sluice_sim::host::Bugs;
use sluice_sim::run::{self, RunResult};
use sluice_sim::scenario::Scenario;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Sluice's deterministic simulator.
#[derive(Debug, Parser)]
#[command(name = "sluice-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seed and print its summary (and any violation).
    Run {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        /// Switch on a deliberate bug (ack-before-durability, skip-notice,
        /// deliver-twice-after-crash, drop-deferred-recipient, open-relay, retry-early,
        /// forget-owed-success, forget-deferred-on-restart, forget-remote-acceptance,
        /// drop-attempt-report, dkim-alter-after-signing, ignore-path-rules,
        /// leak-relay-credentials, move-keeps-original, renumber-uids-after-restart,
        /// ack-flags-before-durability, no-idle-push;
        /// core-backoff-off-by-one,
        /// inside core, with `--features planted-bugs`).
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
    /// Run a range of seeds in parallel and report every failing one.
    Sweep {
        #[arg(long)]
        scenario: PathBuf,
        /// A..B (B excluded).
        #[arg(long)]
        seeds: String,
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop starting seeds after this much wall-clock time (90s, 5m, 1h).
        #[arg(long)]
        budget: Option<String>,
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
    /// Run every scenario of a folder for a fixed set of seeds, one thread, and
    /// print events and simulated seconds per wall-clock second (use a release build).
    Bench {
        /// The folder of scenario files.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// Seeds 0..N of each scenario.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Stop a scenario's seeds after this many wall-clock seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Run one seed and print its full event trace.
    Replay {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        /// Print the trace (the default; kept for the printed replay commands).
        #[arg(long)]
        trace: bool,
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
}

fn parse_bugs(names: &[String]) -> anyhow::Result<Bugs> {
    run::parse_bugs(names).map_err(anyhow::Error::msg)
}

fn parse_seeds(text: &str) -> anyhow::Result<(u64, u64)> {
    let (start, end) = text.split_once("..").context("--seeds takes A..B")?;
    let start: u64 = start.trim().parse().context("--seeds: A is not a number")?;
    let end: u64 = end.trim().parse().context("--seeds: B is not a number")?;
    if end <= start {
        bail!("--seeds: B must be above A");
    }
    Ok((start, end))
}

fn parse_budget(text: &str) -> anyhow::Result<std::time::Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number.parse().context("--budget: a number and s, m or h")?;
    let secs = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => bail!("--budget: unit must be s, m or h"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            seed,
            bugs,
        } => {
            let bugs = parse_bugs(&bugs)?;
            let loaded = Scenario::load(&scenario)?;
            let started = std::time::Instant::now();
            let result = run::run(&loaded, seed, bugs, false);
            let wall = started.elapsed().as_secs_f64().max(1e-6);
            print!("{}", run::summary(&result));
            // The benchmark: on stderr, since it is the one thing that differs per run.
            eprintln!(
                "speed      {:.0} simulated s per wall s, {:.0} events/s",
                result.simulated_ms as f64 / 1000.0 / wall,
                result.events as f64 / wall
            );
            if !result.passed() {
                let file = scenario.display().to_string();
                print!("{}", run::violation_report(&loaded, &file, &result, bugs));
                std::process::exit(1);
            }
        }
        Command::Replay {
            scenario,
            seed,
            bugs,
            trace: _,
        } => {
            let bugs = parse_bugs(&bugs)?;
            let loaded = Scenario::load(&scenario)?;
            let result = run::run(&loaded, seed, bugs, true);
            for line in &result.trace {
                println!("{line}");
            }
            print!("{}", run::summary(&result));
        }
        Command::Bench {
            scenarios,
            seeds,
            seconds,
        } => bench(&scenarios, seeds, std::time::Duration::from_secs(seconds))?,
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            budget,
            bugs,
        } => {
            let bugs = parse_bugs(&bugs)?;
            let loaded = Scenario::load(&scenario)?;
            let (start, end) = parse_seeds(&seeds)?;
            let budget = budget.as_deref().map(parse_budget).transpose()?;
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            let failures = sweep(&loaded, start, end, jobs.max(1), budget, bugs);
            let file = scenario.display().to_string();
            for result in &failures {
                print!("{}", run::violation_report(&loaded, &file, result, bugs));
            }
            if !failures.is_empty() {
                let seeds: Vec<String> = failures.iter().map(|r| r.seed.to_string()).collect();
                println!("failing seeds: {}", seeds.join(" "));
                std::process::exit(1);
            }
            println!("all seeds passed");
        }
    }
    Ok(())
}

/// The benchmark: each scenario of `folder` (by name) for seeds `0..seeds`, or as
/// many as fit in `per_scenario`; a failing seed fails the benchmark.
fn bench(
    folder: &std::path::Path,
    seeds: u64,
    per_scenario: std::time::Duration,
) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    println!(
        "{:<34} {:>5} {:>11} {:>10} {:>8} {:>12} {:>14}",
        "scenario", "seeds", "events", "sim s", "wall s", "events/s", "sim s/wall s"
    );
    let (mut all_events, mut all_ms, mut all_wall) = (0u64, 0u64, 0f64);
    let mut failing = Vec::new();
    for file in files {
        let loaded = Scenario::load(&file)?;
        let started = std::time::Instant::now();
        let (mut ran, mut events, mut simulated_ms) = (0u64, 0u64, 0u64);
        for seed in 0..seeds {
            if started.elapsed() >= per_scenario {
                break;
            }
            let result = run::run(&loaded, seed, Bugs::default(), false);
            ran += 1;
            events += result.events;
            simulated_ms += result.simulated_ms;
            if !result.passed() {
                failing.push(format!("{} seed {seed}", file.display()));
            }
        }
        let wall = started.elapsed().as_secs_f64().max(1e-6);
        let name = file
            .file_stem()
            .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
        println!(
            "{name:<34} {ran:>5} {events:>11} {:>10.0} {wall:>8.2} {:>12.0} {:>14.0}",
            simulated_ms as f64 / 1000.0,
            events as f64 / wall,
            simulated_ms as f64 / 1000.0 / wall
        );
        all_events += events;
        all_ms += simulated_ms;
        all_wall += wall;
    }
    let all_wall = all_wall.max(1e-6);
    println!(
        "{:<34} {:>5} {all_events:>11} {:>10.0} {all_wall:>8.2} {:>12.0} {:>14.0}",
        "total",
        "",
        all_ms as f64 / 1000.0,
        all_events as f64 / all_wall,
        all_ms as f64 / 1000.0 / all_wall
    );
    if !failing.is_empty() {
        bail!("failing: {}", failing.join(", "));
    }
    Ok(())
}

/// Runs seeds `start..end` on `jobs` threads (each run on one thread); the failing
/// runs, by seed.
fn sweep(
    scenario: &Scenario,
    start: u64,
    end: u64,
    jobs: usize,
    budget: Option<std::time::Duration>,
    bugs: Bugs,
) -> Vec<RunResult> {
    let next = Arc::new(AtomicU64::new(start));
    let done = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let simulated_ms = Arc::new(AtomicU64::new(0));
    let failed: Arc<Mutex<Vec<RunResult>>> = Arc::new(Mutex::new(Vec::new()));
    let started = std::time::Instant::now();
    let total = end - start;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (next, done, failed) = (Arc::clone(&next), Arc::clone(&done), Arc::clone(&failed));
            let (events, simulated_ms) = (Arc::clone(&events), Arc::clone(&simulated_ms));
            scope.spawn(move || {
                loop {
                    if budget.is_some_and(|budget| started.elapsed() >= budget) {
                        break;
                    }
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        break;
                    }
                    let result = run::run(scenario, seed, bugs, false);
                    events.fetch_add(result.events, Ordering::Relaxed);
                    simulated_ms.fetch_add(result.simulated_ms, Ordering::Relaxed);
                    let mut failed = failed.lock().unwrap_or_else(PoisonError::into_inner);
                    if !result.passed() {
                        failed.push(result);
                    }
                    let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                    // A closed stderr must not stop the sweep: the progress line is a courtesy.
                    let mut stderr = std::io::stderr();
                    let _ = write!(
                        stderr,
                        "\r[{finished}/{total}] {} failing, {:.0}s",
                        failed.len(),
                        started.elapsed().as_secs_f64()
                    );
                    let _ = stderr.flush();
                }
            });
        }
    });
    eprintln!();
    let wall = started.elapsed().as_secs_f64().max(1e-6);
    eprintln!(
        "speed: {:.0} simulated s per wall s, {:.0} events/s over {jobs} jobs",
        simulated_ms.load(Ordering::Relaxed) as f64 / 1000.0 / wall,
        events.load(Ordering::Relaxed) as f64 / wall
    );
    let mut failed = std::mem::take(&mut *failed.lock().unwrap_or_else(PoisonError::into_inner));
    failed.sort_by_key(|result| result.seed);
    failed
}
