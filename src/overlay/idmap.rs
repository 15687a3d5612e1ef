//! Shifted owners, as fuse-overlayfs shifts them: the options
//! `uidmapping=`/`gidmapping=` and `squash_to_root`, `squash_to_uid=`,
//! `squash_to_gid=` of `hutch-overlayfs`.
//!
//! Two kinds of ids meet here:
//! * **stored**: the owner a layer or the upper dir holds (the ownership
//!   record, or the owner on disk for symlinks, fifos and sockets; see
//!   `format`, "Ownership and modes");
//! * **shown**: the owner the FUSE server reports to the kernel, and the
//!   ids it receives from it (the caller of a create, the new owner of a
//!   chown).
//!
//! A map is `STORED:SHOWN:LEN` triples joined by `:`: stored ids
//! `STORED..STORED+LEN` are shown as `SHOWN..SHOWN+LEN` (fuse-overlayfs's
//! `host:to:len`). containers-storage writes Podman's `--uidmap` this way
//! (`ContainerID:HostID:Size`): the layers hold the container's ids, the
//! mount shows the ids of Podman's namespace. As fuse-overlayfs does:
//! * showing: a stored id outside every triple is shown as the overflow
//!   id (`/proc/sys/kernel/overflowuid`/`overflowgid`, 65534);
//! * storing (new entries get the caller's id, chown): a shown id outside
//!   every triple is stored as the overflow id;
//! * the triples are tried last first, which only matters for overlapping
//!   ranges (fuse-overlayfs accepts them; so does hutch);
//! * a copy-up keeps the stored ids as they are.
//!
//! The squash options change only what is shown: every uid is shown as
//! `squash_to_uid`, else 0 with `squash_to_root`; every gid as
//! `squash_to_gid`, else 0 with `squash_to_root`; an id the squash does not
//! cover goes through its map as above. Storing ignores them (the map, or
//! the id itself), and a change of an owner on disk that fails (the
//! `lchown` of a symlink, fifo or socket) is not an error then, as
//! fuse-overlayfs ignores every failed chown while squashing.
//!
//! Without any of these options there is no [`IdMap`] at all: the overlay
//! holds an `Option<IdMap>` and shows stored ids after one test of it.

use anyhow::{Result, bail};

/// The largest id (`(uid_t)-1` is "no id").
pub const MAX_ID: u32 = u32::MAX - 1;

/// One triple: stored ids `stored..stored+len` are shown as
/// `shown..shown+len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub stored: u32,
    pub shown: u32,
    pub len: u32,
}

impl IdRange {
    fn show(&self, id: u32) -> Option<u32> {
        let d = id.checked_sub(self.stored)?;
        (d < self.len).then(|| self.shown + d)
    }

    fn store(&self, id: u32) -> Option<u32> {
        let d = id.checked_sub(self.shown)?;
        (d < self.len).then(|| self.stored + d)
    }
}

/// Parse the value of `key` (`uidmapping` or `gidmapping`):
/// `STORED:SHOWN:LEN[:STORED:SHOWN:LEN...]`. Empty fields are skipped, as
/// fuse-overlayfs does (`0:1000:1:` is one triple). Returned in lookup
/// order (last given first).
pub fn parse_ranges(key: &str, v: &str) -> Result<Vec<IdRange>> {
    let fields: Vec<&str> = v.split(':').filter(|f| !f.is_empty()).collect();
    if fields.is_empty() || !fields.len().is_multiple_of(3) {
        bail!(
            "{key}={v}: expected STORED:SHOWN:LEN triples joined by ':' \
             (e.g. {key}=0:100000:65536), got {} number(s)",
            fields.len()
        );
    }
    let mut out = Vec::with_capacity(fields.len() / 3);
    for t in fields.chunks(3) {
        let mut n = [0u32; 3];
        for (slot, f) in n.iter_mut().zip(t) {
            *slot = f.parse::<u32>().map_err(|_| {
                anyhow::anyhow!(
                    "{key}={v}: {f:?} in {} is not an id or length \
                     (a decimal number from 0 to {MAX_ID})",
                    t.join(":")
                )
            })?;
        }
        let [stored, shown, len] = n;
        if len == 0 {
            bail!("{key}={v}: {stored}:{shown}:0 maps no id; give its length or drop it");
        }
        let last = |start: u32| u64::from(start) + u64::from(len) - 1;
        if last(stored) > u64::from(MAX_ID) || last(shown) > u64::from(MAX_ID) {
            bail!(
                "{key}={v}: {stored}:{shown}:{len} runs past the largest id {MAX_ID}; \
                 shorten it"
            );
        }
        out.push(IdRange { stored, shown, len });
    }
    out.reverse();
    Ok(out)
}

fn parse_id(key: &str, v: &str) -> Result<u32> {
    match v.parse::<u32>() {
        Ok(id) if id <= MAX_ID => Ok(id),
        _ => bail!("{key}={v}: expected an id (a decimal number from 0 to {MAX_ID})"),
    }
}

/// What the command line asks for (each option given last wins, as with
/// fuse-overlayfs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdOptions {
    pub uidmapping: Option<Vec<IdRange>>,
    pub gidmapping: Option<Vec<IdRange>>,
    pub squash_to_root: bool,
    pub squash_to_uid: Option<u32>,
    pub squash_to_gid: Option<u32>,
}

impl IdOptions {
    /// Take the mount option `key[=value]` if it is one of these: `Ok(true)`
    /// when taken, `Ok(false)` when it is another option.
    pub fn take(&mut self, key: &str, value: Option<&str>) -> Result<bool> {
        let need = |what: &str| match value {
            Some(v) => Ok(v),
            None => bail!("option {key} needs a value ({key}={what})"),
        };
        match key {
            "uidmapping" => self.uidmapping = Some(parse_ranges(key, need("STORED:SHOWN:LEN")?)?),
            "gidmapping" => self.gidmapping = Some(parse_ranges(key, need("STORED:SHOWN:LEN")?)?),
            "squash_to_uid" => self.squash_to_uid = Some(parse_id(key, need("UID")?)?),
            "squash_to_gid" => self.squash_to_gid = Some(parse_id(key, need("GID")?)?),
            "squash_to_root" => {
                if let Some(v) = value {
                    bail!("squash_to_root={v}: squash_to_root takes no value");
                }
                self.squash_to_root = true;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The map these options make, with the overflow ids `overflow` (uid,
    /// gid; [`overflow_ids`]); `None` when they change nothing.
    pub fn build(&self, overflow: (u32, u32)) -> Option<IdMap> {
        let root = self.squash_to_root.then_some(0);
        let m = IdMap {
            uids: self.uidmapping.clone(),
            gids: self.gidmapping.clone(),
            show_uid: self.squash_to_uid.or(root),
            show_gid: self.squash_to_gid.or(root),
            overflow_uid: overflow.0,
            overflow_gid: overflow.1,
        };
        let identity =
            m.uids.is_none() && m.gids.is_none() && m.show_uid.is_none() && m.show_gid.is_none();
        (!identity).then_some(m)
    }
}

/// The kernel's overflow uid and gid (what an id without a mapping is
/// shown as), 65534 where they cannot be read.
pub fn overflow_ids() -> (u32, u32) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(65534)
    };
    (
        read("/proc/sys/kernel/overflowuid"),
        read("/proc/sys/kernel/overflowgid"),
    )
}

/// Stored ids to shown ids and back ([module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct IdMap {
    uids: Option<Vec<IdRange>>,
    gids: Option<Vec<IdRange>>,
    /// Every uid is shown as this (squash_to_uid, or 0 for squash_to_root).
    show_uid: Option<u32>,
    show_gid: Option<u32>,
    overflow_uid: u32,
    overflow_gid: u32,
}

fn show(ranges: &Option<Vec<IdRange>>, id: u32, overflow: u32) -> u32 {
    match ranges {
        None => id,
        Some(r) => r.iter().find_map(|r| r.show(id)).unwrap_or(overflow),
    }
}

fn store(ranges: &Option<Vec<IdRange>>, id: u32, overflow: u32) -> u32 {
    match ranges {
        None => id,
        Some(r) => r.iter().find_map(|r| r.store(id)).unwrap_or(overflow),
    }
}

impl IdMap {
    /// The uid to show for a stored uid.
    pub fn shown_uid(&self, stored: u32) -> u32 {
        self.show_uid
            .unwrap_or_else(|| show(&self.uids, stored, self.overflow_uid))
    }

    /// The gid to show for a stored gid.
    pub fn shown_gid(&self, stored: u32) -> u32 {
        self.show_gid
            .unwrap_or_else(|| show(&self.gids, stored, self.overflow_gid))
    }

    /// The uid to store for a shown uid (a caller's, a chown's).
    pub fn stored_uid(&self, shown: u32) -> u32 {
        store(&self.uids, shown, self.overflow_uid)
    }

    /// The gid to store for a shown gid.
    pub fn stored_gid(&self, shown: u32) -> u32 {
        store(&self.gids, shown, self.overflow_gid)
    }

    /// Whether a squash option is on: owners shown are not the stored
    /// ones mapped, and failed owner changes on disk are ignored.
    pub fn squashes(&self) -> bool {
        self.show_uid.is_some() || self.show_gid.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERFLOW: (u32, u32) = (65534, 65533);

    fn map(opts: &[(&str, Option<&str>)]) -> Option<IdMap> {
        let mut o = IdOptions::default();
        for (k, v) in opts {
            assert!(o.take(k, *v).unwrap(), "{k} not taken");
        }
        o.build(OVERFLOW)
    }

    #[test]
    fn triples_parse_in_lookup_order() {
        let r = parse_ranges("uidmapping", "0:1000:1:1:100000:65536").unwrap();
        assert_eq!(
            r,
            [
                IdRange {
                    stored: 1,
                    shown: 100000,
                    len: 65536
                },
                IdRange {
                    stored: 0,
                    shown: 1000,
                    len: 1
                },
            ]
        );
        // Empty fields are skipped, as fuse-overlayfs's strtok does.
        assert_eq!(
            parse_ranges("uidmapping", ":0:1000:1:").unwrap(),
            [IdRange {
                stored: 0,
                shown: 1000,
                len: 1
            }]
        );
        // The largest range that fits.
        assert!(parse_ranges("gidmapping", "0:0:4294967295").is_ok());
    }

    #[test]
    fn bad_triples_are_refused_with_what_is_wrong() {
        for (v, says) in [
            ("", "triples"),
            ("0:1000", "got 2 number(s)"),
            ("0:1000:1:5", "got 4 number(s)"),
            ("a:1000:1", "\"a\" in a:1000:1 is not an id"),
            ("0:-1:1", "\"-1\" in 0:-1:1 is not an id"),
            ("0:1000:4294967296", "is not an id or length"),
            ("0:1000:0", "maps no id"),
            ("4294967290:0:10", "runs past the largest id 4294967294"),
            ("0:4294967290:10", "runs past the largest id"),
            ("0:0:4294967296", "not an id"),
            ("4294967295:0:1", "runs past"),
        ] {
            let e = parse_ranges("uidmapping", v).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("uidmapping={v}: ")) && e.contains(says),
                "{v:?}: {e}"
            );
        }
    }

    #[test]
    fn both_directions_with_ranges_and_unmapped_ids() {
        let m = map(&[
            ("uidmapping", Some("0:1000:1:1:100000:65536")),
            ("gidmapping", Some("0:2000:10")),
        ])
        .unwrap();
        // stored -> shown
        assert_eq!(m.shown_uid(0), 1000);
        assert_eq!(m.shown_uid(1), 100000);
        assert_eq!(m.shown_uid(65536), 165535);
        assert_eq!(m.shown_uid(65537), 65534, "past the range: overflow");
        assert_eq!(m.shown_gid(9), 2009);
        assert_eq!(m.shown_gid(10), 65533, "overflow gid");
        // shown -> stored
        assert_eq!(m.stored_uid(1000), 0);
        assert_eq!(m.stored_uid(100000), 1);
        assert_eq!(m.stored_uid(165535), 65536);
        assert_eq!(m.stored_uid(999), 65534, "not shown by any triple");
        assert_eq!(m.stored_uid(0), 65534);
        assert_eq!(m.stored_gid(2000), 0);
        assert_eq!(m.stored_gid(0), 65533);
        // A round trip for every mapped id.
        for id in [0, 1, 500, 65536] {
            assert_eq!(m.stored_uid(m.shown_uid(id)), id);
        }
        assert!(!m.squashes());
    }

    #[test]
    fn one_map_alone_leaves_the_other_ids_alone() {
        let m = map(&[("uidmapping", Some("0:1000:1"))]).unwrap();
        assert_eq!(m.shown_uid(0), 1000);
        assert_eq!(m.shown_gid(5), 5);
        assert_eq!(m.stored_gid(123456), 123456);
    }

    #[test]
    fn overlapping_triples_the_last_given_wins() {
        // fuse-overlayfs 1.x: stored 5 is in both; its last triple decides.
        let m = map(&[("uidmapping", Some("0:100:10:5:200:10"))]).unwrap();
        assert_eq!(m.shown_uid(5), 200);
        assert_eq!(m.shown_uid(4), 104);
        assert_eq!(m.stored_uid(105), 5);
        assert_eq!(m.stored_uid(200), 5);
    }

    #[test]
    fn squash_shows_one_owner_and_stores_through_the_map() {
        let m = map(&[("squash_to_root", None)]).unwrap();
        assert_eq!((m.shown_uid(1234), m.shown_gid(99)), (0, 0));
        assert_eq!((m.stored_uid(1234), m.stored_gid(99)), (1234, 99));
        assert!(m.squashes());

        // squash_to_uid wins over squash_to_root for uids only.
        let m = map(&[("squash_to_root", None), ("squash_to_uid", Some("7"))]).unwrap();
        assert_eq!((m.shown_uid(1234), m.shown_gid(99)), (7, 0));

        // squash_to_uid alone: gids are the stored ones (or mapped).
        let m = map(&[
            ("squash_to_uid", Some("7")),
            ("gidmapping", Some("0:100:10")),
        ])
        .unwrap();
        assert_eq!((m.shown_uid(3), m.shown_gid(3)), (7, 103));
        assert_eq!(m.shown_gid(10), 65533);
        // Storing uses the map, never the squash.
        assert_eq!((m.stored_uid(7), m.stored_gid(103)), (7, 3));

        let m = map(&[
            ("squash_to_gid", Some("8")),
            ("uidmapping", Some("0:100:10")),
        ])
        .unwrap();
        assert_eq!((m.shown_uid(3), m.shown_gid(3)), (103, 8));
        assert_eq!(m.stored_uid(103), 3);
    }

    #[test]
    fn no_option_no_map() {
        assert_eq!(IdOptions::default().build(OVERFLOW), None);
        // Control: one option makes a map.
        assert!(map(&[("squash_to_gid", Some("0"))]).is_some());
    }

    #[test]
    fn option_values_checked() {
        let mut o = IdOptions::default();
        assert!(!o.take("lowerdir", Some("/l")).unwrap());
        for (k, v, says) in [
            ("squash_to_uid", Some("-1"), "expected an id"),
            ("squash_to_uid", Some("4294967295"), "expected an id"),
            ("squash_to_gid", Some("x"), "expected an id"),
            ("squash_to_gid", None, "needs a value"),
            ("uidmapping", None, "needs a value"),
            ("squash_to_root", Some("1"), "takes no value"),
        ] {
            let e = o.take(k, v).unwrap_err().to_string();
            assert!(e.contains(says), "{k}={v:?}: {e}");
        }
        assert_eq!(o, IdOptions::default(), "a refused option changed nothing");
        // The last given wins.
        o.take("squash_to_uid", Some("1")).unwrap();
        o.take("squash_to_uid", Some("2")).unwrap();
        assert_eq!(o.squash_to_uid, Some(2));
    }

    #[test]
    fn overflow_ids_read() {
        let (u, g) = overflow_ids();
        assert!(u > 0 && g > 0 && u <= MAX_ID && g <= MAX_ID);
    }
}
