//! Warnings shown once per store: `notices/<key>` holds the text last
//! shown under that key. A warning about the host that every run would
//! repeat (cgroup limits on a cgroup v1 host) is printed the first time,
//! and again only when its text changes.

use super::{Store, write_replace_nosync};

impl Store {
    /// Whether `text` is new under `key` (never shown from this store, or
    /// different from what was); remembers it. A store that cannot be
    /// written says yes, so the warning is never lost.
    pub fn first_showing(&self, key: &str, text: &str) -> bool {
        let dir = self.root.join("notices");
        let path = dir.join(key);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            return false;
        }
        let _ = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_replace_nosync(&path, text.as_bytes()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_once_until_the_text_changes() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        assert!(store.first_showing("k", "one"));
        assert!(!store.first_showing("k", "one"));
        assert!(store.first_showing("other", "one"));
        assert!(store.first_showing("k", "two"));
        assert!(!store.first_showing("k", "two"));
    }
}
