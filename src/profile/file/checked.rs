//! The value types of a profile file. Each checks (and may normalise)
//! its value as it is deserialised, so that an error carries the span of
//! that value.

use crate::profile::{locks, values};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A string newtype whose value is checked (and possibly normalised) by
/// `$check: fn(&str) -> Result<String, String>` as it is deserialised.
/// Other hand-written files (`hutch.toml`) declare their values with it too.
macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $expecting:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub String);

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        let check: fn(&str) -> Result<String, String> = $check;
                        check(v).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use checked_string;

checked_string!(
    /// `description`: one line.
    OneLine,
    "a one-line string",
    |s| {
        if s.contains('\n') {
            Err("the description must be a single line".into())
        } else {
            Ok(s.to_owned())
        }
    }
);
checked_string!(
    /// `extends`: a profile name or a path to a file.
    ExtendsName,
    "a profile name like \"dev\", or a path to a .toml file",
    |s| {
        if !values::is_path(s) {
            values::check_profile_name(s)?;
        }
        Ok(s.to_owned())
    }
);
checked_string!(
    /// One entry of `locked`: a lockable key or a section (see locks.rs).
    LockName,
    "a key to lock like \"network.mode\", or a section like \"network\"",
    locks::check_lock_name
);
checked_string!(
    /// A container path (`landlock_read`, `landlock_write`).
    PathValue,
    "an absolute path (may start with ${CWD} or ${HOME})",
    |s| values::check_path(s, "path").map(|_| s.to_owned())
);
checked_string!(
    /// `workdir`: "" or a path.
    Workdir,
    "an absolute path (may start with ${CWD}), or \"\" for the image's",
    |s| {
        if !s.is_empty() {
            values::check_path(s, "workdir")?;
        }
        Ok(s.to_owned())
    }
);
checked_string!(
    /// `HOST:CONTAINER[:ro|rw]`.
    MountValue,
    "a mount \"HOST:CONTAINER[:ro|rw]\"",
    |s| values::parse_mount(s).map(|_| s.to_owned())
);
checked_string!(
    /// `PATH[:OPTIONS]`.
    TmpfsValue,
    "a tmpfs path like \"/tmp\" or \"/tmp:size=64m\"",
    |s| values::parse_tmpfs(s).map(|_| s.to_owned())
);
checked_string!(
    /// `hostname`.
    HostnameValue,
    "a host name, or \"\" for the container name",
    |s| values::check_hostname(s).map(|_| s.to_owned())
);
checked_string!(
    /// A key of `[env]`.
    EnvName,
    "an environment variable name",
    |s| values::check_env_name(s).map(|_| s.to_owned())
);
checked_string!(
    /// A value of `[env]`.
    EnvValue,
    "a string",
    |s| {
        if s.contains('\0') {
            Err("an environment variable value cannot contain a NUL byte".into())
        } else {
            values::check_variables(s).map(|_| s.to_owned())
        }
    }
);
checked_string!(
    /// One capability name, normalised to `CAP_...`.
    CapName,
    "a capability name like \"CAP_CHOWN\"",
    values::normalise_capability
);

pub(super) const UNLIMITED: &str = "unlimited";

/// A count limit (`nofile`, `nproc`, `pids`): at least 1; `None` is
/// "unlimited" (removes a limit set by an extended profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of at least 1, or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                if v < 1 {
                    return Err(E::custom(format!(
                        "{v} is too small: the limit must be at least 1 (or \"unlimited\")"
                    )));
                }
                Ok(Count(Some(v as u64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                if v == UNLIMITED {
                    Ok(Count(None))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str(UNLIMITED),
        }
    }
}

/// The MTU of the container's eth0 (`[network] mtu`): 1280 (IPv6's
/// minimum) to 65520 (the largest a TAP device takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Mtu(pub u32);

impl<'de> Deserialize<'de> for Mtu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(1280..=65520).contains(&v) {
            return Err(de::Error::custom(format!(
                "{v} is out of range: the MTU is 1280 to 65520"
            )));
        }
        Ok(Mtu(v as u32))
    }
}

/// A size in bytes (`core` with MIN = 0, `memory` with MIN = 1): an integer
/// or a string like "512M"; `None` is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size<const MIN: u64>(pub Option<u64>);

impl<'de, const MIN: u64> Deserialize<'de> for Size<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64>;
        impl<const MIN: u64> V<MIN> {
            fn check<E: de::Error>(v: u64) -> Result<Size<MIN>, E> {
                if v < MIN {
                    return Err(E::custom(format!(
                        "{v} is too small: the size must be at least {MIN} byte (or \"unlimited\")"
                    )));
                }
                Ok(Size(Some(v)))
            }
        }
        impl<const MIN: u64> Visitor<'_> for V<MIN> {
            type Value = Size<MIN>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a size: a number of bytes, or a string like \"512M\" (K, M, G, T are \
                     binary), or \"unlimited\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size<MIN>, E> {
                if v < 0 {
                    return Err(E::custom(format!(
                        "{v} is negative: a size must be at least {MIN}"
                    )));
                }
                Self::check(v as u64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size<MIN>, E> {
                Self::check(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size<MIN>, E> {
                if v == UNLIMITED {
                    return Ok(Size(None));
                }
                Self::check(values::parse_size(v).map_err(E::custom)?)
            }
        }
        d.deserialize_any(V::<MIN>)
    }
}

impl<const MIN: u64> Serialize for Size<MIN> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str(UNLIMITED),
            Some(n) => {
                let text = values::format_size(n);
                if text.bytes().all(|b| b.is_ascii_digit()) {
                    s.serialize_u64(n)
                } else {
                    s.serialize_str(&text)
                }
            }
        }
    }
}

/// `cpus`: a positive number of CPUs (1.5 = one and a half); `None` is
/// "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cpus(pub Option<f64>);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs greater than 0 (like 2 or 1.5), or \"unlimited\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                if !(v.is_finite() && v > 0.0 && v <= 65536.0) {
                    return Err(E::custom(format!(
                        "cpus = {v} is out of range: give a number of CPUs greater than 0 \
                         (like 2 or 1.5), or \"unlimited\""
                    )));
                }
                Ok(Cpus(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
                if v == UNLIMITED {
                    Ok(Cpus(None))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_f64(n),
            None => s.serialize_str(UNLIMITED),
        }
    }
}
