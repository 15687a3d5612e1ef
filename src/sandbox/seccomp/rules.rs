//! Building the seccomp filters from the tables: the rules of each
//! level (which syscalls, and which argument values of ioctl, socket,
//! personality and clone) and their compilation to BPF with
//! `seccompiler` for the build architecture.

use super::SeccompLevel;
use super::table::{
    ALLOW_ARCH, ALLOW_COMMON, ALLOW_DEFAULT_ONLY, CLONE_NAMESPACE_FLAGS, DENIED_SOCKET_FAMILIES,
    NEWER_SYSCALLS, PERSONALITY_ALLOWED, STRICT_DENY, SYS_IO_PGETEVENTS,
};
use anyhow::{Context, Result, bail};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("hutch's seccomp filters are written for x86_64 and aarch64 only");

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    // Every argument compared here is a 32-bit int in the kernel
    // (ioctl's cmd, personality, socket's domain, clone's flags, of which
    // the kernel uses the low 32 bits), so compare 32 bits, as the kernel
    // sees them.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .context("building a seccomp condition")
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule> {
    SeccompRule::new(conditions).context("building a seccomp rule")
}

/// The allow-list of `level` (not `Unconfined`): syscall number -> rules,
/// where an empty rule list allows the syscall with any arguments and
/// otherwise one matching rule allows it.
pub(super) fn allow_rules(level: SeccompLevel) -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for group in ALLOW_COMMON.iter().chain(ALLOW_ARCH) {
        for &(_, nr) in *group {
            map.insert(nr, Vec::new());
        }
    }
    map.insert(SYS_IO_PGETEVENTS, Vec::new());
    for &(_, nr) in ALLOW_DEFAULT_ONLY {
        map.insert(nr, Vec::new());
    }
    // ioctl: anything but pushing input into a terminal (TIOCSTI) and the
    // Linux console's grab bag (TIOCLINUX, which can do the same).
    // libc's request type is c_ulong with glibc and c_int with musl.
    #[allow(clippy::unnecessary_cast)]
    let (tiocsti, tioclinux) = (libc::TIOCSTI as u64, libc::TIOCLINUX as u64);
    map.insert(
        libc::SYS_ioctl,
        vec![rule(vec![
            cond(1, SeccompCmpOp::Ne, tiocsti)?,
            cond(1, SeccompCmpOp::Ne, tioclinux)?,
        ])?],
    );
    // socket: any family but those of DENIED_SOCKET_FAMILIES (one rule,
    // its conditions ANDed). socketpair needs no rule: neither family
    // implements it.
    map.insert(
        libc::SYS_socket,
        vec![rule(
            DENIED_SOCKET_FAMILIES
                .iter()
                .map(|&f| cond(0, SeccompCmpOp::Ne, f))
                .collect::<Result<_>>()?,
        )?],
    );
    // personality: only the values that change nothing dangerous.
    map.insert(
        libc::SYS_personality,
        PERSONALITY_ALLOWED
            .iter()
            .map(|&v| rule(vec![cond(0, SeccompCmpOp::Eq, v)?]))
            .collect::<Result<_>>()?,
    );
    // clone: threads and processes, no new namespaces.
    map.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
            0,
        )?])?],
    );
    if level == SeccompLevel::Strict {
        for &(_, nr) in STRICT_DENY {
            map.remove(&nr);
        }
    }
    Ok(map)
}

/// The second filter: syscalls that must fail with ENOSYS rather than
/// EPERM (clone3, whose flags live in memory a filter cannot read, and the
/// syscalls newer than the list).
pub(super) fn enosys_rules() -> BTreeMap<i64, Vec<SeccompRule>> {
    std::iter::once(libc::SYS_clone3)
        .chain(NEWER_SYSCALLS)
        .map(|nr| (nr, Vec::new()))
        .collect()
}

pub(super) fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<Vec<libc::sock_filter>> {
    let filter = SeccompFilter::new(rules, mismatch, matched, ARCH)
        .context("building the seccomp filter")?;
    let program: BpfProgram = filter
        .try_into()
        .context("compiling the seccomp filter to BPF")?;
    if program.len() > usize::from(u16::MAX) {
        bail!(
            "the seccomp filter has {} instructions, too many",
            program.len()
        );
    }
    Ok(program
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}
