//! Unit tests of the seccomp filters: the tables, the verdicts of the
//! compiled BPF for chosen calls, and the filters installed in forked
//! children.

use super::table::{
    ALLOW_ARCH, ALLOW_COMMON, ALLOW_DEFAULT_ONLY, CLONE_NAMESPACE_FLAGS, PERSONALITY_ALLOWED,
    STRICT_DENY, SYS_IO_PGETEVENTS,
};
use super::*;
use crate::sys::testing::{clone_and_reap, in_child, personality, probe};

fn allowed(level: SeccompLevel, nr: i64) -> bool {
    allow_rules(level).unwrap().contains_key(&nr)
}

#[test]
fn every_level_builds() {
    for level in [
        SeccompLevel::Default,
        SeccompLevel::Strict,
        SeccompLevel::Unconfined,
    ] {
        let p = prepare(level).unwrap();
        for n in p.sizes() {
            assert!(n > 3 && n < 4096, "{level}: {n} instructions");
        }
    }
    assert!(
        prepare(SeccompLevel::Unconfined)
            .unwrap()
            .sizes()
            .is_empty()
    );
    assert_eq!(prepare(SeccompLevel::Strict).unwrap().sizes().len(), 2);
}

#[test]
fn levels_parse() {
    assert_eq!(
        "Strict".parse::<SeccompLevel>().unwrap(),
        SeccompLevel::Strict
    );
    assert_eq!(
        "default".parse::<SeccompLevel>().unwrap(),
        SeccompLevel::Default
    );
    let e = "off".parse::<SeccompLevel>().unwrap_err().to_string();
    assert!(e.contains("unconfined"), "{e}");
    let json = serde_json::to_string(&SeccompLevel::Unconfined).unwrap();
    assert_eq!(json, "\"unconfined\"");
}

#[test]
fn lists_have_no_duplicates_and_no_overlap() {
    let mut seen = std::collections::HashSet::new();
    for group in ALLOW_COMMON.iter().chain(ALLOW_ARCH) {
        for &(name, nr) in *group {
            assert!(seen.insert(nr), "{name} listed twice");
        }
    }
    for &(name, nr) in ALLOW_DEFAULT_ONLY {
        assert!(seen.insert(nr), "{name} listed twice");
    }
    assert!(seen.insert(SYS_IO_PGETEVENTS));
    for nr in enosys_rules().keys() {
        assert!(!seen.contains(nr), "syscall {nr} both allowed and ENOSYS");
    }
}

#[test]
fn strict_drops_the_deny_list_and_default_the_privileged_calls() {
    for &(name, nr) in STRICT_DENY {
        assert!(
            !allowed(SeccompLevel::Strict, nr),
            "{name} allowed in strict"
        );
    }
    for nr in [
        libc::SYS_keyctl,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_bpf,
        libc::SYS_open_by_handle_at,
        libc::SYS_kexec_load,
        libc::SYS_userfaultfd,
    ] {
        assert!(
            !allowed(SeccompLevel::Default, nr),
            "{nr} allowed in default"
        );
    }
    for nr in [libc::SYS_ptrace, libc::SYS_chroot] {
        assert!(allowed(SeccompLevel::Default, nr));
    }
    for nr in [
        libc::SYS_read,
        libc::SYS_execve,
        libc::SYS_clone,
        libc::SYS_ioctl,
        libc::SYS_setuid,
    ] {
        assert!(allowed(SeccompLevel::Strict, nr));
    }
}

/// AUDIT_ARCH_* values (linux/audit.h): the build architecture and
/// the 32-bit ABI a process of that architecture can also call.
#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "x86_64")]
const COMPAT_AUDIT_ARCH: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "aarch64")]
const COMPAT_AUDIT_ARCH: u32 = 0x4000_0028;

/// `seccomp_data` as the kernel lays it out: nr, arch, instruction
/// pointer, six arguments.
fn seccomp_data(arch: u32, nr: i64, args: &[u64]) -> [u8; 64] {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    data
}

/// Run one classic BPF program on `data`, as the kernel's seccomp
/// does; only the instructions seccompiler emits are known (any other
/// fails the test).
fn run_bpf(program: &[libc::sock_filter], data: &[u8; 64]) -> u32 {
    const LD_W_ABS: u16 = 0x20;
    const ALU_AND_K: u16 = 0x54;
    const JA: u16 = 0x05;
    const JEQ_K: u16 = 0x15;
    const JGT_K: u16 = 0x25;
    const JGE_K: u16 = 0x35;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = program[pc];
        pc += 1;
        let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
        match i.code {
            LD_W_ABS => {
                let at = i.k as usize;
                acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ_K => pc += jump(acc == i.k),
            JGT_K => pc += jump(acc > i.k),
            JGE_K => pc += jump(acc >= i.k),
            JSET_K => pc += jump(acc & i.k != 0),
            RET_K => return i.k,
            code => panic!("BPF instruction {code:#x} unknown to this test"),
        }
    }
}

/// What the installed filters of `level` answer, combined as the
/// kernel does: the most restrictive action wins, and among equal
/// actions the filter installed last.
fn verdict(level: SeccompLevel, arch: u32, nr: i64, args: &[u64]) -> u32 {
    let data = seccomp_data(arch, nr, args);
    let program = prepare(level).unwrap();
    let mut answer = libc::SECCOMP_RET_ALLOW;
    for filter in program.filters.iter().rev() {
        let ret = run_bpf(filter, &data);
        // The kernel compares actions as signed (KILL_PROCESS is
        // 0x80000000, the most restrictive).
        if ((ret & libc::SECCOMP_RET_ACTION_FULL) as i32)
            < ((answer & libc::SECCOMP_RET_ACTION_FULL) as i32)
        {
            answer = ret;
        }
    }
    answer
}

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

fn default_says(nr: i64, args: &[u64]) -> u32 {
    verdict(SeccompLevel::Default, NATIVE_AUDIT_ARCH, nr, args)
}

#[test]
fn default_denies_io_uring_as_docker_25() {
    for nr in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ] {
        assert!(!allowed(SeccompLevel::Default, nr), "{nr} allowed");
        assert_eq!(default_says(nr, &[1, 0]), EPERM, "io_uring syscall {nr}");
        assert_eq!(
            verdict(SeccompLevel::Strict, NATIVE_AUDIT_ARCH, nr, &[1, 0]),
            EPERM
        );
    }
    // Control: the older asynchronous I/O stays (Docker allows it; its
    // operations are only reads and writes of descriptors).
    assert_eq!(default_says(libc::SYS_io_setup, &[1, 0]), ALLOW);
}

#[test]
fn default_denies_the_routes_around_it() {
    let denied: &[(&str, i64, &[u64])] = &[
        // The new mount API.
        ("fsopen", libc::SYS_fsopen, &[0, 0]),
        ("fsconfig", libc::SYS_fsconfig, &[3, 6, 0, 0, 0]),
        ("fsmount", libc::SYS_fsmount, &[3, 0, 0]),
        ("fspick", libc::SYS_fspick, &[0, 0, 0]),
        ("move_mount", libc::SYS_move_mount, &[3, 0, 0, 0, 4]),
        ("open_tree", libc::SYS_open_tree, &[0, 0, 0]),
        ("mount_setattr", libc::SYS_mount_setattr, &[3, 0, 0, 0, 32]),
        ("mount", libc::SYS_mount, &[0, 0, 0, 0, 0]),
        // Namespaces.
        ("unshare", libc::SYS_unshare, &[libc::CLONE_NEWUSER as u64]),
        ("setns", libc::SYS_setns, &[3, 0]),
        // Kernel-facing interfaces.
        ("userfaultfd", libc::SYS_userfaultfd, &[1]),
        ("perf_event_open", libc::SYS_perf_event_open, &[0, 0, 0]),
        ("bpf", libc::SYS_bpf, &[0, 0, 0]),
        ("keyctl", libc::SYS_keyctl, &[0, 0, 0]),
        ("add_key", libc::SYS_add_key, &[0, 0, 0, 0, 0]),
        ("request_key", libc::SYS_request_key, &[0, 0, 0, 0]),
        ("kexec_load", libc::SYS_kexec_load, &[0, 0, 0, 0]),
        (
            "kexec_file_load",
            libc::SYS_kexec_file_load,
            &[0, 0, 0, 0, 0],
        ),
        ("open_by_handle_at", libc::SYS_open_by_handle_at, &[3, 0, 0]),
        ("reboot", libc::SYS_reboot, &[0, 0, 0, 0]),
        ("init_module", libc::SYS_init_module, &[0, 0, 0]),
        ("pidfd_getfd", libc::SYS_pidfd_getfd, &[3, 3, 0]),
        ("kcmp", libc::SYS_kcmp, &[0, 0, 0, 0, 0]),
    ];
    for &(name, nr, args) in denied {
        assert_eq!(default_says(nr, args), EPERM, "{name}");
    }
    // Controls: the calls Docker allows (as Docker, ptrace and
    // process_vm_* since kernel 4.8) pass with any arguments.
    for (name, nr) in [
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("openat", libc::SYS_openat),
    ] {
        assert_eq!(default_says(nr, &[0, 0, 0]), ALLOW, "{name}");
    }
}

#[test]
fn default_checks_clone_flags_and_hides_clone3() {
    let sigchld = libc::SIGCHLD as u64;
    // fork and threads pass.
    assert_eq!(default_says(libc::SYS_clone, &[sigchld]), ALLOW);
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(default_says(libc::SYS_clone, &[thread]), ALLOW);
    // Every namespace flag is refused, alone or with others, also with
    // bits above 32 set (the kernel ignores them).
    for flag in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        let flag = flag as u64;
        assert_eq!(flag & CLONE_NAMESPACE_FLAGS, flag, "{flag:#x} in the mask");
        for args in [[flag | sigchld], [flag | thread], [flag | 1 << 40]] {
            assert_eq!(default_says(libc::SYS_clone, &args), EPERM, "{args:x?}");
        }
    }
    // clone3 keeps its flags in memory: ENOSYS whatever they are, so
    // libc falls back to clone.
    assert_eq!(default_says(libc::SYS_clone3, &[0, 88]), ENOSYS);
}

#[test]
fn default_refuses_socket_families_as_docker_and_in_32_bits() {
    for family in [libc::AF_VSOCK, libc::AF_ALG] {
        let family = family as u64;
        assert_eq!(default_says(libc::SYS_socket, &[family, 1, 0]), EPERM);
        // The kernel reads an int: bits above 32 do not hide the family.
        assert_eq!(
            default_says(libc::SYS_socket, &[family | 1 << 32, 1, 0]),
            EPERM,
            "{family} with high bits"
        );
    }
    // Controls: the families around them and the usual ones pass
    // (AF_PACKET needs CAP_NET_RAW, which the kernel checks; netlink
    // as in Docker).
    for family in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
        libc::AF_PACKET,
        37,
        39,
        41,
    ] {
        assert_eq!(
            default_says(libc::SYS_socket, &[family as u64, 1, 0]),
            ALLOW,
            "family {family}"
        );
    }
}

#[test]
fn default_limits_personality_and_terminal_ioctls_in_32_bits() {
    let read_implies_exec = 0x0040_0000;
    let addr_no_randomize = 0x0004_0000;
    for value in [
        read_implies_exec,
        addr_no_randomize,
        read_implies_exec | 1 << 32,
    ] {
        assert_eq!(
            default_says(libc::SYS_personality, &[value]),
            EPERM,
            "{value:#x}"
        );
    }
    for value in PERSONALITY_ALLOWED {
        assert_eq!(default_says(libc::SYS_personality, &[value]), ALLOW);
    }
    #[allow(clippy::unnecessary_cast)]
    let tiocsti = libc::TIOCSTI as u64;
    assert_eq!(default_says(libc::SYS_ioctl, &[0, tiocsti]), EPERM);
    assert_eq!(
        default_says(libc::SYS_ioctl, &[0, tiocsti | 1 << 32]),
        EPERM
    );
    #[allow(clippy::unnecessary_cast)]
    let tiocgwinsz = libc::TIOCGWINSZ as u64;
    assert_eq!(default_says(libc::SYS_ioctl, &[0, tiocgwinsz]), ALLOW);
}

#[test]
fn foreign_abis_are_killed_or_refused() {
    for level in [SeccompLevel::Default, SeccompLevel::Strict] {
        // Any call through the 32-bit ABI (int 0x80 on x86_64), even
        // one whose number is an allowed native call (x86_64's 1 is
        // write, i386's 1 is exit; i386's socketcall is 102, its unshare
        // 310, which is x86_64's process_vm_readv).
        for nr in [0, 1, 102, 310] {
            assert_eq!(verdict(level, COMPAT_AUDIT_ARCH, nr, &[]), KILL, "{level}");
        }
        assert_eq!(verdict(level, 0, 1, &[]), KILL, "unknown arch");
        // Control: the same numbers through the native ABI pass.
        assert_eq!(verdict(level, NATIVE_AUDIT_ARCH, 1, &[]), ALLOW);
    }
    // x32: the native arch with bit 30 set; getpid, write and the
    // socket call of x32 all fail (the kernel sees x32 numbers only
    // where CONFIG_X86_X32_ABI is on).
    #[cfg(target_arch = "x86_64")]
    for nr in [libc::SYS_getpid, libc::SYS_write, libc::SYS_socket] {
        assert_eq!(default_says(0x4000_0000 | nr, &[1, 1, 0]), EPERM);
        assert_eq!(default_says(nr, &[1, 1, 0]), ALLOW);
    }
}

/// Whether this process may install a filter without no_new_privs.
fn can_install_without_nnp() -> bool {
    super::super::caps::capget()
        .map(|s| s.effective & caps::Capability::CAP_SYS_ADMIN.bitmask() != 0)
        .unwrap_or(false)
}

#[test]
fn strict_blocks_keyrings_and_namespaces_in_a_child() {
    let program = prepare(SeccompLevel::Strict).unwrap();
    let nnp = !can_install_without_nnp();
    let code = in_child(|| {
        if nnp && super::super::caps::set_no_new_privs().is_err() {
            return 10;
        }
        if program.apply().is_err() {
            return 11;
        }
        if probe::keyctl() != libc::EPERM {
            return 12;
        }
        if probe::unshare_user() != libc::EPERM {
            return 13;
        }
        if probe::ptrace_traceme() != libc::EPERM {
            return 14;
        }
        if probe::clone3_null() != libc::ENOSYS {
            return 15;
        }
        // fchmodat2 (452), with a NULL path: the filter answers first.
        if probe::fchmodat2_null() != libc::ENOSYS {
            return 16;
        }
        let pid = probe::getpid();
        if pid <= 0 || pid != libc::c_long::from(std::process::id() as i32) {
            return 17;
        }
        0
    });
    assert_eq!(code, 0, "child step {code} failed");
}

/// A pseudo-terminal master.
fn open_pty() -> Result<std::os::fd::OwnedFd, rustix::io::Errno> {
    crate::sys::testing::open_pty_master()
}

#[test]
fn default_blocks_terminal_injection_but_not_other_ioctls() {
    use std::os::fd::AsFd;
    // The test host has pseudo-terminals (devpts); without one this
    // test could prove nothing, so it fails instead of passing empty.
    let pty = open_pty().expect("opening /dev/ptmx for a pseudo-terminal");
    let fd = pty.as_fd();
    let program = prepare(SeccompLevel::Default).unwrap();
    let nnp = !can_install_without_nnp();
    let code = in_child(|| {
        if nnp && super::super::caps::set_no_new_privs().is_err() {
            return 10;
        }
        if program.apply().is_err() {
            return 11;
        }
        use libc::c_long;
        if probe::tiocsti(fd) != libc::EPERM {
            return 12;
        }
        // Without the filter, TIOCLINUX on a pty fails with EINVAL
        // (it is not a console): EPERM proves the filter.
        if probe::tioclinux(fd) != libc::EPERM {
            return 13;
        }
        if probe::tiocgwinsz(fd) != 0 {
            return 14;
        }
        // Namespaces stay closed under the default level too.
        if probe::unshare_user() != libc::EPERM {
            return 15;
        }
        // A thread-style clone without namespace flags passes the
        // filter: fork via clone(SIGCHLD) works.
        if clone_and_reap(c_long::from(libc::SIGCHLD)).is_err() {
            return 16;
        }
        // clone with CLONE_NEWNET is refused.
        if clone_and_reap(c_long::from(libc::SIGCHLD | libc::CLONE_NEWNET)) != Err(libc::EPERM) {
            return 17;
        }
        // personality: a query passes, READ_IMPLIES_EXEC does not.
        if personality(0xffff_ffff).is_err() {
            return 18;
        }
        if personality(0x0040_0000) != Err(libc::EPERM) {
            return 19;
        }
        0
    });
    assert_eq!(code, 0, "child step {code} failed");
}

#[test]
fn default_blocks_io_uring_and_x32_in_a_child() {
    let program = prepare(SeccompLevel::Default).unwrap();
    let nnp = !can_install_without_nnp();
    let code = in_child(|| {
        if nnp && super::super::caps::set_no_new_privs().is_err() {
            return 10;
        }
        if program.apply().is_err() {
            return 11;
        }
        // io_uring_setup with NULL params: the filter answers first.
        if probe::io_uring_setup_null() != libc::EPERM {
            return 12;
        }
        #[cfg(target_arch = "x86_64")]
        if probe::x32_getpid() != libc::EPERM {
            return 13;
        }
        if probe::getpid() <= 0 {
            return 14;
        }
        0
    });
    assert_eq!(code, 0, "child step {code} failed");
}

#[test]
fn unconfined_installs_nothing() {
    let program = prepare(SeccompLevel::Unconfined).unwrap();
    let code = in_child(|| match program.apply() {
        Ok(()) if std::os::unix::process::parent_id() > 0 => 0,
        _ => 1,
    });
    assert_eq!(code, 0);
}
