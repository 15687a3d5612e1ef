//! Catching panics in FUSE handlers. A handler that panics must not kill
//! a session thread, and the container gets `EIO` for that request (the
//! dropped reply answers it). The panic is logged with the operation, the
//! inode and the panic message, but only the first one of each operation:
//! a container that loops on a request that panics cannot flood the log.
//! Later ones are counted and summed up once at unmount.
//!
//! While a handler runs, the process panic hook stays quiet for that
//! thread (it only notes where the panic happened, for the log line);
//! panics anywhere else still reach the hook that was installed before.

use rustix::io::Errno;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Longest panic message kept (bytes); longer ones are cut.
const MAX_MESSAGE: usize = 512;

thread_local! {
    /// Set while this thread runs a guarded handler.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic of this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Install (once per process) the panic hook that stays quiet on threads
/// running a guarded handler and passes every other panic on.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info.location().map(|l| l.to_string());
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// One caught panic, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CaughtPanic {
    pub op: &'static str,
    pub ino: u64,
    pub message: String,
    /// `file:line:col` of the panic, when known.
    pub location: Option<String>,
}

/// The panics caught in the handlers of one mount.
#[derive(Default)]
pub(crate) struct PanicLog {
    /// The first panic of each operation (the logged ones).
    first: Mutex<Vec<CaughtPanic>>,
    /// Every panic caught.
    total: AtomicU64,
}

impl PanicLog {
    /// Run the handler `f` of operation `op` on inode `ino`. A panic in it
    /// is caught and turned into `Err(EIO)`; the first one of each `op` is
    /// logged, later ones only counted.
    pub fn run<T>(&self, op: &'static str, ino: u64, f: impl FnOnce() -> T) -> Result<T, Errno> {
        install_hook();
        let was_guarded = GUARDED.with(|g| g.replace(true));
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        GUARDED.with(|g| g.set(was_guarded));
        r.map_err(|payload| {
            let location = LOCATION.with(|l| l.borrow_mut().take());
            self.record(op, ino, payload.as_ref(), location);
            Errno::IO
        })
    }

    fn record(&self, op: &'static str, ino: u64, payload: &(dyn Any + Send), at: Option<String>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.iter().any(|p| p.op == op) {
            return;
        }
        let message = panic_message(payload);
        tracing::error!(
            op,
            ino,
            "overlay bug: the FUSE {op} request on inode {ino} panicked at {}: {message}; \
             answered EIO (further panics in {op} are counted, not logged; \
             please report this with the command that caused it)",
            at.as_deref().unwrap_or("an unknown place"),
        );
        first.push(CaughtPanic {
            op,
            ino,
            message,
            location: at,
        });
    }

    /// Number of panics caught so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The logged panics: the first of each operation.
    #[cfg(test)]
    pub fn logged(&self) -> Vec<CaughtPanic> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// At unmount: say how many panics were caught beyond the logged ones.
    pub fn report(&self) {
        let logged = self.first.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let total = self.total();
        if total > logged {
            tracing::error!(
                "overlay bug: {total} FUSE requests panicked during this mount \
                 ({logged} logged above), each answered EIO"
            );
        }
    }
}

/// The text of a panic payload (`panic!` with a message gives a `&str` or
/// a `String`), cut to [`MAX_MESSAGE`] bytes.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    };
    if msg.len() <= MAX_MESSAGE {
        return msg;
    }
    let mut end = MAX_MESSAGE;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &msg[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_answers_eio_and_is_recorded() {
        let log = PanicLog::default();
        let r: Result<(), Errno> = log.run("lookup", 7, || panic!("boom in lookup"));
        assert_eq!(r, Err(Errno::IO));
        let logged = log.logged();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].op, "lookup");
        assert_eq!(logged[0].ino, 7);
        assert_eq!(logged[0].message, "boom in lookup");
        let at = logged[0].location.as_deref().unwrap_or_default();
        assert!(at.contains("panic_guard.rs"), "location {at:?}");
        assert_eq!(log.total(), 1);
    }

    #[test]
    fn only_the_first_panic_of_an_operation_is_logged() {
        let log = PanicLog::default();
        for i in 0..100u64 {
            let r: Result<(), Errno> = log.run("read", i, || panic!("read {i}"));
            assert_eq!(r, Err(Errno::IO));
        }
        let r: Result<(), Errno> = log.run("write", 3, || panic!("{}", String::from("w")));
        assert_eq!(r, Err(Errno::IO));
        let logged = log.logged();
        assert_eq!(logged.len(), 2);
        assert_eq!((logged[0].op, logged[0].ino), ("read", 0));
        assert_eq!(logged[0].message, "read 0");
        assert_eq!((logged[1].op, logged[1].message.as_str()), ("write", "w"));
        assert_eq!(log.total(), 101);
    }

    #[test]
    fn a_panic_without_a_message_is_logged_too() {
        let log = PanicLog::default();
        let r: Result<(), Errno> = log.run("fsync", 9, || std::panic::panic_any(42u8));
        assert_eq!(r, Err(Errno::IO));
        assert_eq!(log.logged()[0].message, "(a panic without a message)");
    }

    #[test]
    fn a_handler_that_returns_is_passed_through() {
        let log = PanicLog::default();
        assert_eq!(log.run("getattr", 1, || 42), Ok(42));
        assert_eq!(log.total(), 0);
        assert!(log.logged().is_empty());
    }

    #[test]
    fn long_messages_are_cut() {
        let log = PanicLog::default();
        let long = "é".repeat(MAX_MESSAGE);
        let _ = log.run("setxattr", 2, || panic!("{long}"));
        let m = &log.logged()[0].message;
        assert!(m.len() <= MAX_MESSAGE + 3 && m.ends_with("..."), "{m}");
    }
}
