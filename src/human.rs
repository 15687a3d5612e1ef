//! Human-readable sizes and ages ("4.3 MB", "3 days ago"), as Podman
//! shows them: used by the CLI's tables and by progress reports, so it sits
//! below both.

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

/// The time since an RFC 3339 timestamp as Docker and Podman write it in
/// `ps` ("Up 3 minutes", "Exited (0) 2 seconds ago"): "Less than a
/// second", "1 second", "About a minute", "5 hours", "3 days", ...
pub fn human_duration_since(rfc3339: Option<&str>) -> String {
    let Some(t) = rfc3339.and_then(|ts| {
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return "for an unknown time".into();
    };
    human_duration((time::OffsetDateTime::now_utc() - t).whole_seconds())
}

/// [`human_duration_since`] of a number of seconds.
pub fn human_duration(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let hours = (secs as f64 / 3600.0).round() as i64;
    match secs {
        s if s < 1 => "Less than a second".into(),
        s if s < 60 => plural(s, "second"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => plural(s / 60, "minute"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => plural(hours, "hour"),
        _ if hours < 24 * 7 * 2 => plural(hours / 24, "day"),
        _ if hours < 24 * 30 * 2 => plural(hours / 24 / 7, "week"),
        _ if hours < 24 * 365 * 2 => plural(hours / 24 / 30, "month"),
        _ => plural(hours / 24 / 365, "year"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(4_300_000), "4.3 MB");
        assert_eq!(human_size(2_000_000_000), "2 GB");
        assert!(human_age(Some("2000-01-01T00:00:00Z")).ends_with("years ago"));
        assert_eq!(human_age(None), "unknown");
        assert_eq!(human_age(Some("not a time")), "not a time");
        for (secs, text) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (90, "About a minute"),
            (180, "3 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86_400, "3 days"),
            (20 * 86_400, "2 weeks"),
            (100 * 86_400, "3 months"),
            (800 * 86_400, "2 years"),
        ] {
            assert_eq!(human_duration(secs), text, "{secs} s");
        }
        assert_eq!(human_duration_since(None), "for an unknown time");
    }
}
