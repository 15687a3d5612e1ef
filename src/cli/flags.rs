//! Flags that several commands share, each defined once and flattened into
//! the commands that take it (`#[command(flatten)]`), so the spelling, the
//! help text and the default are the same everywhere.

use crate::oci::platform::Platform;
use anyhow::Result;
use clap::{Args, ValueEnum};

/// Table for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// `--format table|json`, for every listing and report.
#[derive(Args, Debug, Clone, Copy)]
pub struct FormatFlag {
    /// Output format: a table for people, JSON for scripts
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

impl FormatFlag {
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}

/// `-q`/`--quiet`: only the identifiers, one per line (IDs of images and
/// containers, manifest digests of what was pulled, pushed or loaded).
#[derive(Args, Debug, Clone, Copy)]
pub struct QuietFlag {
    /// Print only IDs or digests, one per line (no table, no progress)
    #[arg(short, long)]
    quiet: bool,
}

impl QuietFlag {
    pub fn on(self) -> bool {
        self.quiet
    }
}

/// `--platform OS/ARCH[/VARIANT]`, for every command that picks one image
/// out of a multi-platform index.
#[derive(Args, Debug, Clone)]
pub struct PlatformFlag {
    /// Platform to pick from multi-platform images [default: the host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
}

impl PlatformFlag {
    /// The platform asked for, or the host's.
    pub fn resolve(&self) -> Result<Platform> {
        match &self.platform {
            Some(p) => Platform::parse(p),
            None => Ok(Platform::host()),
        }
    }
}

/// `--tls-verify[=BOOL]`, for every command that talks to a registry.
#[derive(Args, Debug, Clone, Copy)]
pub struct TlsVerify {
    /// Verify the registry's TLS certificate; false also allows plain HTTP [default: true, or `insecure` in registries.toml]
    #[arg(long, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
}
