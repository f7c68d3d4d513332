//! The `sluice` command line: `serve`, `check-config` and the administration
//! commands over the store (domains, users, aliases, groups, the queue). Output meant
//! for people and scripts goes to stdout, logs to stderr.

use crate::config::{Config, LogFormat, Role};
use crate::node::Node;
use crate::store::{QueueEntry, Store, StoreError};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_core::smtp::received::rfc5322_date;
use std::io::BufRead as _;
use std::path::PathBuf;

/// Sluice, an enterprise mail system.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The configuration file (TOML); without it, the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr; overrides `log.format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Human,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> LogFormat {
        match arg {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the listeners. Prints `listening <name> <ip:port>` per listener, then `ready`.
    Serve {
        /// Create the domain demo.sluice.test with users alice, bob and carol, and print their passwords.
        #[arg(long)]
        demo: bool,
        /// Which tiers to run; overrides `server.role` (all, gateway or backend).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Check a configuration file and report the first error with its file, line and key.
    CheckConfig {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
    /// Manage users (mailbox owners).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage local domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Manage aliases (another name for one or more addresses).
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Manage groups (distribution lists).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Inspect the queue of accepted messages.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// DKIM keys for signing outgoing mail.
    #[command(subcommand)]
    Dkim(DkimCommand),
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Generate a key into <data_dir>/dkim/<domain>.<selector>.key (never overwriting
    /// one) and print its path and the TXT record to publish.
    Generate {
        domain: String,
        #[arg(long, default_value = "sluice")]
        selector: String,
        #[arg(long, default_value = "rsa", value_parser = key_algorithm())]
        algorithm: crate::dkim::DkimAlgorithm,
    },
}

/// `--algorithm rsa | ed25519`, by the names of the key record's `k=` tag.
fn key_algorithm() -> impl clap::builder::TypedValueParser<Value = crate::dkim::DkimAlgorithm> {
    use crate::dkim::DkimAlgorithm;
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["rsa", "ed25519"]).map(|name| {
        if name == DkimAlgorithm::Ed25519.key_type() {
            DkimAlgorithm::Ed25519
        } else {
            DkimAlgorithm::Rsa
        }
    })
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; without --password, the password is read as one line from stdin.
    Add {
        address: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Change a user's password; without --password, read as one line from stdin.
    Passwd {
        address: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete a user.
    Del { address: String },
    /// List every user.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    Add {
        name: String,
    },
    Del {
        name: String,
    },
    List,
    /// Set the catch-all address of a domain, or remove it when no target is given.
    CatchAll {
        domain: String,
        target: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias for one or more target addresses.
    Add {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    Del {
        alias: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group with its first members.
    Add {
        group: String,
        members: Vec<String>,
    },
    /// Add one member to a group.
    AddMember {
        group: String,
        member: String,
    },
    /// Remove one member from a group.
    DelMember {
        group: String,
        member: String,
    },
    Del {
        group: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// The messages still in the queue, a line per recipient, oldest first: state,
    /// arrival, next attempt, last outcome.
    List,
    /// One message: its envelope and every recipient in detail.
    Show { queue_id: String },
    /// Try the deferred recipients of one message now.
    Retry { queue_id: String },
    /// Try every deferred recipient now.
    Flush,
    /// Remove a message from the queue without any notice.
    Delete { queue_id: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    All,
    Gateway,
    Backend,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Role {
        match arg {
            RoleArg::All => Role::All,
            RoleArg::Gateway => Role::Gateway,
            RoleArg::Backend => Role::Backend,
        }
    }
}

/// Runs a parsed command line; the process exit status follows the result.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { demo, role } => {
            let mut config = config;
            if let Some(role) = role {
                config.server.role = role.into();
            }
            serve(&config, demo).await
        }
        // Checked before the runtime starts; reaching here means the file is valid.
        Command::CheckConfig { .. } => Ok(()),
        Command::User(command) => user(&open_store(&config).await?, command).await,
        Command::Domain(command) => domain(&open_store(&config).await?, command).await,
        Command::Alias(command) => alias(&open_store(&config).await?, command).await,
        Command::Group(command) => group(&open_store(&config).await?, command).await,
        Command::Dkim(DkimCommand::Generate {
            domain,
            selector,
            algorithm,
        }) => {
            let (path, record) = crate::dkim::generate_key_file(
                &config.server.data_dir,
                &domain,
                &selector,
                algorithm,
            )?;
            println!("key {}", path.display());
            println!("{}", record.zone_line());
            Ok(())
        }
        Command::Queue(command) => queue(&config, command).await,
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    Store::open(&config.database_url(), &config.blob_dir())
        .await
        .context("cannot open the store")
}

/// One line per recipient record.
fn print_entry(entry: &QueueEntry) {
    let received = rfc5322_date(entry.received_at_ms.div_euclid(1000), 0);
    let mut line = format!(
        "{}  {:<9}  {}  from {}  to {}",
        entry.queue_id, entry.state, received, entry.reverse_path, entry.recipient
    );
    if let Some(next) = entry.next_attempt_ms.filter(|_| entry.state == "deferred") {
        line.push_str(&format!(
            "  attempts {}  next {}",
            entry.attempts,
            rfc5322_date(next.div_euclid(1000), 0)
        ));
    }
    if let (Some(status), Some(diagnostic)) = (&entry.status, &entry.diagnostic) {
        let diagnostic = diagnostic.replace('\n', " ");
        line.push_str(&format!("  last: {status} {diagnostic}"));
    }
    println!("{line}");
}

/// Fails unless the store holds records of `queue_id`: the running queue ignores
/// an unknown id, and reporting success for a mistyped one would mislead.
async fn ensure_queued(config: &Config, queue_id: &str) -> anyhow::Result<()> {
    let entries = open_store(config).await?.entries_of(queue_id).await?;
    if entries.is_empty() {
        anyhow::bail!("no message {queue_id} in the queue");
    }
    Ok(())
}

async fn queue(config: &Config, command: QueueCommand) -> anyhow::Result<()> {
    use crate::control::{Request, request};
    let data_dir = &config.server.data_dir;
    match command {
        QueueCommand::List => {
            for entry in open_store(config).await?.queued_entries().await? {
                print_entry(&entry);
            }
        }
        QueueCommand::Show { queue_id } => {
            let entries: Vec<QueueEntry> = open_store(config).await?.entries_of(&queue_id).await?;
            let Some(first) = entries.first() else {
                anyhow::bail!("no message {queue_id} in the queue");
            };
            println!("queue id: {queue_id}");
            println!("from: {}", first.reverse_path);
            println!(
                "arrived: {}",
                rfc5322_date(first.received_at_ms.div_euclid(1000), 0)
            );
            for entry in &entries {
                println!("recipient: {}", entry.recipient);
                println!("  state: {}", entry.state);
                println!(
                    "  destination: {}",
                    entry.destination.as_deref().unwrap_or("local mailbox")
                );
                if entry.attempts > 0 {
                    println!("  attempts: {}", entry.attempts);
                }
                if let Some(next) = entry.next_attempt_ms.filter(|_| entry.state == "deferred") {
                    println!("  next attempt: {}", rfc5322_date(next.div_euclid(1000), 0));
                }
                if let Some(status) = &entry.status {
                    println!("  status: {status}");
                }
                if let Some(remote) = &entry.remote_mta {
                    println!("  remote: {remote}");
                }
                if let Some(diagnostic) = &entry.diagnostic {
                    println!("  last reply: {}", diagnostic.replace('\n', " / "));
                }
            }
        }
        QueueCommand::Retry { queue_id } => {
            ensure_queued(config, &queue_id).await?;
            match request(data_dir, &Request::Retry(queue_id.clone()))
                .await
                .map_err(anyhow::Error::msg)?
            {
                Some(_) => println!("retrying {queue_id} now"),
                None => {
                    let changed = open_store(config)
                        .await?
                        .retry_now(Some(&queue_id), crate::clock::unix_millis())
                        .await?;
                    println!(
                        "{changed} deferred recipients of {queue_id} are due at the next start"
                    );
                }
            }
        }
        QueueCommand::Flush => match request(data_dir, &Request::Flush)
            .await
            .map_err(anyhow::Error::msg)?
        {
            Some(_) => println!("retrying every deferred recipient now"),
            None => {
                let changed = open_store(config)
                    .await?
                    .retry_now(None, crate::clock::unix_millis())
                    .await?;
                println!("{changed} deferred recipients are due at the next start");
            }
        },
        QueueCommand::Delete { queue_id } => {
            ensure_queued(config, &queue_id).await?;
            match request(data_dir, &Request::Delete(queue_id.clone()))
                .await
                .map_err(anyhow::Error::msg)?
            {
                Some(_) => println!("deleted {queue_id}"),
                None => {
                    open_store(config).await?.remove_queued(&queue_id).await?;
                    println!("deleted {queue_id}");
                }
            }
        }
    }
    Ok(())
}

async fn serve(config: &Config, demo: bool) -> anyhow::Result<()> {
    // Installed before `ready`, so that a SIGTERM right after it is not fatal.
    let signals = Signals::install()?;
    let (node, store) = Node::start(config).await?;
    if demo {
        create_demo(&store).await?;
        println!("demo tls-fingerprint {}", node.tls_fingerprint());
    }
    for (name, address) in node.addresses() {
        println!("listening {name} {address}");
    }
    println!("ready");
    signals.wait().await?;
    tracing::info!(
        grace_seconds = config.server.shutdown_grace_seconds,
        "shutting down"
    );
    node.shutdown();
    node.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), both meaning "shut down gracefully".
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

const DEMO_DOMAIN: &str = "demo.sluice.test";

async fn create_demo(store: &Store) -> anyhow::Result<()> {
    ignore_existing(store.add_domain(DEMO_DOMAIN).await)?;
    for user in ["alice", "bob", "carol"] {
        let address = format!("{user}@{DEMO_DOMAIN}");
        let password = random_password()?;
        match store.add_user(&address, &password).await {
            Err(StoreError::AlreadyExists(_)) => store.set_password(&address, &password).await?,
            other => other?,
        }
        println!("demo user {address} password {password}");
    }
    Ok(())
}

fn ignore_existing(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::AlreadyExists(_)) => Ok(()),
        other => other,
    }
}

/// 16 letters and digits from the OS generator.
fn random_password() -> anyhow::Result<String> {
    use std::io::Read as _;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect())
}

fn password_or_stdin(password: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = password {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "empty password");
    Ok(password)
}

async fn user(store: &Store, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { address, password } => {
            store
                .add_user(&address, &password_or_stdin(password)?)
                .await?;
        }
        UserCommand::Passwd { address, password } => {
            store
                .set_password(&address, &password_or_stdin(password)?)
                .await?;
        }
        UserCommand::Del { address } => store.remove_user(&address).await?,
        UserCommand::List => {
            for user in store.list_users().await? {
                println!("{user}");
            }
        }
    }
    Ok(())
}

async fn domain(store: &Store, command: DomainCommand) -> anyhow::Result<()> {
    match command {
        DomainCommand::Add { name } => store.add_domain(&name).await?,
        DomainCommand::Del { name } => store.remove_domain(&name).await?,
        DomainCommand::List => {
            for domain in store.list_domains().await? {
                println!("{domain}");
            }
        }
        DomainCommand::CatchAll { domain, target } => {
            store.set_catch_all(&domain, target.as_deref()).await?;
        }
    }
    Ok(())
}

async fn alias(store: &Store, command: AliasCommand) -> anyhow::Result<()> {
    match command {
        AliasCommand::Add { alias, targets } => store.add_alias(&alias, &targets).await?,
        AliasCommand::Del { alias } => store.remove_alias(&alias).await?,
        AliasCommand::List => {
            for (alias, targets) in store.list_aliases().await? {
                println!("{alias} {}", targets.join(" "));
            }
        }
    }
    Ok(())
}

async fn group(store: &Store, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add { group, members } => store.add_group(&group, &members).await?,
        GroupCommand::AddMember { group, member } => {
            store.add_group_member(&group, &member).await?;
        }
        GroupCommand::DelMember { group, member } => {
            store.remove_group_member(&group, &member).await?;
        }
        GroupCommand::Del { group } => store.remove_group(&group).await?,
        GroupCommand::List => {
            for (group, members) in store.list_groups().await? {
                println!("{group} {}", members.join(" "));
            }
        }
    }
    Ok(())
}
