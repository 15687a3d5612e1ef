//! Building blocks of the fixes `hutch check` suggests: shell quoting and
//! a sysctl set now and after reboot.

/// `sysctl -w` now, and a file in /etc/sysctl.d that keeps it after reboot.
pub(super) fn sysctl_fix(key: &str, value: &str) -> String {
    let file = format!(
        "/etc/sysctl.d/90-hutch-{}.conf",
        key.replace(['.', '_'], "-")
    );
    format!(
        "sudo sysctl -w {key}={value}\necho '{key}={value}' | sudo tee {file}   # keep it after reboot"
    )
}

/// Single-quotes `s` for a POSIX shell when it holds anything special.
pub(super) fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
