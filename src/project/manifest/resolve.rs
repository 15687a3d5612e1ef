//! From the file as written to a [`Manifest`]: the rules between keys,
//! each error at the line of the key it concerns, and host paths made
//! absolute against the project root.

use super::checked::{self, CommandValue, EnvText, HostPath, ImageRef, MountEntry, StageName};
use super::file::{ManifestFile, ReadySection, SECTIONS, ServiceSection};
use super::{
    BuildSpec, DEFAULT_PROFILE, DEFAULT_READY_TIMEOUT, Env, ImageSource, Manifest, ManifestError,
    Mount, ProfileChoice, Ready, ReadyCheck, Service,
};
use crate::net::PortForward;
use crate::oci::platform::Platform;
use crate::profile::{EnvName, key_line, line_of, parse_toml, values};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Everything an error needs to say where it is.
struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    root: &'a Path,
}

impl Ctx<'_> {
    fn error(&self, line: Option<usize>, key: &str, message: String) -> ManifestError {
        ManifestError::Invalid {
            file: self.file.to_owned(),
            line,
            key: (!key.is_empty()).then(|| key.to_owned()),
            message,
        }
    }

    fn at<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        Some(line_of(self.text, spanned.span().start))
    }

    /// `path` (as written) absolute against the project root, without `.`
    /// and `..` components (taken lexically: the path need not exist yet).
    fn absolute(&self, path: &str) -> PathBuf {
        let mut out = PathBuf::new();
        for c in self.root.join(path).components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    }
}

pub(super) fn resolve(text: &str, file: &str, root: &Path) -> Result<Manifest, ManifestError> {
    let parsed: ManifestFile = parse_toml(text, &SECTIONS).map_err(|e| ManifestError::Invalid {
        file: file.to_owned(),
        line: e.line,
        key: e.key,
        message: e.message,
    })?;
    let cx = Ctx { text, file, root };
    let Some(env) = parsed.env else {
        return Err(cx.error(
            None,
            "",
            "there is no [env] section: write [env] with the environment's `image = \"REF\"` (or \
             `build = \"Containerfile\"`); `hutch init` writes a commented example"
                .into(),
        ));
    };
    let env_source = image_source(
        &cx,
        "env",
        Sources {
            image: &env.image,
            build: &env.build,
            context: &env.context,
            args: &env.args,
            target: &env.target,
        },
    )?;
    let profile = match env.profile {
        None => ProfileChoice::Name(DEFAULT_PROFILE.into()),
        Some(p) if values::is_path(&p.0) => ProfileChoice::File(cx.absolute(&p.0)),
        Some(p) => ProfileChoice::Name(p.0),
    };
    let mut ports = PortUse::default();
    let env = Env {
        source: env_source,
        profile,
        mounts: mounts(&cx, env.mounts.unwrap_or_default().iter().map(|m| &m.0)),
        env: env_map(env.env),
        ports: ports.add(&cx, "env.ports", env.ports.unwrap_or_default())?,
        shell: env.shell.map(|s| s.0),
        setup: env
            .setup
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.0)
            .collect(),
        workdir: env.workdir.map(|w| w.0),
    };
    let mut services = BTreeMap::new();
    for (name, section) in &parsed.services {
        let service = service(&cx, name.get_ref().0.as_str(), section, &mut ports)?;
        services.insert(name.get_ref().0.clone(), service);
    }
    check_depends_on(&cx, &parsed.services)?;
    let platforms = parsed
        .platforms
        .unwrap_or_default()
        .iter()
        .map(|p| Platform::parse(&p.0).expect("checked when read"))
        .collect();
    Ok(Manifest {
        root: root.to_owned(),
        platforms,
        env,
        services,
    })
}

/// The keys of a section that say where its image comes from.
struct Sources<'a> {
    image: &'a Option<Spanned<ImageRef>>,
    build: &'a Option<Spanned<HostPath>>,
    context: &'a Option<Spanned<HostPath>>,
    args: &'a Option<Spanned<BTreeMap<EnvName, EnvText>>>,
    target: &'a Option<Spanned<StageName>>,
}

/// Exactly one of `image` and `build`; `context`, `args` and `target` only
/// with `build`.
fn image_source(cx: &Ctx, section: &str, s: Sources) -> Result<ImageSource, ManifestError> {
    let key = |k: &str| format!("{section}.{k}");
    match (s.image, s.build) {
        (Some(image), Some(_)) => Err(cx.error(
            cx.at(image),
            &key("image"),
            format!(
                "[{section}] has both `image` and `build`: give one (an image to pull, or a \
                 Containerfile to build)"
            ),
        )),
        (None, None) => Err(cx.error(
            key_line(cx.text, &section.split('.').collect::<Vec<_>>()),
            section,
            format!(
                "[{section}] has neither `image` nor `build`: give one, like image = \
                 \"debian:stable\" or build = \"Containerfile\""
            ),
        )),
        (Some(image), None) => {
            let extra = [
                ("context", s.context.as_ref().map(|v| cx.at(v))),
                ("args", s.args.as_ref().map(|v| cx.at(v))),
                ("target", s.target.as_ref().map(|v| cx.at(v))),
            ];
            if let Some((name, Some(line))) = extra.into_iter().find(|(_, l)| l.is_some()) {
                return Err(cx.error(
                    line,
                    &key(name),
                    format!(
                        "`{name}` goes with `build`, and [{section}] uses an image: remove \
                         `{name}`, or build the image with `build = \"Containerfile\"`"
                    ),
                ));
            }
            Ok(ImageSource::Image(image.get_ref().0.clone()))
        }
        (None, Some(build)) => Ok(ImageSource::Build(BuildSpec {
            containerfile: cx.absolute(&build.get_ref().0),
            context: cx.absolute(s.context.as_ref().map_or(".", |c| c.get_ref().0.as_str())),
            args: s
                .args
                .as_ref()
                .map(|a| {
                    a.get_ref()
                        .iter()
                        .map(|(k, v)| (k.0.clone(), v.0.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            target: s.target.as_ref().map(|t| t.get_ref().0.clone()),
        })),
    }
}

fn env_map(env: Option<BTreeMap<EnvName, EnvText>>) -> BTreeMap<String, String> {
    env.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.0, v.0))
        .collect()
}

fn mounts<'a>(cx: &Ctx, written: impl Iterator<Item = &'a String>) -> Vec<Mount> {
    written
        .map(
            |m| match checked::parse_mount(m).expect("checked when read") {
                MountEntry::Bind {
                    host,
                    container,
                    read_only,
                } => Mount::Bind {
                    host: cx.absolute(&host),
                    container,
                    read_only,
                },
                MountEntry::Volume {
                    name,
                    container,
                    read_only,
                } => Mount::Volume {
                    name,
                    container,
                    read_only,
                },
            },
        )
        .collect()
}

/// The host ports published so far: all the project's containers share one
/// network namespace, and a host port is bound once.
#[derive(Default)]
struct PortUse {
    seen: Vec<(PortForward, String)>,
}

impl PortUse {
    fn add(
        &mut self,
        cx: &Ctx,
        key: &str,
        ports: Vec<Spanned<checked::PortValue>>,
    ) -> Result<Vec<PortForward>, ManifestError> {
        let mut out = Vec::new();
        for p in ports {
            let forward = checked::parse_port(&p.get_ref().0).expect("checked when read");
            let clash = |a: &PortForward, b: &PortForward| {
                a.proto == b.proto
                    && a.host.port() == b.host.port()
                    && (a.host.ip() == b.host.ip()
                        || a.host.ip().is_unspecified()
                        || b.host.ip().is_unspecified())
            };
            let before = self.seen.iter().find(|(f, _)| clash(f, &forward));
            if let Some((f, other)) = before {
                return Err(cx.error(
                    cx.at(&p),
                    key,
                    format!(
                        "host port {} is published twice (also by `{other}` as {}): the \
                         project's containers share one network, and each host port can be \
                         published once",
                        forward.host.port(),
                        f.describe()
                    ),
                ));
            }
            self.seen.push((forward, key.to_owned()));
            out.push(forward);
        }
        Ok(out)
    }
}

fn service(
    cx: &Ctx,
    name: &str,
    s: &ServiceSection,
    ports: &mut PortUse,
) -> Result<Service, ManifestError> {
    let section = format!("services.{name}");
    let source = image_source(
        cx,
        &section,
        Sources {
            image: &s.image,
            build: &s.build,
            context: &s.context,
            args: &s.args,
            target: &s.target,
        },
    )?;
    let command = s.command.as_ref().map(|c| match c {
        CommandValue::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        CommandValue::Argv(argv) => argv.clone(),
    });
    let ready = match &s.ready {
        None => None,
        Some(r) => Some(ready(cx, &section, r)?),
    };
    Ok(Service {
        source,
        env: env_map(s.env.clone()),
        command,
        volumes: mounts(cx, s.volumes.iter().flatten().map(|m| &m.0)),
        ready,
        depends_on: s
            .depends_on
            .iter()
            .flatten()
            .map(|d| d.get_ref().0.clone())
            .collect(),
        ports: ports.add(
            cx,
            &format!("{section}.ports"),
            s.ports.clone().unwrap_or_default(),
        )?,
    })
}

fn ready(cx: &Ctx, section: &str, r: &Spanned<ReadySection>) -> Result<Ready, ManifestError> {
    let check = match (&r.get_ref().command, r.get_ref().tcp) {
        (Some(c), None) => ReadyCheck::Command(c.0.clone()),
        (None, Some(port)) => ReadyCheck::Tcp(port.0),
        (both_or_neither, _) => {
            let which = if both_or_neither.is_some() {
                "both `command` and `tcp`"
            } else {
                "neither `command` nor `tcp`"
            };
            return Err(cx.error(
                cx.at(r),
                &format!("{section}.ready"),
                format!(
                    "`ready` has {which}: write ready = {{ command = \"CHECK\" }} (ready when \
                     it exits 0) or ready = {{ tcp = PORT }} (ready when the port accepts), \
                     with an optional timeout = SECONDS"
                ),
            ));
        }
    };
    let timeout = r.get_ref().timeout.map_or(DEFAULT_READY_TIMEOUT, |t| t.0);
    Ok(Ready {
        check,
        timeout: Duration::from_secs(timeout.into()),
    })
}

/// Every `depends_on` names a service, not itself, and there is no cycle.
fn check_depends_on(
    cx: &Ctx,
    services: &BTreeMap<Spanned<checked::ServiceName>, ServiceSection>,
) -> Result<(), ManifestError> {
    let deps = |name: &str| -> &[Spanned<checked::ServiceName>] {
        services
            .iter()
            .find(|(n, _)| n.get_ref().0 == name)
            .and_then(|(_, s)| s.depends_on.as_deref())
            .unwrap_or_default()
    };
    for (name, s) in services {
        let name = &name.get_ref().0;
        for d in s.depends_on.iter().flatten() {
            let dep = &d.get_ref().0;
            if !services.keys().any(|n| &n.get_ref().0 == dep) {
                let known: Vec<String> = services
                    .keys()
                    .map(|n| format!("`{}`", n.get_ref().0))
                    .collect();
                return Err(cx.error(
                    cx.at(d),
                    &format!("services.{name}.depends_on"),
                    format!(
                        "no service named `{dep}`; the services are {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    // Depth first from every service; a dependency met again on the path
    // is a cycle, reported at the `depends_on` entry that closes it.
    fn visit<'a>(
        name: &'a str,
        path: &mut Vec<&'a str>,
        finished: &mut Vec<&'a str>,
        deps: &dyn Fn(&str) -> &'a [Spanned<checked::ServiceName>],
    ) -> Option<(Vec<&'a str>, &'a Spanned<checked::ServiceName>)> {
        if finished.contains(&name) {
            return None;
        }
        path.push(name);
        for d in deps(name) {
            let dep = d.get_ref().0.as_str();
            if let Some(i) = path.iter().position(|p| *p == dep) {
                let mut cycle = path[i..].to_vec();
                cycle.push(dep);
                return Some((cycle, d));
            }
            if let Some(found) = visit(dep, path, finished, deps) {
                return Some(found);
            }
        }
        path.pop();
        finished.push(name);
        None
    }
    let mut finished = Vec::new();
    for name in services.keys() {
        let mut path = Vec::new();
        if let Some((cycle, entry)) = visit(&name.get_ref().0, &mut path, &mut finished, &deps) {
            let from = cycle[cycle.len() - 2];
            return Err(cx.error(
                cx.at(entry),
                &format!("services.{from}.depends_on"),
                format!(
                    "`depends_on` makes a cycle: {}; no service could start first",
                    cycle.join(" -> ")
                ),
            ));
        }
    }
    Ok(())
}
