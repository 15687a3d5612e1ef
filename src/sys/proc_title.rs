//! The process's own title and environment block as /proc shows them.

use std::ffi::CString;

/// Two fields of /proc/self/stat (numbered as proc(5) numbers them,
/// from 1), as addresses.
fn stat_fields(a: usize, b: usize) -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // after_comm starts at field 3.
    let get = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    Some((get(a)?, get(b)?))
}

/// Rename the calling process as `ps` shows it: the thread name and the
/// command line (which for the container's init would otherwise be hutch's
/// own, with host paths). The argument area is overwritten in place, as
/// setproctitle does; the process must not read its argv afterwards.
pub fn set_process_title(title: &str) {
    if let Ok(name) = CString::new(title) {
        let _ = rustix::thread::set_name(&name);
    }
    // Fields 48 and 49: start and end of the argv area.
    let Some((start, end)) = stat_fields(48, 49) else {
        return;
    };
    if end <= start + 1 {
        return;
    }
    let len = end - start;
    let t = title.as_bytes();
    let n = t.len().min(len - 1);
    // SAFETY: [start, end) is this process's own argv area, mapped and
    // writable (it is on the initial stack); nothing holds references into
    // it (hutch never keeps argv pointers), and we write only within it.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(t.as_ptr(), p, n);
    }
}

/// Overwrite the initial environment block (what /proc/PID/environ shows)
/// with zeros, so a forked child that never executes anything keeps none
/// of its caller's variables in it. The process must not read its
/// environment afterwards (the launcher's children never do).
pub fn scrub_environment() {
    // Fields 50 and 51: start and end of the environment area.
    let Some((start, end)) = stat_fields(50, 51) else {
        return;
    };
    if end <= start {
        return;
    }
    // SAFETY: [start, end) is this process's own environment area on its
    // initial stack, mapped and writable; the only references into it are
    // libc's `environ` entries, which are never read after this (see
    // above), and zeros leave them valid empty strings.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, end - start);
    }
}
