//! Reaching a container's files for `hutch cp` and `hutch export`, running
//! or not: a running container through its own namespaces (served on its
//! join socket); a stopped one by mounting its overlay in a namespace of
//! the visitor's own (sandbox/visit.rs), holding its running lock all
//! the while, so that `hutch start` cannot run it on the same upper dir
//! meanwhile (it finds the container busy and leaves it).

use super::spec_file;
use crate::sandbox::namespaces::{self, JoinError, Namespaces};
use crate::sandbox::spec::SandboxSpec;
use crate::sandbox::visit::Tree;
use crate::store::Store;
use crate::store::containers::RunningLock;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// How long a container whose lock is held may take to serve its
/// namespaces (it is starting).
const STARTING: Duration = Duration::from_secs(5);

/// A container whose files can be visited.
pub(crate) struct Reached {
    pub(crate) name: String,
    /// Its spec (working directory, layers, id maps).
    pub(crate) spec: SandboxSpec,
    way: Way,
}

enum Way {
    Running(Namespaces),
    /// Held until the visit is over.
    Stopped(#[allow(dead_code)] RunningLock),
}

impl Reached {
    pub(crate) fn tree(&self) -> Tree<'_> {
        match &self.way {
            Way::Running(ns) => Tree::Running(ns),
            Way::Stopped(_) => Tree::Stopped(&self.spec),
        }
    }
}

/// The container named `key` (name, full ID or unique ID prefix).
pub(crate) fn reach(store: &Store, key: &str) -> Result<Reached> {
    let c = store.find_container(key)?;
    let name = c.state.name.clone();
    let dir = store.container_dir(&c.state.id);
    let spec = spec_file::load(&dir, &name)?;
    let t0 = Instant::now();
    loop {
        if let Some(lock) = store.try_running_lock(&c.state.id)? {
            return Ok(Reached {
                name,
                spec,
                way: Way::Stopped(lock),
            });
        }
        match namespaces::request(&dir) {
            Ok((ns, _)) => {
                return Ok(Reached {
                    name,
                    spec,
                    way: Way::Running(ns),
                });
            }
            // Starting (or just stopped: the lock is tried again).
            Err(JoinError::NotServed(e)) => {
                if t0.elapsed() > STARTING {
                    bail!(
                        "container {name} runs but its files cannot be reached ({e}); it may \
                         still be starting, or was started by an older hutch (`hutch restart {name}`)"
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(JoinError::Other(e)) => {
                return Err(e.context(format!("joining container {name}")));
            }
        }
    }
}
