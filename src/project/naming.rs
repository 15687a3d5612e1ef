//! What a project's things are called in the store: its containers, the
//! images it builds, its named volumes and its state directory, all
//! derived from one project name.
//!
//! The name is the root directory's name (lowercase letters, digits and
//! `-`), then `-` and six hex digits of the sha256 of the root's absolute
//! path: two checkouts called `app` in different directories never share
//! a container or a volume, and the name still says which project it is
//! in `hutch ps`.

use crate::oci::Digest;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// A project's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Project {
    /// The root directory (absolute), holding hutch.toml.
    pub(crate) root: PathBuf,
    /// `DIRNAME-HEX6`.
    pub(crate) name: String,
}

impl Project {
    /// The names of the project rooted at `root` (absolute).
    pub(crate) fn of(root: &Path) -> Project {
        let base: String = root
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let base = base.trim_matches('-');
        let base = if base.is_empty() { "project" } else { base };
        let base: String = base.chars().take(40).collect();
        let hash = Digest::of(root.as_os_str().as_encoded_bytes());
        let hex = &hash.hex()[..6];
        Project {
            root: root.to_owned(),
            name: format!("{}-{hex}", base.trim_end_matches('-')),
        }
    }

    /// The environment's container (`hutch shell` joins it; it holds the
    /// project's network namespace, which the services share).
    pub(crate) fn env_container(&self) -> String {
        format!("{}-env", self.name)
    }

    /// A service's container.
    pub(crate) fn service_container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }

    /// The tag of an image the project builds (`env`, or a service's
    /// name): `localhost/NAME/WHAT:latest`, moved with history by each
    /// build (`hutch rollback`).
    pub(crate) fn image_tag(&self, what: &str) -> String {
        format!("localhost/{}/{what}:latest", self.name)
    }

    /// A named volume of hutch.toml, in the store: `NAME_VOLUME`.
    pub(crate) fn volume(&self, volume: &str) -> String {
        format!("{}_{volume}", self.name)
    }

    /// Whether a store volume is one of this project's.
    pub(crate) fn owns_volume(&self, store_name: &str) -> bool {
        store_name
            .strip_prefix(&self.name)
            .is_some_and(|rest| rest.starts_with('_'))
    }

    /// The project's directory in the store: `projects/NAME/` (the shells
    /// lock and what the environment's container was made from).
    pub(crate) fn state_dir(&self, store: &Store) -> PathBuf {
        store.root().join("projects").join(&self.name)
    }
}

/// The project root for a command run in `start`: the nearest directory
/// at or above it with a hutch.toml (as git finds its repository), else
/// `start` itself (whose missing hutch.toml is then reported).
pub(crate) fn find_root(start: &Path) -> PathBuf {
    let start = std::path::absolute(start).unwrap_or_else(|_| start.to_owned());
    let mut dir = start.as_path();
    loop {
        if dir.join(super::manifest::MANIFEST_FILE).is_file() {
            return dir.to_owned();
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_and_differ_by_path() {
        let a = Project::of(Path::new("/home/me/My App"));
        assert!(a.name.starts_with("my-app-"), "{}", a.name);
        assert_eq!(a.name.len(), "my-app-".len() + 6);
        let b = Project::of(Path::new("/tmp/My App"));
        assert_ne!(a.name, b.name);
        assert_eq!(a.env_container(), format!("{}-env", a.name));
        assert_eq!(a.service_container("db"), format!("{}-db", a.name));
        assert_eq!(a.volume("data"), format!("{}_data", a.name));
        assert!(a.owns_volume(&a.volume("data")));
        assert!(!a.owns_volume(&b.volume("data")));
        assert!(!a.owns_volume(&format!("{}x_data", a.name)));
        let tag = a.image_tag("env");
        assert!(crate::oci::reference::parse_any(&tag).is_ok(), "{tag}");
        // Every name is a valid container and volume name.
        assert!(crate::store::volumes::check_volume_name(&a.volume("data")).is_ok());
        let odd = Project::of(Path::new("/"));
        assert!(odd.name.starts_with("project-"), "{}", odd.name);
        let odd = Project::of(Path::new("/x/--.__"));
        assert!(odd.name.starts_with("project-"), "{}", odd.name);
    }

    #[test]
    fn the_root_is_found_above() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("p");
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        assert_eq!(find_root(&root.join("src/deep")), root.join("src/deep"));
        std::fs::write(root.join("hutch.toml"), "").unwrap();
        assert_eq!(find_root(&root.join("src/deep")), root);
        assert_eq!(find_root(&root), root);
    }
}
