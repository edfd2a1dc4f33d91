//! The `gyre` command line: the commands besides running the server, and how every command
//! finds its configuration.

mod files;
mod flags;
mod tokens;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub(crate) use files::{defaultconfig, defaultenv, genconfig};
pub(crate) use flags::KeyFlags;
pub(crate) use tokens::{TokenKind, checktoken, gentoken};

/// The file a command reads when `-c` is not given, if it exists (as Centrifugo does).
const DEFAULT_CONFIG_FILE: &str = "config.json";

/// Where a command's configuration comes from.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct ConfigFile {
    /// Config file (JSON, YAML or TOML, by extension); `config.json` when it exists.
    #[arg(short, long)]
    pub(crate) config: Option<PathBuf>,
}

impl ConfigFile {
    /// The file to read: the one given, or `config.json` in the working directory if present.
    fn path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            default.is_file().then(|| default.to_path_buf())
        })
    }

    /// Loads the configuration with the environment and `overrides` on top.
    pub(crate) fn load(
        &self,
        overrides: &[(String, serde_json::Value)],
    ) -> anyhow::Result<gyre_config::Loaded> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        gyre_config::load(self.path().as_deref(), &env, overrides)
            .with_context(|| "configuration error")
    }
}

/// A configuration file plus key flags: what `serve` and `checkconfig` read.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    pub(crate) file: ConfigFile,
    #[command(flatten)]
    pub(crate) flags: KeyFlags,
}

impl ConfigArgs {
    /// Loads the configuration: file, then environment, then flags.
    pub(crate) fn load(&self) -> anyhow::Result<gyre_config::Loaded> {
        self.file.load(&self.flags.0)
    }
}
