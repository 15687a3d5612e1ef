//! What a build prints on stderr: one line per step as it starts
//! (`[2/7] RUN apt-get install -y curl`), `CACHED` for a reused step, the
//! RUN's own output in between, and the time a step took when it ran.
//! With `-q`, nothing (the caller prints the image ID).

use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) quiet: bool,
    pub(crate) total: usize,
}

impl Progress {
    fn line(&self, text: &str) {
        if !self.quiet {
            // One write per line, so parallel stages do not mix lines.
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("{text}\n").as_bytes());
        }
    }

    /// A step starts. `stage` is shown when the build has several stages.
    pub(crate) fn step(&self, n: usize, stage: Option<&str>, text: &str) {
        self.line(&format!("{} {}", self.tag(n, stage), one_line(text)));
    }

    fn tag(&self, n: usize, stage: Option<&str>) -> String {
        match stage {
            Some(s) => format!("[{s} {n}/{}]", self.total),
            None => format!("[{n}/{}]", self.total),
        }
    }

    pub(crate) fn cached(&self, n: usize, stage: Option<&str>) {
        self.line(&format!("  {} CACHED", self.tag(n, stage)));
    }

    pub(crate) fn done(&self, n: usize, stage: Option<&str>, took: Duration) {
        self.line(&format!(
            "  {} done in {:.2}s",
            self.tag(n, stage),
            took.as_secs_f64()
        ));
    }
}

/// An instruction's text on one line, cut to 200 characters.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut s: String = crate::error::printable(first, 200);
    if text.lines().nth(1).is_some() {
        s.push_str(" …");
    }
    s
}
