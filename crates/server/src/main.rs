//! The `gyre` binary: `gyre serve`, `gyre version`, `gyre checkconfig`, `gyre defaultconfig`,
//! `gyre gentoken`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "gyre",
    about = "Gyre: a Centrifugo-compatible real-time messaging server",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags shared by the commands that read a configuration.
#[derive(clap::Args, Debug, Default, Clone)]
struct ConfigArgs {
    /// Config file (JSON, YAML or TOML, by extension).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// HTTP port (`http_server.port`).
    #[arg(long, alias = "http_server.port")]
    port: Option<u16>,
    /// Bind address (`http_server.address`).
    #[arg(long, alias = "http_server.address")]
    address: Option<String>,
    /// Internal port for the API and health (`http_server.internal_port`).
    #[arg(long = "internal_port", alias = "http_server.internal_port")]
    internal_port: Option<u16>,
    /// Allow everything for clients, without tokens (`client.insecure`; development only).
    #[arg(long = "client.insecure")]
    client_insecure: bool,
    /// Disable the API key check (`http_api.insecure`; development only).
    #[arg(long = "http_api.insecure")]
    api_insecure: bool,
    /// Server API key (`http_api.key`).
    #[arg(long = "http_api.key")]
    api_key: Option<String>,
    /// HMAC secret for connection tokens (`client.token.hmac_secret_key`).
    #[arg(long = "client.token.hmac_secret_key")]
    hmac_secret_key: Option<String>,
    /// Enable `/health` (`health.enabled`).
    #[arg(long = "health.enabled")]
    health: bool,
    /// Engine type (`engine.type`: memory or redis).
    #[arg(long = "engine.type")]
    engine: Option<String>,
    /// Log level (`log.level`).
    #[arg(long = "log.level")]
    log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (default).
    Serve(ConfigArgs),
    /// Print the version.
    Version,
    /// Check a configuration and print its warnings.
    Checkconfig(ConfigArgs),
    /// Print the default configuration as JSON.
    Defaultconfig,
    /// Mint an HS256 connection token with the configured secret.
    Gentoken {
        #[command(flatten)]
        config: ConfigArgs,
        /// User id (`sub`).
        #[arg(short, long, default_value = "")]
        user: String,
        /// Lifetime in seconds (-1: no expiry).
        #[arg(short, long, default_value_t = 7 * 24 * 3600, allow_negative_numbers = true)]
        ttl: i64,
    },
}

impl ConfigArgs {
    fn overrides(&self) -> Vec<(String, Value)> {
        let mut o = Vec::new();
        if let Some(p) = self.port {
            o.push(("http_server.port".to_owned(), json!(p)));
        }
        if let Some(a) = &self.address {
            o.push(("http_server.address".to_owned(), json!(a)));
        }
        if let Some(p) = self.internal_port {
            o.push(("http_server.internal_port".to_owned(), json!(p)));
        }
        if self.client_insecure {
            o.push(("client.insecure".to_owned(), json!(true)));
        }
        if self.api_insecure {
            o.push(("http_api.insecure".to_owned(), json!(true)));
        }
        if let Some(k) = &self.api_key {
            o.push(("http_api.key".to_owned(), json!(k)));
        }
        if let Some(k) = &self.hmac_secret_key {
            o.push(("client.token.hmac_secret_key".to_owned(), json!(k)));
        }
        if self.health {
            o.push(("health.enabled".to_owned(), json!(true)));
        }
        if let Some(e) = &self.engine {
            o.push(("engine.type".to_owned(), json!(e)));
        }
        if let Some(l) = &self.log_level {
            o.push(("log.level".to_owned(), json!(l)));
        }
        o
    }

    fn load(&self) -> anyhow::Result<gyre_config::Loaded> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        gyre_config::load(self.config.as_deref(), &env, &self.overrides())
            .with_context(|| "configuration error")
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ConfigArgs::default())) {
        Command::Version => {
            println!("gyre {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Defaultconfig => {
            println!("{}", gyre_config::Config::default().to_json_pretty());
            Ok(())
        }
        Command::Checkconfig(args) => {
            let loaded = args.load()?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!("config is valid");
            Ok(())
        }
        Command::Gentoken { config, user, ttl } => {
            let loaded = config.load()?;
            let secret = &loaded.config.client.token.hmac_secret_key;
            anyhow::ensure!(
                !secret.is_empty(),
                "client.token.hmac_secret_key is not set"
            );
            let mut claims = json!({ "sub": user });
            if ttl >= 0 {
                claims["exp"] = json!(gyre_server::unix_now() + ttl);
            }
            println!("{}", gyre_auth::sign_hs256(secret, &claims)?);
            Ok(())
        }
        Command::Serve(args) => serve(&args),
    }
}

fn serve(args: &ConfigArgs) -> anyhow::Result<()> {
    let loaded = args.load()?;
    init_tracing(&loaded.config.log.level);
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
        // Machine-readable line for tests and scripts that start gyre on port 0.
        println!("listening on {}", server.addr);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        });
        server.wait().await;
        anyhow::Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
