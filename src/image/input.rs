//! Where `load` and `import` read from: a file or directory, or standard
//! input (`-`, or no file at all for `load`, as in Podman). `load` needs
//! to seek in an archive, so standard input is first copied to the
//! store's `tmp/` ([`Spool`]), which goes away with it on every path (and
//! after a crash, `tmp/` sweeping removes it: the name carries the pid).

use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    /// `None` and `-` mean standard input.
    pub fn from_arg(arg: Option<PathBuf>) -> Input {
        match arg {
            Some(p) if p.as_os_str() != "-" => Input::Path(p),
            _ => Input::Stdin,
        }
    }

    /// For messages and tag history: the path, or "standard input".
    pub fn describe(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "standard input".to_owned(),
        }
    }

    /// Refuse to read an archive from a terminal: nobody types one, and
    /// the command would seem to hang. `usage` says how to give it.
    pub fn refuse_terminal(&self, usage: &str) -> Result<()> {
        if *self == Input::Stdin && std::io::stdin().is_terminal() {
            bail!(
                "standard input is a terminal, not an archive; \
                 give the file or pipe it in: {usage}"
            );
        }
        Ok(())
    }
}

/// A copy of standard input in the store's `tmp/`, removed on drop.
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    /// Copy all of standard input into the store's `tmp/`.
    pub fn stdin(store: &Store) -> Result<Spool> {
        let spool = Spool {
            path: store.tmp_path("stdin"),
        };
        let copy = || -> Result<u64> {
            let mut file = std::fs::File::create(&spool.path)
                .with_context(|| format!("creating {}", spool.path.display()))?;
            let n = std::io::copy(&mut std::io::stdin().lock(), &mut file)
                .with_context(|| format!("copying standard input to {}", spool.path.display()))?;
            Ok(n)
        };
        let n = copy().map_err(|e| store.explain_no_space(e, "a copy of standard input"))?;
        if n == 0 {
            bail!(
                "standard input is empty: no archive arrived (`hutch load < FILE`, `CMD | hutch load`)"
            );
        }
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_and_nothing_mean_standard_input() {
        assert_eq!(Input::from_arg(None), Input::Stdin);
        assert_eq!(Input::from_arg(Some("-".into())), Input::Stdin);
        assert_eq!(
            Input::from_arg(Some("./-".into())),
            Input::Path("./-".into()),
            "a file named - is still reachable"
        );
        assert_eq!(Input::Stdin.describe(), "standard input");
    }
}
