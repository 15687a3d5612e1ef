//! `-t`: the container's pseudo-terminal, relayed to hutch's own terminal
//! in raw mode, with window size changes passed on.
//!
//! As in Podman (crun), the pty belongs to the container: its init opens
//! `/dev/ptmx` of the container's own devpts once it is mounted (rootfs.rs),
//! binds the terminal side onto `/dev/console`, gives the terminal side to
//! the command and sends the controller side to hutch over a socket pair
//! (child.rs). The command's terminal is `/dev/pts/N` in its own view, and
//! nothing of the host's devpts reaches the container.

use anyhow::{Context, Result};
use rustix::termios::{OptionalActions, Termios, Winsize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The controller side of the container's pty, received from its init.
pub struct Pty {
    pub controller: OwnedFd,
}

/// The window size of hutch's terminal (80x24 when hutch has none).
pub fn window_size() -> Winsize {
    rustix::termios::tcgetwinsize(rustix::stdio::stdin()).unwrap_or(Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

impl Pty {
    /// Copy hutch's terminal size to the container's pty.
    pub fn resize(&self) {
        let _ = rustix::termios::tcsetwinsize(&self.controller, window_size());
    }
}

/// hutch's terminal in raw mode until dropped.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = rustix::stdio::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(stdin, OptionalActions::Now, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, t);
        }
    }
}

pub(super) fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 16384];
    match rustix::io::read(from, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match rustix::io::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
        Err(rustix::io::Errno::INTR) => true,
        Err(_) => false,
    }
}

/// Relay stdin → pty (background thread, ends with hutch) and pty →
/// stdout (the returned thread ends when the container side closes).
pub fn relay(controller: &OwnedFd) -> Result<std::thread::JoinHandle<()>> {
    let input = controller.try_clone().context("duplicating the pty fd")?;
    std::thread::Builder::new()
        .name("hutch-tty-in".into())
        .spawn(move || while copy(rustix::stdio::stdin(), input.as_fd()) {})
        .context("starting the terminal input relay")?;
    let output = controller.try_clone().context("duplicating the pty fd")?;
    std::thread::Builder::new()
        .name("hutch-tty-out".into())
        .spawn(move || {
            while copy(output.as_fd(), rustix::stdio::stdout()) {}
            let _ = output.as_raw_fd();
        })
        .context("starting the terminal output relay")
}

/// hutch's terminal relayed to a container's pty: raw mode, the window
/// size now and (through `resize_target`, which the signal thread reads)
/// on every SIGWINCH.
pub struct Attached {
    controller: OwnedFd,
    raw: RawMode,
    output: std::thread::JoinHandle<()>,
}

/// Attach hutch's terminal to the pty `controller`.
pub fn attach(
    controller: OwnedFd,
    resize_target: &std::sync::OnceLock<OwnedFd>,
) -> Result<Attached> {
    let raw = RawMode::enter();
    let _ = resize_target.set(controller.try_clone().context("duplicating the pty")?);
    let p = Pty { controller };
    // A resize before now reached no pty.
    p.resize();
    let output = relay(&p.controller)?;
    Ok(Attached {
        controller: p.controller,
        raw,
        output,
    })
}

impl Attached {
    /// Wait until everything the container wrote is shown, then give the
    /// terminal its settings back.
    pub fn finish(self) {
        let _ = self.output.join();
        drop(self.controller);
        drop(self.raw);
    }
}

/// Forward the signals in `forwarded` (blocked in every thread) to `to`,
/// from a thread; SIGWINCH instead resizes the pty in `resize_target`
/// once there is one. Returns where to put that pty.
pub fn forward_signals(
    to: i32,
    forwarded: crate::sys::SigSet,
) -> Result<std::sync::Arc<std::sync::OnceLock<OwnedFd>>> {
    let resize_target = std::sync::Arc::new(std::sync::OnceLock::<OwnedFd>::new());
    let resize_in_thread = resize_target.clone();
    std::thread::Builder::new()
        .name("hutch-signals".into())
        .spawn(move || {
            loop {
                let sig = crate::sys::wait_signal(&forwarded);
                if sig == libc::SIGWINCH {
                    if let Some(c) = resize_in_thread.get() {
                        let size = rustix::termios::tcgetwinsize(rustix::stdio::stdin());
                        if let Ok(size) = size {
                            let _ = rustix::termios::tcsetwinsize(c.as_fd(), size);
                        }
                    }
                    continue;
                }
                crate::sys::kill(to, sig);
            }
        })
        .context("starting the signal relay")?;
    Ok(resize_target)
}
