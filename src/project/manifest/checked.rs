//! The value types of `hutch.toml`. Each checks its value as it is
//! deserialised, so that an error carries the span of that value (and from
//! it the line and key), as profile files do.

use crate::net::{PortForward, parse_publish};
use crate::oci::platform::Platform;
use crate::oci::reference::parse_any;
use crate::profile::{checked_string, values};
use crate::store::volumes::check_volume_name;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

checked_string!(
    /// `image`: an image reference, `NAME[:TAG]` or `NAME[:TAG]@sha256:...`
    /// (Docker's normalisation: `debian` is `docker.io/library/debian:latest`).
    ImageRef,
    "an image reference like \"debian:stable\" or \"docker.io/library/postgres:16\"",
    check_image
);

pub(super) fn check_image(s: &str) -> Result<String, String> {
    match parse_any(s) {
        Ok((Some(_), _)) => Ok(s.to_owned()),
        Ok((None, _)) => Err(format!(
            "image `{s}` is only a digest: give the name too, as NAME@{s}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

checked_string!(
    /// A service's name (`[services.NAME]`): lowercase letters, digits and
    /// `-`, starting with a letter, at most 63 characters: it is also the
    /// host name the other containers of the project reach it by.
    ServiceName,
    "a service name like \"db\" or \"cache-2\"",
    check_service_name
);

pub(super) fn check_service_name(s: &str) -> Result<String, String> {
    let ok = s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s == "env" {
        // The environment's container is PROJECT-env.
        return Err(
            "a service may not be named `env`: that is the environment's name (its container \
             is PROJECT-env); choose another"
                .into(),
        );
    }
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid service name `{}`: use lowercase letters, digits and `-`, starting with a \
             letter (at most 63 characters; it is also the service's host name)",
            s.escape_debug()
        ))
    }
}

checked_string!(
    /// A path on the host (`build`, `context`): absolute, or relative to the
    /// project root.
    HostPath,
    "a path, relative to the project root or absolute",
    |s| {
        if s.is_empty() {
            return Err("the path is empty: write \".\" for the project root".into());
        }
        check_host_path(s, "path")?;
        Ok(s.to_owned())
    }
);

/// A host path of `hutch.toml`: absolute or relative to the project root.
/// `~` and `$VARIABLES` are refused rather than expanded, so that the file
/// means the same thing for everyone who checks the project out.
fn check_host_path(s: &str, what: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!("{what} `{}` contains a NUL byte", s.escape_debug()));
    }
    if s.starts_with('~') || s.contains('$') {
        return Err(format!(
            "{what} `{s}`: `~` and `$VARIABLES` are not expanded in hutch.toml; write a path \
             relative to the project root (like \"./data\") or an absolute one"
        ));
    }
    Ok(())
}

checked_string!(
    /// A path inside the container (`shell`, `workdir`): absolute.
    ContainerPath,
    "an absolute path inside the container, like \"/bin/bash\"",
    |s| {
        check_container_path(s, "path")?;
        Ok(s.to_owned())
    }
);

fn check_container_path(s: &str, what: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!("{what} `{}` contains a NUL byte", s.escape_debug()));
    }
    if !s.starts_with('/') {
        return Err(format!(
            "{what} `{s}` is not absolute: paths inside the container start with `/`"
        ));
    }
    Ok(())
}

checked_string!(
    /// `profile`: a profile's name (`hutch profile list`), or a path to a
    /// profile file (containing `/` or ending in `.toml`, relative to the
    /// project root).
    ProfileName,
    "a profile name like \"dev\", or a path to a .toml file",
    |s| {
        if values::is_path(s) {
            check_host_path(s, "profile path")?;
        } else {
            values::check_profile_name(s)?;
        }
        Ok(s.to_owned())
    }
);

checked_string!(
    /// A shell command line (`setup`, `ready.command`): run by `/bin/sh -c`.
    CommandLine,
    "a shell command line",
    |s| {
        if s.trim().is_empty() {
            Err("the command is empty".into())
        } else if s.contains('\0') {
            Err("a command cannot contain a NUL byte".into())
        } else {
            Ok(s.to_owned())
        }
    }
);

checked_string!(
    /// A value of `env` or `args`: any string but NUL; nothing is expanded.
    EnvText,
    "a string",
    |s| {
        if s.contains('\0') {
            Err("an environment variable value cannot contain a NUL byte".into())
        } else {
            Ok(s.to_owned())
        }
    }
);

checked_string!(
    /// `target`: a stage of the Containerfile (`FROM ... AS NAME`).
    StageName,
    "a stage name like \"dev\"",
    |s| {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '\0') {
            Err(format!(
                "invalid stage name `{}`: the name after `AS` in a FROM line",
                s.escape_debug()
            ))
        } else {
            Ok(s.to_ascii_lowercase())
        }
    }
);

checked_string!(
    /// One of `platforms`: `OS/ARCH[/VARIANT]`.
    PlatformValue,
    "a platform like \"linux/amd64\" or \"linux/arm64\"",
    |s| Platform::parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
);

checked_string!(
    /// One of `ports`: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]` as
    /// `hutch run -p` (the host address defaults to 127.0.0.1).
    PortValue,
    "a port like \"8080:80\" (HOSTPORT:CONTAINERPORT, as -p)",
    |s| parse_port(s).map(|_| s.to_owned())
);

/// A `ports` entry parsed; a host port left out (`"80"`) is refused: the
/// ports of a project are fixed, so that everyone finds them at the same
/// place.
pub(super) fn parse_port(s: &str) -> Result<PortForward, String> {
    let forward = parse_publish(s).map_err(|e| {
        let e = e.to_string();
        format!("port {}", e.strip_prefix("-p ").unwrap_or(&e))
    })?;
    if forward.host.port() == 0 {
        return Err(format!(
            "port `{s}` has no host port: write HOSTPORT:CONTAINERPORT, like \"{0}:{0}\"",
            forward.container_port
        ));
    }
    Ok(forward)
}

checked_string!(
    /// One of `mounts` or `volumes`: `SOURCE:CONTAINER[:ro|rw]` as `hutch
    /// run -v`: a SOURCE without `/` (not starting with `.`) is a named
    /// volume; anything else is a host path, relative to the project root
    /// or absolute.
    MountValue,
    "a mount like \"./data:/data\", \"/host/path:/path:ro\" or \"NAME:/path\" (a named volume)",
    |s| parse_mount(s).map(|_| s.to_owned())
);

/// A `mounts`/`volumes` entry as written (host paths not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MountEntry {
    Bind {
        host: String,
        container: String,
        read_only: bool,
    },
    Volume {
        name: String,
        container: String,
        read_only: bool,
    },
}

pub(super) fn parse_mount(s: &str) -> Result<MountEntry, String> {
    let (source, container, read_only) = values::split_mount(
        s,
        "is not SOURCE:CONTAINER[:ro|rw]; write \"./dir:/path\" (a directory of the \
         project), \"/abs/dir:/path\" or \"NAME:/path\" (a named volume)",
    )?;
    if source.is_empty() {
        return Err(format!("mount `{s}` has an empty source"));
    }
    check_container_path(container, &format!("the container path of mount `{s}`:"))?;
    if values::is_volume_name(source) {
        check_volume_name(source).map_err(|e| format!("mount `{s}`: {e}"))?;
        return Ok(MountEntry::Volume {
            name: source.to_owned(),
            container: container.to_owned(),
            read_only,
        });
    }
    check_host_path(source, &format!("the host path of mount `{s}`:"))?;
    Ok(MountEntry::Bind {
        host: source.to_owned(),
        container: container.to_owned(),
        read_only,
    })
}

/// `ready = { tcp = PORT }`: a port number, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TcpPort(pub u16);

impl<'de> Deserialize<'de> for TcpPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(1..=65535).contains(&v) {
            return Err(de::Error::custom(format!(
                "{v} is out of range: a port is 1 to 65535"
            )));
        }
        Ok(TcpPort(v as u16))
    }
}

/// `ready.timeout`: whole seconds, 1 to 86400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Seconds(pub u32);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(1..=86400).contains(&v) {
            return Err(de::Error::custom(format!(
                "{v} is out of range: a timeout is 1 to 86400 seconds"
            )));
        }
        Ok(Seconds(v as u32))
    }
}

/// A service's `command`: a string (run by `/bin/sh -c`, as a
/// Containerfile's shell-form CMD) or an array of strings (the argv itself,
/// as the exec form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandValue {
    Shell(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a command line (a string, run by /bin/sh -c) or an array of strings \
                     (the arguments, like [\"redis-server\", \"--save\", \"\"])",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandValue, E> {
                if v.trim().is_empty() || v.contains('\0') {
                    return Err(E::custom(
                        "the command is empty or contains a NUL byte; write a command line",
                    ));
                }
                Ok(CommandValue::Shell(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandValue, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    if arg.contains('\0') {
                        return Err(de::Error::custom("an argument contains a NUL byte"));
                    }
                    argv.push(arg);
                }
                if argv.first().is_none_or(|a| a.is_empty()) {
                    return Err(de::Error::custom(
                        "the command is empty: its first element is the program to run",
                    ));
                }
                Ok(CommandValue::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}
