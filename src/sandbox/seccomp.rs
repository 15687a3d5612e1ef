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

use anyhow::{Context, Result, bail};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::caps::ApplyError;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("hutch's seccomp filters are written for x86_64 and aarch64 only");

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

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

/// A syscall: libc's constant name (`SYS_openat`) and its number on the
/// build architecture.
pub type Syscall = (&'static str, i64);

macro_rules! syscalls {
    ($($nr:ident),* $(,)?) => {
        &[$((stringify!($nr), libc::$nr)),*]
    };
}

/// `io_pgetevents` is missing from libc's tables.
#[cfg(target_arch = "x86_64")]
const SYS_IO_PGETEVENTS: i64 = 333;
#[cfg(target_arch = "aarch64")]
const SYS_IO_PGETEVENTS: i64 = 292;

/// Docker's unconditional allow-list, by topic (syscalls that exist on
/// both x86_64 and aarch64).
const ALLOW_COMMON: &[&[Syscall]] = &[
    // Files: open, read, write, stat, seek, sync.
    syscalls![
        SYS_openat,
        SYS_openat2,
        SYS_close,
        SYS_close_range,
        SYS_read,
        SYS_readv,
        SYS_pread64,
        SYS_preadv,
        SYS_preadv2,
        SYS_write,
        SYS_writev,
        SYS_pwrite64,
        SYS_pwritev,
        SYS_pwritev2,
        SYS_lseek,
        SYS_fstat,
        SYS_newfstatat,
        SYS_statx,
        SYS_statfs,
        SYS_fstatfs,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlinkat,
        SYS_getdents64,
        SYS_getcwd,
        SYS_chdir,
        SYS_fchdir,
        SYS_truncate,
        SYS_ftruncate,
        SYS_fallocate,
        SYS_fadvise64,
        SYS_readahead,
        SYS_fsync,
        SYS_fdatasync,
        SYS_sync,
        SYS_syncfs,
        SYS_sync_file_range,
        SYS_flock,
        SYS_fcntl,
        SYS_dup,
        SYS_dup3,
        SYS_copy_file_range,
        SYS_sendfile,
        SYS_splice,
        SYS_tee,
        SYS_vmsplice,
        SYS_umask,
    ],
    // Directory entries, modes, owners, times.
    syscalls![
        SYS_mkdirat,
        SYS_mknodat,
        SYS_unlinkat,
        SYS_renameat,
        SYS_renameat2,
        SYS_linkat,
        SYS_symlinkat,
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchown,
        SYS_fchownat,
        SYS_utimensat,
    ],
    // Extended attributes.
    syscalls![
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_fgetxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_flistxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
    ],
    // Change notification; file handles (only the harmless half:
    // open_by_handle_at needs CAP_DAC_READ_SEARCH).
    syscalls![
        SYS_inotify_init1,
        SYS_inotify_add_watch,
        SYS_inotify_rm_watch,
        SYS_fanotify_mark,
        SYS_name_to_handle_at,
    ],
    // Memory.
    syscalls![
        SYS_brk,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_mprotect,
        SYS_madvise,
        SYS_mincore,
        SYS_msync,
        SYS_mlock,
        SYS_mlock2,
        SYS_mlockall,
        SYS_munlock,
        SYS_munlockall,
        SYS_remap_file_pages,
        SYS_membarrier,
        SYS_memfd_create,
        SYS_memfd_secret,
        SYS_pkey_alloc,
        SYS_pkey_free,
        SYS_pkey_mprotect,
    ],
    // Processes and threads (clone is conditional, below).
    syscalls![
        SYS_execve,
        SYS_execveat,
        SYS_exit,
        SYS_exit_group,
        SYS_wait4,
        SYS_waitid,
        SYS_set_tid_address,
        SYS_set_robust_list,
        SYS_get_robust_list,
        SYS_rseq,
        SYS_futex,
        SYS_futex_waitv,
        SYS_restart_syscall,
        SYS_prctl,
        SYS_getpid,
        SYS_getppid,
        SYS_gettid,
        SYS_getpgid,
        SYS_setpgid,
        SYS_getsid,
        SYS_setsid,
        SYS_getpriority,
        SYS_setpriority,
        SYS_getrlimit,
        SYS_setrlimit,
        SYS_prlimit64,
        SYS_getrusage,
        SYS_times,
        SYS_ioprio_get,
        SYS_ioprio_set,
        SYS_pidfd_open,
        SYS_pidfd_send_signal,
        SYS_process_mrelease,
    ],
    // Scheduling.
    syscalls![
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_sched_getattr,
        SYS_sched_setattr,
        SYS_sched_getparam,
        SYS_sched_setparam,
        SYS_sched_getscheduler,
        SYS_sched_setscheduler,
        SYS_sched_get_priority_max,
        SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval,
    ],
    // Credentials and self-restriction (the kernel checks the
    // capabilities; these only change the caller).
    syscalls![
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getresuid,
        SYS_getresgid,
        SYS_getgroups,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_setgroups,
        SYS_capget,
        SYS_capset,
        SYS_seccomp,
        SYS_landlock_create_ruleset,
        SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
    ],
    // Signals.
    syscalls![
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigpending,
        SYS_rt_sigsuspend,
        SYS_rt_sigtimedwait,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_rt_sigreturn,
        SYS_sigaltstack,
        SYS_signalfd4,
    ],
    // Clocks and timers (setting the clock needs CAP_SYS_TIME).
    syscalls![
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_clock_nanosleep,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_gettimeofday,
        SYS_nanosleep,
        SYS_getitimer,
        SYS_setitimer,
        SYS_timer_create,
        SYS_timer_delete,
        SYS_timer_gettime,
        SYS_timer_settime,
        SYS_timer_getoverrun,
        SYS_timerfd_create,
        SYS_timerfd_gettime,
        SYS_timerfd_settime,
    ],
    // Waiting for events.
    syscalls![
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_ppoll,
        SYS_pselect6,
        SYS_eventfd2,
        SYS_pipe2,
    ],
    // Asynchronous I/O (io_pgetevents is added from its own constant).
    // Not io_uring: its operations (IORING_OP_SOCKET, IORING_OP_OPENAT...)
    // reach the kernel without passing through this filter, so an
    // io_uring is a route around every rule below; Docker 25+ denies it
    // too.
    syscalls![
        SYS_io_setup,
        SYS_io_destroy,
        SYS_io_submit,
        SYS_io_cancel,
        SYS_io_getevents,
    ],
    // Sockets (socket itself is conditional, below).
    syscalls![
        SYS_socketpair,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_connect,
        SYS_shutdown,
        SYS_getsockname,
        SYS_getpeername,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_sendto,
        SYS_sendmsg,
        SYS_sendmmsg,
        SYS_recvfrom,
        SYS_recvmsg,
        SYS_recvmmsg,
    ],
    // System V IPC and POSIX message queues (namespaced by the IPC ns).
    syscalls![
        SYS_msgget,
        SYS_msgctl,
        SYS_msgsnd,
        SYS_msgrcv,
        SYS_semget,
        SYS_semctl,
        SYS_semop,
        SYS_semtimedop,
        SYS_shmget,
        SYS_shmctl,
        SYS_shmat,
        SYS_shmdt,
        SYS_mq_open,
        SYS_mq_unlink,
        SYS_mq_timedsend,
        SYS_mq_timedreceive,
        SYS_mq_notify,
        SYS_mq_getsetattr,
    ],
    // System information.
    syscalls![SYS_uname, SYS_sysinfo, SYS_getrandom, SYS_getcpu],
];

/// Docker's allow-list entries that only x86_64 has: the legacy
/// path-based calls (aarch64 has only their `*at` forms) and x86 TLS/LDT.
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH: &[&[Syscall]] = &[
    syscalls![
        SYS_open,
        SYS_creat,
        SYS_stat,
        SYS_lstat,
        SYS_access,
        SYS_readlink,
        SYS_getdents,
        SYS_mkdir,
        SYS_rmdir,
        SYS_mknod,
        SYS_unlink,
        SYS_rename,
        SYS_link,
        SYS_symlink,
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_utime,
        SYS_utimes,
        SYS_futimesat,
        SYS_dup2,
        SYS_pipe,
        SYS_poll,
        SYS_select,
        SYS_epoll_create,
        SYS_epoll_wait,
        SYS_epoll_ctl_old,
        SYS_epoll_wait_old,
        SYS_eventfd,
        SYS_signalfd,
        SYS_inotify_init,
        SYS_fork,
        SYS_vfork,
        SYS_pause,
        SYS_alarm,
        SYS_time,
        SYS_getpgrp,
    ],
    syscalls![
        SYS_arch_prctl,
        SYS_modify_ldt,
        SYS_get_thread_area,
        SYS_set_thread_area,
    ],
];
/// aarch64 needs nothing beyond the common list (Docker's arm entries are
/// for 32-bit arm).
#[cfg(target_arch = "aarch64")]
const ALLOW_ARCH: &[&[Syscall]] = &[];

/// Allowed by Docker on kernels >= 4.8 (where seccomp runs before ptrace
/// can change the syscall), and `chroot` for CAP_SYS_CHROOT, which
/// Docker's default capabilities include. `strict` drops them all.
const ALLOW_DEFAULT_ONLY: &[Syscall] = syscalls![
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_chroot,
];

/// What `strict` removes from `default` (most of it is not in `default`
/// either; listed so that the test below proves it stays out).
pub const STRICT_DENY: &[Syscall] = syscalls![
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_unshare,
    SYS_setns,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_sethostname,
    SYS_setdomainname,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_fanotify_init,
    SYS_quotactl,
    SYS_acct,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
];

/// Namespace flags of clone(2): CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET (Docker's 2114060288).
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Socket families `socket(2)` refuses, as Docker does: AF_ALG (the
/// kernel's crypto API, a large attack surface no container needs) and
/// AF_VSOCK (the host's hypervisor sockets).
#[allow(clippy::unnecessary_cast)]
pub const DENIED_SOCKET_FAMILIES: [u64; 2] = [libc::AF_ALG as u64, libc::AF_VSOCK as u64];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Syscall numbers with the same value on every architecture (the
/// unified table since Linux 5.1) added after Docker's list: from
/// cachestat (451) through file_setattr (469) and one more. They fail
/// with ENOSYS, "not implemented", so callers fall back (e.g. glibc's
/// fchmodat from fchmodat2).
const NEWER_SYSCALLS: std::ops::RangeInclusive<i64> = 451..=470;

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
fn allow_rules(level: SeccompLevel) -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
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
fn enosys_rules() -> BTreeMap<i64, Vec<SeccompRule>> {
    std::iter::once(libc::SYS_clone3)
        .chain(NEWER_SYSCALLS)
        .map(|nr| (nr, Vec::new()))
        .collect()
}

fn compile(
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

/// Compiled filters, ready to install.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    level: SeccompLevel,
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
    Ok(SeccompProgram { level, filters })
}

impl SeccompProgram {
    pub fn level(&self) -> SeccompLevel {
        self.level
    }

    /// Number of BPF instructions of each filter (for `--verbose`).
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

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
