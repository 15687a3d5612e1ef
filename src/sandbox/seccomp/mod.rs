//! Seccomp filters for the container's process.
//!
//! `default` is Docker's default profile (moby `profiles/seccomp/default.json`)
//! as it applies to a container with Docker's default capabilities: an
//! allow-list, everything else fails with EPERM; `personality` only with
//! the harmless values, `clone` only without namespace flags, `socket`
//! without `AF_ALG` and `AF_VSOCK`, no io_uring (its operations would
//! reach the kernel around every rule here: `IORING_OP_SOCKET` makes the
//! sockets `socket` refuses), `clone3` fails with ENOSYS (so that libc
//! falls back to `clone`, whose flags a filter can see). On top of Docker,
//! `ioctl` `TIOCSTI` and `TIOCLINUX` (typing into the terminal) fail with
//! EPERM, and syscalls newer than the list fail with ENOSYS (as runc
//! does), so programs use their fallbacks instead of failing on EPERM.
//! Unlike Docker, granting a capability does not widen the filter: with
//! CAP_SYS_ADMIN, mounts, new namespaces, bpf and perf_event_open still
//! fail; a profile that needs them sets `seccomp = "unconfined"`.
//! `strict` is `default` minus the syscalls that give a process power over
//! others or over the kernel (ptrace, keyrings, bpf, io_uring, namespaces,
//! mounts, chroot, ...). `unconfined` installs nothing.
//!
//! Arguments are compared as the kernel reads them: 32 bits for an `int`
//! (so `socket(0x1_0000_0028)`, which the kernel takes for AF_VSOCK, is
//! refused like `socket(40)`, where a 64-bit comparison would let it
//! through).
//!
//! The filters are built with `seccompiler` for the architecture hutch is
//! built for (x86_64 or aarch64). Every filter first checks the
//! architecture of the call and kills the process on any other: a syscall
//! made through `int 0x80` (32-bit x86, with its own numbers and
//! `socketcall`, whose arguments a filter cannot read) or 32-bit arm never
//! runs, unlike Docker, which allows them. x32 calls (x86_64's
//! architecture with bit 30 set in the number) match no allowed number
//! and fail with EPERM.
//!
//! [`prepare`] compiles the BPF programs before fork;
//! [`SeccompProgram::apply`] installs them in the child with one syscall
//! each, as the last step before execve.
//!
//! `table.rs` holds the syscall lists, `rules.rs` builds and compiles the
//! filters from them; this file has the levels and the compiled program.

use anyhow::{Context, Result, bail};
use seccompiler::SeccompAction;
use serde::{Deserialize, Serialize};

use super::caps::ApplyError;
use rules::{allow_rules, compile, enosys_rules};

mod rules;
mod table;
#[cfg(test)]
mod tests;

/// How much the filter allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompLevel {
    /// Docker's default profile (plus TIOCSTI/TIOCLINUX blocked).
    Default,
    /// `Default` without debugging, keyring, bpf, io_uring, namespace,
    /// mount and other kernel-facing syscalls.
    Strict,
    /// No filter.
    Unconfined,
}

impl std::str::FromStr for SeccompLevel {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<SeccompLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(SeccompLevel::Default),
            "strict" => Ok(SeccompLevel::Strict),
            "unconfined" => Ok(SeccompLevel::Unconfined),
            other => bail!("unknown seccomp level {other:?}: use default, strict or unconfined"),
        }
    }
}

impl std::fmt::Display for SeccompLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SeccompLevel::Default => "default",
            SeccompLevel::Strict => "strict",
            SeccompLevel::Unconfined => "unconfined",
        })
    }
}

/// Compiled filters, ready to install.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    /// Installed in this order (the ENOSYS filter last: among filters
    /// that both return an errno, the one installed last wins).
    filters: Vec<Vec<libc::sock_filter>>,
}

/// Build the filters for `level` (before fork: this allocates).
pub fn prepare(level: SeccompLevel) -> Result<SeccompProgram> {
    let filters = match level {
        SeccompLevel::Unconfined => Vec::new(),
        SeccompLevel::Default | SeccompLevel::Strict => vec![
            compile(
                allow_rules(level)?,
                SeccompAction::Errno(libc::EPERM as u32),
                SeccompAction::Allow,
            )
            .with_context(|| format!("building the {level} seccomp filter"))?,
            compile(
                enosys_rules(),
                SeccompAction::Allow,
                SeccompAction::Errno(libc::ENOSYS as u32),
            )
            .with_context(|| format!("building the {level} seccomp filter"))?,
        ],
    };
    Ok(SeccompProgram { filters })
}

impl SeccompProgram {
    /// Number of BPF instructions of each filter.
    #[cfg(test)]
    pub fn sizes(&self) -> Vec<usize> {
        self.filters.iter().map(Vec::len).collect()
    }

    /// Install the filters in the calling thread; they pass to every
    /// child and survive execve. Needs `no_new_privs` (see
    /// `caps::set_no_new_privs`) or CAP_SYS_ADMIN in the user namespace.
    /// Only syscalls: no allocation. For `Unconfined`, does nothing.
    pub fn apply(&self) -> Result<(), ApplyError> {
        for filter in &self.filters {
            install(filter)?;
        }
        Ok(())
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog) for the calling thread.
fn install(filter: &[libc::sock_filter]) -> Result<(), ApplyError> {
    crate::sys::install_seccomp_filter(filter).map_err(|errno| ApplyError {
        what: "installing the seccomp filter (EACCES: set no_new_privs first, or install it \
               before dropping capabilities)",
        errno,
    })
}
