//! The caller's terminal, kept out of the container's reach.
//!
//! Without `-t`, a command that gets hutch's own terminal as its stdin,
//! stdout or stderr can change its settings (`stty raw -echo`, TCSETS),
//! which outlast the container, and can read what the user types later.
//! [`TerminalGuard`] puts the settings back when the container exits,
//! whatever it did. Profiles with `share_terminal = false` (`untrusted`,
//! `install`) go further: [`relay`] gives the command pipes instead, and
//! threads of hutch copy between them and the terminal, so the command
//! never holds the terminal at all.

use crate::sys::std_fd;
use anyhow::{Context, Result};
use rustix::termios::{OptionalActions, Termios};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

fn is_terminal(fd: i32) -> bool {
    rustix::termios::isatty(std_fd(fd))
}

/// The settings of the terminals on hutch's 0, 1 and 2, restored on drop.
pub struct TerminalGuard {
    saved: Vec<(i32, Termios)>,
}

impl TerminalGuard {
    pub fn save() -> TerminalGuard {
        let saved = (0..3)
            .filter_map(|fd| {
                let t = rustix::termios::tcgetattr(std_fd(fd)).ok()?;
                Some((fd, t))
            })
            .collect();
        TerminalGuard { saved }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        for (fd, t) in &self.saved {
            let _ = rustix::termios::tcsetattr(std_fd(*fd), OptionalActions::Now, t);
        }
    }
}

/// Pipes standing in for the terminals among hutch's 0, 1 and 2.
pub struct Relayed {
    /// The command's ends, to be placed on 0, 1, 2 (None: that descriptor
    /// is not a terminal, or stdin is not wanted, and is left as it is).
    pub child: [Option<OwnedFd>; 3],
    outputs: Vec<JoinHandle<()>>,
}

impl Relayed {
    /// Wait until the command's side of stdout and stderr is closed and
    /// everything it wrote has reached the terminal.
    pub fn finish(self) {
        drop(self.child);
        for t in self.outputs {
            let _ = t.join();
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe for the container's stdio")
}

/// Replace each terminal among 0, 1, 2 with a pipe relayed by a thread;
/// stdin only when the command reads it (`-i`).
pub fn relay(stdin: bool) -> Result<Relayed> {
    let mut child: [Option<OwnedFd>; 3] = [None, None, None];
    let mut outputs = Vec::new();
    if stdin && is_terminal(0) {
        let (r, w) = pipe()?;
        child[0] = Some(r);
        // Ends with hutch: a read of the terminal cannot be interrupted,
        // and input typed after the command exits is not taken.
        std::thread::Builder::new()
            .name("hutch-stdin".into())
            .spawn(move || while super::pty::copy(std_fd(0), w.as_fd()) {})
            .context("starting the stdin relay")?;
    }
    for fd in [1, 2] {
        if !is_terminal(fd) {
            continue;
        }
        let (r, w) = pipe()?;
        child[fd as usize] = Some(w);
        outputs.push(
            std::thread::Builder::new()
                .name(format!("hutch-out{fd}"))
                .spawn(move || while super::pty::copy(r.as_fd(), std_fd(fd)) {})
                .context("starting the output relay")?,
        );
    }
    Ok(Relayed { child, outputs })
}
