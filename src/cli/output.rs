//! Output helpers: aligned tables, JSON, writing to a closed pipe.
//! (Human-readable sizes and ages are in `crate::human`.)

use std::io::Write;

/// Print rows as a table with a header, columns separated by 3 spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(|s| s.as_str()).collect(), &mut out);
    }
    out
}

/// Write to stdout. A closed pipe (`hutch images | head -1`) ends the
/// process quietly with the status a shell gives SIGPIPE, instead of the
/// panic `println!` would raise.
pub fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("hutch: error: writing to standard output: {e}");
        std::process::exit(crate::error::EXIT_FAILED);
    }
}

/// `print` with a newline.
pub fn line(s: &str) {
    print(&format!("{s}\n"));
}

pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `println!` that survives a closed stdout (see `print`).
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output::line(&format!($($arg)*)) };
}
pub(crate) use outln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A      BB\nlong   x\n");
    }
}
