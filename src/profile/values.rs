//! Checks and parsers for the string values of a profile: paths with
//! `${CWD}`/`${HOME}`, `HOST:CONTAINER[:ro|rw]` mounts, tmpfs entries,
//! capability names, sizes, host names and environment variable names.
//!
//! Every check returns a message that says what is allowed; the TOML layer
//! adds the file, line and key.

use std::path::Path;

/// The variables a profile may use in paths, expanded at run time.
pub const VARIABLES: [&str; 2] = ["${CWD}", "${HOME}"];

/// Every capability Linux knows (up to 6.x), without the `CAP_` prefix.
pub const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `${CWD}` and `${HOME}` replaced by the given directories. Other text,
/// including a `$` that starts no known variable, is left as it is.
pub fn expand(s: &str, cwd: &Path, home: &Path) -> String {
    if !s.contains("${") {
        return s.to_owned();
    }
    s.replace("${CWD}", &cwd.to_string_lossy())
        .replace("${HOME}", &home.to_string_lossy())
}

/// Refuse `${NAME}` for any NAME but CWD and HOME.
pub(crate) fn check_variables(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "`{s}` has an unterminated `${{`; the variables are ${{CWD}} and ${{HOME}}"
            ));
        };
        let var = &after[..=end];
        if !VARIABLES.contains(&var) {
            return Err(format!(
                "`{s}` uses the unknown variable {var}; only ${{CWD}} (the directory hutch was \
                 started in) and ${{HOME}} (your home directory) are expanded"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// An absolute path, or one that starts with `${CWD}` or `${HOME}` (which
/// expand to absolute paths). `what` names the value in the message.
pub fn check_path(s: &str, what: &str) -> Result<(), String> {
    check_variables(s)?;
    if s.contains('\0') {
        return Err(format!("{what} `{}` contains a NUL byte", s.escape_debug()));
    }
    let absolute = s.starts_with('/')
        || VARIABLES.iter().any(|v| {
            s.strip_prefix(v)
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
        });
    if !absolute {
        return Err(format!(
            "{what} `{s}` is not absolute: write a path starting with `/`, or with ${{CWD}} \
             or ${{HOME}} (e.g. `${{CWD}}/{}`)",
            s.trim_start_matches("./")
        ));
    }
    Ok(())
}

/// A bind mount, `HOST:CONTAINER[:ro|rw]` as in `podman -v`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountSpec {
    /// Path on the host (may still contain `${CWD}`/`${HOME}`).
    pub host: String,
    /// Path inside the sandbox.
    pub container: String,
    pub read_only: bool,
}

impl MountSpec {
    /// Both paths with `${CWD}` and `${HOME}` expanded.
    pub fn expand(&self, cwd: &Path, home: &Path) -> MountSpec {
        MountSpec {
            host: expand(&self.host, cwd, home),
            container: expand(&self.container, cwd, home),
            read_only: self.read_only,
        }
    }
}

const MOUNT_FORMAT: &str = "write mounts as \"HOST:CONTAINER\", \"HOST:CONTAINER:ro\" or \
                            \"HOST:CONTAINER:rw\", e.g. \"${CWD}:/src:ro\"";

/// `SOURCE:CONTAINER[:ro|rw]` split into its parts (source, container,
/// read-only); `hint` follows the message of a value of another shape.
pub(crate) fn split_mount<'a>(s: &'a str, hint: &str) -> Result<(&'a str, &'a str, bool), String> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [h, c] => Ok((*h, *c, false)),
        [h, c, "ro"] => Ok((*h, *c, true)),
        [h, c, "rw"] => Ok((*h, *c, false)),
        [_, _, opt] => Err(format!(
            "mount `{s}` has the option `{opt}`; the options are `ro` and `rw`"
        )),
        _ => Err(format!("mount `{s}` {hint}")),
    }
}

/// Parse (and check) `HOST:CONTAINER[:ro|rw]`. Split before expanding the
/// variables: an expanded directory may contain `:`.
pub fn parse_mount(s: &str) -> Result<MountSpec, String> {
    let (host, container, read_only) =
        split_mount(s, &format!("is not HOST:CONTAINER[:ro|rw]; {MOUNT_FORMAT}"))?;
    if host.is_empty() || container.is_empty() {
        return Err(format!("mount `{s}` has an empty path; {MOUNT_FORMAT}"));
    }
    check_path(host, &format!("the host path of mount `{s}`:"))?;
    check_path(container, &format!("the container path of mount `{s}`:"))?;
    Ok(MountSpec {
        host: host.to_owned(),
        container: container.to_owned(),
        read_only,
    })
}

/// A tmpfs, `PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TmpfsSpec {
    /// Path inside the sandbox.
    pub path: String,
    /// Mount options as given (comma-separated; `size=`, `mode=`,
    /// `nr_inodes=`, `noexec`, `nosuid`, `nodev`), possibly empty.
    pub options: String,
}

/// Parse (and check) a tmpfs entry: `/tmp` or `/tmp:size=64m,mode=1777`.
pub fn parse_tmpfs(s: &str) -> Result<TmpfsSpec, String> {
    let (path, options) = s.split_once(':').unwrap_or((s, ""));
    check_path(path, "tmpfs path")?;
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let ok = match opt.split_once('=') {
            Some(("size", v)) => tmpfs_size_ok(v),
            Some(("nr_inodes", v)) => tmpfs_size_ok(v),
            Some(("mode", v)) => {
                !v.is_empty() && u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777)
            }
            Some(_) => false,
            None => matches!(opt, "noexec" | "nosuid" | "nodev" | "exec" | "suid" | "dev"),
        };
        if !ok {
            return Err(format!(
                "tmpfs `{s}` has the option `{opt}`; allowed are size=N[k|m|g|%], \
                 nr_inodes=N[k|m|g], mode=OCTAL, noexec, nosuid, nodev (comma-separated, \
                 e.g. \"/tmp:size=64m,mode=1777\")"
            ));
        }
    }
    Ok(TmpfsSpec {
        path: path.to_owned(),
        options: options.to_owned(),
    })
}

/// A mount of `hutch run`, from `-v` or `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A host path (`-v /host:/ctr`, `--mount type=bind`).
    Bind(MountSpec),
    /// A named volume of the store (`-v NAME:/ctr`, `--mount type=volume`).
    Volume(VolumeMount),
    /// A fresh tmpfs (`--mount type=tmpfs`).
    Tmpfs(TmpfsSpec),
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's name as given (the store checks it).
    pub name: String,
    /// Path inside the sandbox.
    pub container: String,
    pub read_only: bool,
    /// `volume-nocopy`: a new volume is not filled from the image.
    pub no_copy: bool,
}

/// Docker's rule for the source of `-v SOURCE:CTR`: a name (no `/`, not
/// starting with `.`, `~` or `$`) is a named volume; anything else is a
/// host path.
pub fn is_volume_name(source: &str) -> bool {
    !source.is_empty() && !source.contains('/') && !source.starts_with(['.', '~', '$'])
}

/// `-v HOST:CTR[:ro|rw]` or `-v NAME:CTR[:ro|rw]`.
pub fn parse_volume_flag(s: &str) -> Result<RunMount, String> {
    let source = s.split(':').next().unwrap_or("");
    if !is_volume_name(source) {
        return parse_mount(s).map(RunMount::Bind);
    }
    let rest = &s[source.len()..];
    let (container, read_only) = match rest.split(':').skip(1).collect::<Vec<_>>().as_slice() {
        [c] => (*c, false),
        [c, "ro"] => (*c, true),
        [c, "rw"] => (*c, false),
        [_, opt] => {
            return Err(format!(
                "volume `{s}` has the option `{opt}`; the options are `ro` and `rw`"
            ));
        }
        _ => {
            return Err(format!(
                "volume `{s}` is not NAME:CONTAINER[:ro|rw] (a named volume, e.g. \
                 \"data:/var/lib/data\") or HOST:CONTAINER[:ro|rw] (a host path, absolute)"
            ));
        }
    };
    check_path(container, &format!("the container path of volume `{s}`:"))?;
    Ok(RunMount::Volume(VolumeMount {
        name: source.to_owned(),
        container: container.to_owned(),
        read_only,
        no_copy: false,
    }))
}

const MOUNT_FLAG_FORMAT: &str = "write type=volume,source=NAME,target=/path[,readonly], \
     type=bind,source=/host/path,target=/path[,readonly] or \
     type=tmpfs,target=/path[,tmpfs-size=64m][,tmpfs-mode=1777]";

/// `--mount KEY=VALUE,...` as Docker writes it: `type` (volume, the
/// default, bind or tmpfs), `source`/`src`, `target`/`destination`/`dst`,
/// `readonly`/`ro` (optionally `=true|false|1|0`), `volume-nocopy`,
/// `tmpfs-size`, `tmpfs-mode`.
pub fn parse_mount_flag(s: &str) -> Result<RunMount, String> {
    let mut kind = "volume";
    let (mut source, mut target) = (None, None);
    let (mut read_only, mut no_copy) = (false, false);
    let mut tmpfs_options: Vec<String> = Vec::new();
    let flag = |v: Option<&str>, key: &str| -> Result<bool, String> {
        match v {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => Err(format!(
                "--mount {s}: {key}={other} is not a boolean; write {key}, {key}=true or {key}=false"
            )),
        }
    };
    for part in s.split(',') {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        let need = |v: Option<&'_ str>| -> Result<String, String> {
            v.filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("--mount {s}: `{key}` needs a value ({key}=...)"))
        };
        match key {
            "type" => {
                kind = match value {
                    Some(t @ ("volume" | "bind" | "tmpfs")) => t,
                    Some(t) => {
                        return Err(format!(
                            "--mount {s}: unknown type `{t}`; the types are volume, bind and \
                             tmpfs: {MOUNT_FLAG_FORMAT}"
                        ));
                    }
                    None => return Err(format!("--mount {s}: `type` needs a value (type=...)")),
                }
            }
            "source" | "src" => source = Some(need(value)?),
            "target" | "destination" | "dst" => target = Some(need(value)?),
            "readonly" | "ro" => read_only = flag(value, key)?,
            "volume-nocopy" => no_copy = flag(value, key)?,
            "tmpfs-size" => {
                let v = need(value)?;
                if !tmpfs_size_ok(&v) {
                    return Err(format!(
                        "--mount {s}: tmpfs-size={v} is not a size; write N[k|m|g], e.g. \
                         tmpfs-size=64m"
                    ));
                }
                tmpfs_options.push(format!("size={v}"));
            }
            "tmpfs-mode" => {
                let v = need(value)?;
                if !u32::from_str_radix(&v, 8).is_ok_and(|m| m <= 0o7777) {
                    return Err(format!(
                        "--mount {s}: tmpfs-mode={v} is not an octal mode, e.g. tmpfs-mode=1777"
                    ));
                }
                tmpfs_options.push(format!("mode={v}"));
            }
            "" => {}
            other => {
                return Err(format!(
                    "--mount {s}: unknown option `{other}`; the options are type, source (src), \
                     target (destination, dst), readonly (ro), volume-nocopy, tmpfs-size and \
                     tmpfs-mode: {MOUNT_FLAG_FORMAT}"
                ));
            }
        }
    }
    let Some(target) = target else {
        return Err(format!(
            "--mount {s}: no target: add target=/path (where it appears in the container)"
        ));
    };
    check_path(&target, &format!("--mount {s}: the target"))?;
    let only = |what: bool, opt: &str| -> Result<(), String> {
        if what {
            Err(format!("--mount {s}: {opt} does not apply to type={kind}"))
        } else {
            Ok(())
        }
    };
    match kind {
        "volume" => {
            only(!tmpfs_options.is_empty(), "tmpfs-size/tmpfs-mode")?;
            let Some(name) = source else {
                return Err(format!(
                    "--mount {s}: a volume needs source=NAME (the volume's name; `hutch volume \
                     ls` lists them, a new name creates one)"
                ));
            };
            if !is_volume_name(&name) {
                return Err(format!(
                    "--mount {s}: source={name} is not a volume name; for a host path write \
                     type=bind,source={name},target={target}"
                ));
            }
            Ok(RunMount::Volume(VolumeMount {
                name,
                container: target,
                read_only,
                no_copy,
            }))
        }
        "bind" => {
            only(!tmpfs_options.is_empty(), "tmpfs-size/tmpfs-mode")?;
            only(no_copy, "volume-nocopy")?;
            let Some(host) = source else {
                return Err(format!(
                    "--mount {s}: a bind mount needs source=/host/path (absolute)"
                ));
            };
            check_path(&host, &format!("--mount {s}: the source"))?;
            Ok(RunMount::Bind(MountSpec {
                host,
                container: target,
                read_only,
            }))
        }
        _ => {
            only(source.is_some(), "source")?;
            only(read_only, "readonly")?;
            only(no_copy, "volume-nocopy")?;
            Ok(RunMount::Tmpfs(TmpfsSpec {
                path: target,
                options: tmpfs_options.join(","),
            }))
        }
    }
}

fn tmpfs_size_ok(v: &str) -> bool {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
    !digits.is_empty() && v.len() - digits.len() <= 1 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `CAP_CHOWN`, `chown`, `cap_chown` ... -> `CAP_CHOWN`, or what is allowed.
pub fn normalise_capability(s: &str) -> Result<String, String> {
    let upper = s.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if CAPABILITIES.contains(&bare) {
        return Ok(format!("CAP_{bare}"));
    }
    Err(format!(
        "unknown capability `{s}`; capabilities are names like \"CAP_CHOWN\" or \
         \"NET_BIND_SERVICE\" (see capabilities(7)): {}",
        CAPABILITIES.join(", ")
    ))
}

const SIZE_FORMAT: &str = "a size is a whole number of bytes with an optional K, M, G or T \
                           suffix (binary: 1K = 1024 bytes), e.g. \"512M\" or \"2G\"";

/// "512M" -> 536870912. Suffixes K, M, G, T (any case, optionally followed
/// by `B` or `iB`) are binary; no suffix or `B` means bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("invalid size \"{s}\": {SIZE_FORMAT}")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size \"{s}\": {SIZE_FORMAT}"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size \"{s}\" is too large"))
}

/// 2147483648 -> "2G": the largest exact binary suffix.
pub fn format_size(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A host name as `sethostname` and resolvers accept it (RFC 1123), or "".
pub fn check_hostname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    let ok = s.len() <= 64
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid hostname \"{s}\": use at most 64 letters, digits, `-` and `.` \
             (no label may start or end with `-`), or \"\" for the container name"
        ))
    }
}

/// An environment variable name: not empty, no `=`, no NUL.
pub fn check_env_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.contains('=') || s.contains('\0') {
        return Err(format!(
            "invalid environment variable name `{}`: a name must be non-empty and contain \
             neither `=` nor NUL",
            s.escape_debug()
        ));
    }
    Ok(())
}

/// A profile name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_profile_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid profile name `{s}`: use letters, digits, `.`, `_` and `-` (not starting \
             with `.`), or a path to a file (containing `/` or ending in `.toml`)"
        ))
    }
}

/// Whether `--profile X` / `extends = "X"` names a file rather than a profile.
pub fn is_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_variables() {
        let (cwd, home) = (Path::new("/work/p"), Path::new("/home/me"));
        assert_eq!(expand("${CWD}:${CWD}", cwd, home), "/work/p:/work/p");
        assert_eq!(expand("${HOME}/.cache", cwd, home), "/home/me/.cache");
        assert_eq!(expand("/plain/$HOME", cwd, home), "/plain/$HOME");
        assert_eq!(expand("${OTHER}", cwd, home), "${OTHER}");
    }

    #[test]
    fn paths() {
        assert!(check_path("/tmp", "p").is_ok());
        assert!(check_path("${CWD}", "p").is_ok());
        assert!(check_path("${HOME}/x", "p").is_ok());
        assert!(check_path("tmp", "p").unwrap_err().contains("not absolute"));
        assert!(check_path("${CWD}x", "p").is_err());
        assert!(check_path("./src", "p").unwrap_err().contains("${CWD}/src"));
        assert!(
            check_path("/a/${USER}", "p")
                .unwrap_err()
                .contains("${USER}")
        );
        assert!(
            check_path("/a/${CWD", "p")
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn mounts() {
        let m = parse_mount("${CWD}:/src:ro").unwrap();
        assert_eq!(
            (m.host.as_str(), m.container.as_str(), m.read_only),
            ("${CWD}", "/src", true)
        );
        assert!(!parse_mount("/a:/b").unwrap().read_only);
        assert!(!parse_mount("/a:/b:rw").unwrap().read_only);
        assert!(
            parse_mount("/a:/b:rx")
                .unwrap_err()
                .contains("`ro` and `rw`")
        );
        assert!(parse_mount("/a").unwrap_err().contains("HOST:CONTAINER"));
        assert!(
            parse_mount("src:/src")
                .unwrap_err()
                .contains("not absolute")
        );
        assert!(
            parse_mount("/src:src")
                .unwrap_err()
                .contains("container path")
        );
        let e = m.expand(Path::new("/w:x"), Path::new("/h"));
        assert_eq!(e.host, "/w:x");
    }

    #[test]
    fn run_mount_flags() {
        let vol = |name: &str, c: &str, ro: bool| {
            RunMount::Volume(VolumeMount {
                name: name.into(),
                container: c.into(),
                read_only: ro,
                no_copy: false,
            })
        };
        assert_eq!(
            parse_volume_flag("data:/d").unwrap(),
            vol("data", "/d", false)
        );
        assert_eq!(
            parse_volume_flag("data:/d:ro").unwrap(),
            vol("data", "/d", true)
        );
        assert!(matches!(
            parse_volume_flag("/h:/d:ro").unwrap(),
            RunMount::Bind(MountSpec {
                read_only: true,
                ..
            })
        ));
        // Docker's rule: `.`, `~`, `$` and `/` make a path.
        for p in ["./x:/d", "~/x:/d", "../x:/d", "${CWD}x:/d"] {
            assert!(
                parse_volume_flag(p).unwrap_err().contains("not absolute"),
                "{p}"
            );
        }
        assert!(
            parse_volume_flag("data:d")
                .unwrap_err()
                .contains("not absolute")
        );
        assert!(
            parse_volume_flag("data:/d:rx")
                .unwrap_err()
                .contains("`rx`")
        );
        assert!(
            parse_volume_flag("data")
                .unwrap_err()
                .contains("NAME:CONTAINER")
        );

        assert_eq!(
            parse_mount_flag("type=volume,source=data,target=/d,readonly").unwrap(),
            vol("data", "/d", true)
        );
        assert_eq!(
            parse_mount_flag("src=data,dst=/d,ro=false").unwrap(),
            vol("data", "/d", false)
        );
        assert_eq!(
            parse_mount_flag("type=bind,source=/h,target=/d,ro").unwrap(),
            RunMount::Bind(MountSpec {
                host: "/h".into(),
                container: "/d".into(),
                read_only: true
            })
        );
        assert_eq!(
            parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=700").unwrap(),
            RunMount::Tmpfs(TmpfsSpec {
                path: "/t".into(),
                options: "size=64m,mode=700".into()
            })
        );
        let err = |s: &str| parse_mount_flag(s).unwrap_err();
        assert!(err("type=volume,source=data").contains("no target"));
        assert!(err("type=nfs,target=/d").contains("unknown type `nfs`"));
        assert!(err("type=volume,source=../x,target=/d").contains("not a volume name"));
        assert!(err("type=volume,target=/d").contains("needs source=NAME"));
        assert!(err("type=bind,source=rel,target=/d").contains("not absolute"));
        assert!(err("type=tmpfs,source=x,target=/d").contains("source does not apply"));
        assert!(
            err("type=volume,source=a,target=/d,bind-propagation=rshared")
                .contains("unknown option")
        );
        assert!(err("source=a,target=/d,ro=maybe").contains("not a boolean"));
        assert!(err("type=tmpfs,target=/t,tmpfs-size=big").contains("not a size"));
    }

    #[test]
    fn tmpfs() {
        assert_eq!(parse_tmpfs("/tmp").unwrap().options, "");
        let t = parse_tmpfs("/tmp:size=64m,mode=1777,noexec").unwrap();
        assert_eq!(
            (t.path.as_str(), t.options.as_str()),
            ("/tmp", "size=64m,mode=1777,noexec")
        );
        assert!(parse_tmpfs("/tmp:size=50%").is_ok());
        assert!(parse_tmpfs("/tmp:size=64q").is_err());
        assert!(parse_tmpfs("/tmp:mode=999").is_err());
        assert!(parse_tmpfs("/tmp:uid=0").is_err());
        assert!(parse_tmpfs("tmp").is_err());
    }

    #[test]
    fn capabilities() {
        assert_eq!(normalise_capability("chown").unwrap(), "CAP_CHOWN");
        assert_eq!(
            normalise_capability("Cap_Net_Bind_Service").unwrap(),
            "CAP_NET_BIND_SERVICE"
        );
        assert_eq!(
            normalise_capability("CAP_SYS_ADMIN").unwrap(),
            "CAP_SYS_ADMIN"
        );
        assert!(
            normalise_capability("CAP_FLY")
                .unwrap_err()
                .contains("CHOWN")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("3T").unwrap(), 3 << 40);
        assert!(parse_size("12Q").unwrap_err().contains("K, M, G or T"));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("M").is_err());
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(0), "0");
    }

    #[test]
    fn names() {
        assert!(check_hostname("").is_ok());
        assert!(check_hostname("box-1.local").is_ok());
        assert!(check_hostname("-bad").is_err());
        assert!(check_hostname("a_b").is_err());
        assert!(check_env_name("PATH").is_ok());
        assert!(check_env_name("A=B").is_err());
        assert!(check_profile_name("my-dev_2").is_ok());
        assert!(check_profile_name(".hidden").is_err());
        assert!(check_profile_name("a b").is_err());
        assert!(is_path("./x.toml") && is_path("x.toml") && !is_path("dev"));
    }
}
