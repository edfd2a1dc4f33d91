//! The `gyre` binary: `gyre serve`, `gyre version`, `gyre checkconfig`, `gyre defaultconfig`,
//! `gyre gentoken`.

//! The `gyre` binary: runs the server (`gyre`, `gyre serve`) and the tools around it
//! (`genconfig`, `gentoken`, `gensubtoken`, `checktoken`, `checksubtoken`, `checkconfig`,
//! `defaultconfig`, `defaultenv`, `version`), with Centrifugo's names and flags.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use cli::{ConfigArgs, ConfigFile, TokenKind};

#[derive(Parser, Debug)]
#[command(
    name = "gyre",
    about = "Gyre: a Centrifugo-compatible real-time messaging server",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a command: run the server with these settings.
    #[command(flatten)]
    serve: ConfigArgs,
}

/// Flags of `gentoken` and `gensubtoken`.
#[derive(clap::Args, Debug)]
struct TokenArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// User id (`sub`); anonymous when empty.
    #[arg(short, long, default_value = "")]
    user: String,
    /// Lifetime in seconds (-1: no expiry).
    #[arg(short, long, default_value_t = 7 * 24 * 3600, allow_negative_numbers = true)]
    ttl: i64,
    /// Print only the token.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve(ConfigArgs),
    /// Print the version.
    Version,
    /// Check a configuration and print its warnings.
    Checkconfig(ConfigArgs),
    /// Write a minimal configuration with generated secrets.
    Genconfig {
        /// File to write (format by extension).
        #[arg(short, long, default_value = "config.json")]
        config: PathBuf,
    },
    /// Write every key with its default.
    Defaultconfig {
        /// File to write (format by extension).
        #[arg(short, long, default_value = "config.json")]
        config: PathBuf,
        /// Configuration whose values replace the defaults.
        #[arg(short, long)]
        base: Option<PathBuf>,
        /// Print instead of writing.
        #[arg(short, long = "dry-run")]
        dry_run: bool,
    },
    /// Print every environment variable with its default.
    Defaultenv {
        /// Configuration whose values replace the defaults.
        #[arg(short, long)]
        base: Option<PathBuf>,
        /// Only the variables whose value in the base differs from the default.
        #[arg(long = "base-non-zero-only")]
        base_non_zero_only: bool,
    },
    /// Print a sample HS256 connection token.
    Gentoken(TokenArgs),
    /// Print a sample HS256 subscription token.
    Gensubtoken {
        #[command(flatten)]
        token: TokenArgs,
        /// Channel the token grants.
        #[arg(short = 's', long, default_value = "")]
        channel: String,
    },
    /// Verify a connection token with the configured keys.
    Checktoken {
        #[command(flatten)]
        file: ConfigFile,
        /// The token.
        token: Option<String>,
    },
    /// Verify a subscription token with the configured keys.
    Checksubtoken {
        #[command(flatten)]
        file: ConfigFile,
        /// The token.
        token: Option<String>,
    },
}

/// Logs to standard output (as upstream), or appended to `log.file`, at `log.level` (`RUST_LOG` wins).
fn init_tracing(log: &gyre_config::LogConfig) -> anyhow::Result<()> {
    // The NATS client logs each connection event at info; the NATS broker logs the state
    // changes itself (once per outage), so the client's own lines stay below warn.
    let default = match log.level.filter() {
        level @ ("info" | "debug" | "trace") => format!("{level},async_nats=warn"),
        level => level.to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if log.file.is_empty() {
        builder.with_writer(std::io::stdout).init();
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.file)
            .map_err(|e| anyhow::anyhow!("log.file {:?}: {e}", log.file))?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    Ok(())
}

/// Holds `pid_file` with the process id while the server runs, and removes it at exit.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn create(path: &str) -> anyhow::Result<PidFile> {
        if path.is_empty() {
            return Ok(PidFile(None));
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("pid_file {path:?}: {e}"))?;
        Ok(PidFile(Some(PathBuf::from(path))))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Version => {
            println!("gyre {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Genconfig { config } => cli::genconfig(&config),
        Command::Defaultconfig {
            config,
            base,
            dry_run,
        } => cli::defaultconfig(&config, base.as_deref(), dry_run),
        Command::Defaultenv {
            base,
            base_non_zero_only,
        } => cli::defaultenv(base.as_deref(), base_non_zero_only),
        Command::Checkconfig(args) => {
            let loaded = args.load()?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!("config is valid");
            Ok(())
        }
        Command::Gentoken(t) => {
            let loaded = t.file.load(&[])?;
            cli::gentoken(
                &loaded.config,
                TokenKind::Connect,
                &t.user,
                None,
                t.ttl,
                t.quiet,
            )
        }
        Command::Gensubtoken { token: t, channel } => {
            anyhow::ensure!(!channel.is_empty(), "channel is required (-s)");
            let loaded = t.file.load(&[])?;
            cli::gentoken(
                &loaded.config,
                TokenKind::Subscribe,
                &t.user,
                Some(&channel),
                t.ttl,
                t.quiet,
            )
        }
        Command::Checktoken { file, token } => {
            let token = token.ok_or_else(|| {
                anyhow::anyhow!("provide the token to check (gyre checktoken <TOKEN>)")
            })?;
            cli::checktoken(&file.load(&[])?.config, TokenKind::Connect, &token)
        }
        Command::Checksubtoken { file, token } => {
            let token = token.ok_or_else(|| {
                anyhow::anyhow!("provide the token to check (gyre checksubtoken <TOKEN>)")
            })?;
            cli::checktoken(&file.load(&[])?.config, TokenKind::Subscribe, &token)
        }
        Command::Serve(args) => serve(&args),
    }
}

fn serve(args: &ConfigArgs) -> anyhow::Result<()> {
    let loaded = args.load()?;
    init_tracing(&loaded.config.log)?;
    let _pid_file = PidFile::create(&loaded.config.pid_file)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let insecure = loaded.config.client.insecure;
        let server = gyre_server::app::start(loaded.config, shutdown.clone()).await?;
        if insecure {
            tracing::warn!("client.insecure is on: every client may do everything");
        }
        tracing::info!(addr = %server.addr, api = %server.internal_addr, "gyre {} serving", env!("CARGO_PKG_VERSION"));
        let signal = shutdown_signal();
        // Machine-readable line for tests and scripts that start gyre on port 0.
        println!("listening on {}", server.addr);
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down");
            shutdown.cancel();
        });
        server.wait().await;
        anyhow::Ok(())
    })
}

/// Registers SIGTERM and SIGINT now (so a signal sent as soon as the address is printed is
/// not missed) and resolves when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match streams {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
