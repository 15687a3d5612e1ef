//! The commented `hutch.toml` that `hutch init` writes: every key shown,
//! the optional ones commented out with their default or an example.

use super::{MANIFEST_FILE, Manifest};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment's image when `hutch init` is not given one.
pub const DEFAULT_IMAGE: &str = "debian:stable";

const TEMPLATE: &str = r#"# hutch.toml: this project's environment (`hutch shell` enters it) and the
# services beside it (`hutch up` starts them). Every key is shown; the
# optional ones are commented out, with their default or an example. Host
# paths are relative to this directory, the project root. Unknown keys and
# bad values are errors that name the line.

# Platforms `hutch lock` resolves the images for, besides this machine's
# (for a team or a CI on other architectures).
# platforms = ["linux/amd64", "linux/arm64"]

[env]
# The environment's image; `hutch lock` pins it to a digest.
image = "@IMAGE@"
# Or build it from a Containerfile, instead of `image` (give one of the two):
# build = "Containerfile"
# The build context (default: the project root).
# context = "."
# Build arguments, as `hutch build --build-arg NAME=VALUE`.
# args = { VERSION = "1.2" }
# The stage to build (default: the last one).
# target = "dev"

# The profile: what the environment may do. `dev`, the default, mounts the
# project at the same path, keeps your identity and has the network; `hutch
# profile list` shows the others, and a path names a profile file.
# profile = "dev"

# More mounts, as `hutch run -v`, "SOURCE:PATH" or "SOURCE:PATH:ro": SOURCE
# is a host path (relative to the project root, or absolute), or a NAME for
# a named volume, kept between runs.
# mounts = ["./.cache:/var/cache/project", "/etc/ssl/certs:/etc/ssl/certs:ro"]

# Environment variables, over the image's (values are taken as written).
# env = { RUST_BACKTRACE = "1" }

# Ports published on this machine, as `hutch run -p`: "HOSTPORT:PORT",
# bound on 127.0.0.1 unless an address is given ("0.0.0.0:8080:8080").
# ports = ["8080:8080"]

# The shell `hutch shell` starts (default: /bin/bash if the image has it,
# else /bin/sh).
# shell = "/bin/bash"

# Commands run once, in order, by /bin/sh -c when the environment is
# created; their result is kept, and made again when they change.
# setup = ["apt-get update", "apt-get install -y --no-install-recommends make"]

# Where `hutch shell` starts (default: the project directory).
# workdir = "/var/cache/project"

# Services: other containers of the project, like a database or a cache.
# All of the project's containers share one network: the environment
# reaches a service on localhost:PORT, and by its name.
#
# [services.db]
# The image, or a build with context, args and target as in [env]:
# image = "postgres:16"
# build = "db/Containerfile"
# context = "db"
# args = { PG_MAJOR = "16" }
# target = "server"
# env = { POSTGRES_PASSWORD = "dev" }
# The command, replacing the image's: an array of arguments, or a string
# run by /bin/sh -c.
# command = ["postgres", "-c", "fsync=off"]
# Volumes: "NAME:PATH" a named volume (kept between runs), "./dir:PATH" a
# directory of the project; ":ro" at the end for read-only.
# volumes = ["db-data:/var/lib/postgresql/data"]
# When `hutch up` counts the service as started: when the TCP port accepts,
# or when a check exits 0 (ready = { command = "pg_isready" }); `timeout` in
# seconds, default 60. Without `ready`: as soon as it starts.
# ready = { tcp = 5432, timeout = 60 }
# Services started, and ready, before this one.
# depends_on = ["cache"]
# Ports published on this machine (only those listed), as in [env].
# ports = ["5432:5432"]
#
# [services.cache]
# image = "redis:7"
"#;

/// The commented `hutch.toml` with `image` as the environment's image.
/// The caller checks `image` (see [`write_template`]).
pub fn template(image: &str) -> String {
    TEMPLATE.replace("@IMAGE@", image)
}

/// `hutch init`: write `DIR/hutch.toml` from the template (making DIR if
/// it does not exist, as `git init DIR`), never over an existing file.
/// Returns the path written.
pub fn write_template(dir: &Path, image: Option<&str>) -> Result<PathBuf> {
    let image = image.unwrap_or(DEFAULT_IMAGE);
    if let Err(e) = super::checked::check_image(image) {
        bail!("--image {image}: {e}");
    }
    let text = template(image);
    // The template always parses; a failure here is a bug of hutch.
    Manifest::parse_in(&text, MANIFEST_FILE, Path::new("/"))
        .context("the template of hutch.toml does not parse (a bug of hutch)")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot make the directory {}", dir.display()))?;
    let path = dir.join(MANIFEST_FILE);
    let mut out = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists already; `hutch init` does not overwrite it: edit it, or remove it \
             first to start again from the template",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.sync_all()) {
        let _ = std::fs::remove_file(&path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(path)
}
