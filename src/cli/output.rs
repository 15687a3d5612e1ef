//! Output helpers: aligned tables, human sizes and ages, JSON.

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

/// Sizes as Podman shows them (SI units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let num = format!("{v:.3}");
    format!(
        "{} {}",
        num.trim_end_matches('0').trim_end_matches('.'),
        UNITS[unit]
    )
}

/// "3 days ago" from an RFC 3339 timestamp.
pub fn human_age(rfc3339: Option<&str>) -> String {
    let Some(ts) = rfc3339 else {
        return "unknown".into();
    };
    let Ok(t) = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
    else {
        return ts.to_owned();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds();
    let (n, unit) = match secs {
        s if s < 0 => return "in the future".into(),
        s if s < 60 => return "less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 730 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
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
    fn sizes_and_tables() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(4_300_000), "4.3 MB");
        assert_eq!(human_size(2_000_000_000), "2 GB");
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A      BB\nlong   x\n");
        assert!(human_age(Some("2000-01-01T00:00:00Z")).ends_with("years ago"));
    }
}
