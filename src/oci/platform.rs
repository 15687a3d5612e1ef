//! Platforms (`linux/amd64`, `linux/arm/v7`) and choosing one from an index.

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform hutch itself runs on, in OCI (GOARCH) spelling.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => {
                bail!("invalid platform {s:?}: expected OS/ARCH[/VARIANT], for example linux/amd64")
            }
        }
    }

    /// Does an index entry's `platform` object describe this platform?
    pub fn matches(&self, p: &serde_json::Value) -> bool {
        let get = |k: &str| p.get(k).and_then(|v| v.as_str());
        if get("os") != Some(self.os.as_str())
            || get("architecture") != Some(self.architecture.as_str())
        {
            return false;
        }
        match (&self.variant, get("variant")) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Describe an index entry's platform for error messages.
pub fn describe(p: Option<&serde_json::Value>) -> String {
    let Some(p) = p else {
        return "(no platform)".into();
    };
    let get = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    match p.get("variant").and_then(|v| v.as_str()) {
        Some(v) => format!("{}/{}/{v}", get("os"), get("architecture")),
        None => format!("{}/{}", get("os"), get("architecture")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matching_and_parsing() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert!(p.matches(&json!({"os":"linux","architecture":"arm","variant":"v7"})));
        assert!(!p.matches(&json!({"os":"linux","architecture":"arm","variant":"v6"})));
        assert!(!p.matches(&json!({"os":"windows","architecture":"arm"})));
        assert!(Platform::parse("linux").is_err());
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
    }
}
