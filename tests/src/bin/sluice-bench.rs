//! `sluice-bench`: an SMTP load generator. N concurrent sessions send M messages of
//! S bytes in total, reusing connections or not, optionally pipelining MAIL/RCPT/DATA,
//! and report messages per second, latency percentiles and errors. It works against
//! any SMTP server, so the same run can measure Sluice, Postfix and smtp-sink.

use anyhow::{Context, bail};
use clap::Parser;
use sluice_tests::smtp::{Reply, SmtpClient, dot_stuff};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Drive concurrent SMTP sessions and report throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version, about)]
struct Options {
    /// The server, e.g. 127.0.0.1:2525.
    #[arg(long)]
    server: SocketAddr,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 10)]
    sessions: u64,
    /// Messages in total, shared by all sessions.
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Size of each message in bytes.
    #[arg(long, default_value_t = 5120)]
    size: usize,
    /// Open a new connection for every message instead of reusing one per session.
    #[arg(long)]
    no_reuse: bool,
    /// Send MAIL, RCPT and DATA in one write (RFC 2920) and read the replies together.
    #[arg(long)]
    pipelining: bool,
    #[arg(long, default_value = "bench@client.bench.test")]
    from: String,
    #[arg(long, default_value = "bench@bench.test")]
    to: String,
    #[arg(long, default_value = "client.bench.test")]
    helo: String,
    /// Seconds to wait for any one reply before counting an error.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// A name for the result line (e.g. sluice, postfix, smtp-sink).
    #[arg(long, default_value = "server")]
    label: String,
    /// Also print the latency histogram.
    #[arg(long)]
    histogram: bool,
}

/// The latency at `fraction` (0..1) of sorted samples, nearest-rank.
fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Log-scale buckets, four per doubling of microseconds: fine enough to see the shape
/// of a tail, coarse enough to print in a screenful.
fn bucket_of(micros: u64) -> usize {
    let value = micros.max(1) as f64;
    (value.log2() * 4.0).floor() as usize
}

fn print_histogram(sorted: &[u64]) {
    let Some(&max) = sorted.last() else { return };
    let mut counts = vec![0u64; bucket_of(max) + 1];
    for &sample in sorted {
        counts[bucket_of(sample)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1);
    println!("latency histogram (upper bound, count):");
    for (bucket, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let upper_ms = 2f64.powf((bucket + 1) as f64 / 4.0) / 1000.0;
        let bar = "#".repeat((count * 50).div_ceil(peak) as usize);
        println!("  < {upper_ms:>10.3} ms {count:>8} {bar}");
    }
}

/// What one session did.
#[derive(Debug, Default)]
struct SessionResult {
    latencies_us: Vec<u64>,
    errors: u64,
    reconnects: u64,
    first_error: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Arc::new(Options::parse());
    if options.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    let message = Arc::new(dot_stuff(&bench_message(options.size, &options.to)));
    let remaining = Arc::new(AtomicU64::new(options.messages));
    let started = Instant::now();
    let sessions: Vec<_> = (0..options.sessions)
        .map(|_| {
            let options = Arc::clone(&options);
            let message = Arc::clone(&message);
            let remaining = Arc::clone(&remaining);
            tokio::spawn(async move { session(&options, &message, &remaining).await })
        })
        .collect();
    let mut samples = Vec::with_capacity(options.messages as usize);
    let mut errors = 0;
    let mut reconnects = 0;
    let mut first_error = None;
    for handle in sessions {
        let result = handle.await.context("a session task panicked")?;
        samples.extend(result.latencies_us);
        errors += result.errors;
        reconnects += result.reconnects;
        if first_error.is_none() {
            first_error = result.first_error;
        }
    }
    let elapsed = started.elapsed();
    samples.sort_unstable();
    let delivered = samples.len() as u64;
    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    let ms = |micros: u64| micros as f64 / 1000.0;
    let p50 = percentile(&samples, 0.50);
    let p90 = percentile(&samples, 0.90);
    let p99 = percentile(&samples, 0.99);
    let max = samples.last().copied().unwrap_or(0);
    println!(
        "{label}: {sessions} sessions, {delivered}/{total} messages of {size} bytes in {secs:.2} s \
         ({reuse}, {pipelining}), {errors} errors, {reconnects} reconnects after 421",
        label = options.label,
        sessions = options.sessions,
        total = options.messages,
        size = options.size,
        secs = elapsed.as_secs_f64(),
        reuse = if options.no_reuse {
            "a connection per message"
        } else {
            "connections reused"
        },
        pipelining = if options.pipelining {
            "pipelining"
        } else {
            "no pipelining"
        },
    );
    println!(
        "throughput {rate:.1} messages/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
    if let Some(error) = &first_error {
        println!("first error: {error}");
    }
    if options.histogram {
        print_histogram(&samples);
    }
    // The tool's own CPU, so that a script can subtract it from the machine's busy
    // time and attribute the rest to the server (-1: not on Linux).
    let cpu_ticks = own_cpu_ticks().map_or(-1, |ticks| ticks as i64);
    // One machine-readable line for scripts.
    println!(
        "RESULT label={} sessions={} messages={} ok={delivered} errors={errors} \
         reconnects={reconnects} seconds={:.3} \
         rate={rate:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} \
         cpu_ticks={cpu_ticks}",
        options.label,
        options.sessions,
        options.messages,
        elapsed.as_secs_f64(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
    Ok(())
}

/// This process's user and system CPU time so far, all threads, in clock ticks
/// (`getconf CLK_TCK`), from /proc/self/stat; None where there is no procfs.
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is parenthesised and may hold spaces: count
    // fields after its closing parenthesis, where field 3 (state) is the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// One session: takes messages from the shared budget until it is spent.
async fn session(options: &Options, message: &[u8], remaining: &AtomicU64) -> SessionResult {
    let mut result = SessionResult::default();
    let mut connection: Option<SmtpClient<TcpStream>> = None;
    let reply_timeout = Duration::from_secs(options.timeout);
    while take_one(remaining) {
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            reply_timeout,
            one_message(options, message, &mut connection),
        )
        .await;
        let error = match outcome {
            Ok(Ok(Sent::Delivered)) => {
                result
                    .latencies_us
                    .push(started.elapsed().as_micros() as u64);
                None
            }
            Ok(Ok(Sent::Closing)) => {
                // A per-session message limit (421 at MAIL) is policy, not failure:
                // reconnect and send the same message again, as a real client would.
                result.reconnects += 1;
                connection = None;
                remaining.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            Ok(Err(error)) => Some(format!("{error:#}")),
            Err(_) => Some(format!("no reply within {reply_timeout:?}")),
        };
        if let Some(error) = error {
            result.errors += 1;
            result.first_error.get_or_insert(error);
            // Whatever state the session is in, start over on a fresh connection.
            connection = None;
        }
        if options.no_reuse
            && let Some(old) = connection.take()
        {
            old.quit().await;
        }
    }
    if let Some(old) = connection.take() {
        old.quit().await;
    }
    result
}

fn take_one(remaining: &AtomicU64) -> bool {
    remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// How one attempt ended, short of an error.
#[derive(Debug)]
enum Sent {
    Delivered,
    /// The server answered MAIL with 421: it closes this session; try on a new one.
    Closing,
}

/// Sends one message, opening a connection first if there is none.
async fn one_message(
    options: &Options,
    message: &[u8],
    connection: &mut Option<SmtpClient<TcpStream>>,
) -> anyhow::Result<Sent> {
    if connection.is_none() {
        let (mut client, greeting) = SmtpClient::connect(options.server).await?;
        expect(&greeting, 220, "greeting")?;
        let ehlo = client.command(&format!("EHLO {}", options.helo)).await?;
        expect(&ehlo, 250, "EHLO")?;
        *connection = Some(client);
    }
    let Some(client) = connection.as_mut() else {
        bail!("no connection");
    };
    let mail = format!("MAIL FROM:<{}>", options.from);
    let rcpt = format!("RCPT TO:<{}>", options.to);
    if options.pipelining {
        client.write_line(&mail).await?;
        client.write_line(&rcpt).await?;
        client.write_line("DATA").await?;
        client.flush().await?;
        let mail_reply = client.read_reply().await?;
        if mail_reply.code == 421 {
            return Ok(Sent::Closing);
        }
        let rcpt_reply = client.read_reply().await?;
        let data_reply = client.read_reply().await?;
        expect(&mail_reply, 250, "MAIL")?;
        expect(&rcpt_reply, 250, "RCPT")?;
        expect(&data_reply, 354, "DATA")?;
    } else {
        let mail_reply = client.command(&mail).await?;
        if mail_reply.code == 421 {
            return Ok(Sent::Closing);
        }
        expect(&mail_reply, 250, "MAIL")?;
        expect(&client.command(&rcpt).await?, 250, "RCPT")?;
        expect(&client.command("DATA").await?, 354, "DATA")?;
    }
    // The message is already dot-stuffed and terminated.
    client.write_raw(message).await?;
    client.flush().await?;
    let end = client.read_reply().await?;
    expect(&end, 250, "end of data")?;
    Ok(Sent::Delivered)
}

fn expect(reply: &Reply, code: u16, step: &str) -> anyhow::Result<()> {
    if reply.code != code {
        bail!("{step}: expected {code}, got {reply}");
    }
    Ok(())
}

/// A plain-text message of `size` bytes (give or take a line).
fn bench_message(size: usize, to: &str) -> Vec<u8> {
    let mut message = format!(
        "From: <bench@client.bench.test>\r\nTo: <{to}>\r\nSubject: benchmark\r\n\
         Message-ID: <bench@client.bench.test>\r\n\r\n"
    )
    .into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while message.len() + line.len() <= size {
        message.extend_from_slice(line);
    }
    while message.len() + 2 < size {
        message.push(b'x');
    }
    message.extend_from_slice(b"\r\n");
    message
}
