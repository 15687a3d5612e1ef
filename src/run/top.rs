//! `hutch top`: the processes of a running container, as `podman top`
//! shows them: pids as the container sees them, users from its own
//! /etc/passwd, times from /proc.
//!
//! The processes are found in the host's /proc, read as the user who runs
//! the container (nothing is joined):
//!
//! * the container's PID 1 (hutch's init) is the first process below the
//!   one serving the container (its keeper, or the foreground `hutch
//!   run`; `pid` in state.json) whose last `NSpid` is 1, one level deeper
//!   than its parent: its `NSpid` has L entries, and the container's pids
//!   are the L-th entry of each member's `NSpid`;
//! * every descendant of init is in the container (a process's children
//!   are in its PID namespace or one below);
//! * so are processes that `hutch exec` started, whose parent (the
//!   joiner) is outside: a process with L `NSpid` entries is a member when
//!   `/proc/PID/ns/pid` is the namespace of a known member (readable for
//!   the container's commands, which ran execve inside; init and joiners
//!   are not dumpable, which is why init is found by descent), and so are
//!   its descendants.
//!
//! A process that ends during the scan is left out.

use super::users::Accounts;
use crate::sandbox::spec::{IdMap, SandboxSpec};
use crate::store::Store;
use crate::store::containers::{ContainerError, ContainerInfo};
use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;

/// One process of a container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Process {
    /// Its pid on the host.
    pub(crate) host_pid: i32,
    /// Its pid in the container's PID namespace.
    pub(crate) pid: i32,
    /// Its parent's pid there; 0 when the parent is outside (init, or a
    /// command `hutch exec` started).
    pub(crate) ppid: i32,
    /// Its effective uid on the host, and in the container.
    pub(crate) host_uid: u32,
    pub(crate) uid: u32,
    /// The container's name for `uid` (its /etc/passwd), else the number.
    pub(crate) user: String,
    /// The kernel's name of the command (`comm`, at most 15 bytes).
    pub(crate) comm: String,
    /// Its command line (`[comm]` when it has none, like a zombie).
    pub(crate) args: Vec<String>,
    /// `pts/0`, or `?` without a controlling terminal.
    pub(crate) tty: String,
    /// Since it started, and the CPU time it used, in nanoseconds.
    pub(crate) elapsed_ns: u64,
    pub(crate) cpu_ns: u64,
}

impl Process {
    /// CPU time over elapsed time, in percent (ps's and Podman's %CPU).
    pub(crate) fn pcpu(&self) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            self.cpu_ns as f64 * 100.0 / self.elapsed_ns as f64
        }
    }
}

/// The processes of the running container `key`, ordered by their pid in
/// it.
pub(crate) fn top(store: &Store, key: &str) -> Result<Vec<Process>> {
    let c = store.find_container(key)?;
    let not_running = || ContainerError::NotRunning {
        name: c.state.name.clone(),
    };
    if !c.alive {
        return Err(not_running().into());
    }
    let spec = super::spec_file::load(&store.container_dir(&c.state.id), &c.state.name)?;
    let table = ProcTable::scan();
    let Some(found) = table.container(&c, &pid_namespace) else {
        // Stopped since, or between two runs of its keeper.
        if !store.container_alive(&c.state.id) {
            return Err(not_running().into());
        }
        bail!(
            "container {} has no processes right now: it is starting, or its keeper waits to \
             start it again (`hutch ps` says which); try again",
            c.state.name
        );
    };
    Ok(describe(&table, &found, &spec))
}

/// The host pid of the container's PID 1 while its command runs.
pub(crate) fn init_pid(c: &ContainerInfo) -> Option<i32> {
    if !c.alive {
        return None;
    }
    ProcTable::scan()
        .find_init(c.state.pid?)
        .map(|(pid, _)| pid)
}

/// What /proc/PID/status says of one process.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    ppid: i32,
    /// Its pid in each PID namespace from the host's down to its own.
    nspid: Vec<i32>,
    euid: u32,
}

/// Every process of the host, as far as it could be read.
#[derive(Debug, Default)]
struct ProcTable {
    entries: BTreeMap<i32, Entry>,
    children: HashMap<i32, Vec<i32>>,
}

/// A container's processes: host pids, and the `NSpid` index of its
/// namespace.
struct Found {
    members: BTreeSet<i32>,
    level: usize,
}

impl ProcTable {
    fn scan() -> ProcTable {
        let mut t = ProcTable::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return t;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(entry) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| parse_status(&s))
            {
                t.insert(pid, entry);
            }
        }
        t
    }

    fn insert(&mut self, pid: i32, e: Entry) {
        self.children.entry(e.ppid).or_default().push(pid);
        self.entries.insert(pid, e);
    }

    /// `pid` and every process below it.
    fn descendants(&self, pid: i32) -> Vec<i32> {
        let mut out = vec![pid];
        let mut i = 0;
        while i < out.len() {
            let here = out[i];
            if let Some(kids) = self.children.get(&here) {
                out.extend(kids.iter().copied().filter(|k| *k != here));
            }
            i += 1;
            // A pid reused into a loop cannot make this endless.
            if out.len() > self.entries.len() {
                break;
            }
        }
        out
    }

    /// The first process below `server` that is PID 1 of a namespace one
    /// level below its parent's: (its host pid, that level's `NSpid` count).
    fn find_init(&self, server: i32) -> Option<(i32, usize)> {
        self.descendants(server).into_iter().skip(1).find_map(|p| {
            let e = self.entries.get(&p)?;
            let parent = self.entries.get(&e.ppid)?;
            (e.nspid.len() >= 2
                && e.nspid.last() == Some(&1)
                && parent.nspid.len() + 1 == e.nspid.len())
            .then_some((p, e.nspid.len()))
        })
    }

    /// The members of container `c`; `ns_of` gives a process's PID
    /// namespace when it may be read ([`pid_namespace`]).
    fn container(
        &self,
        c: &ContainerInfo,
        ns_of: &dyn Fn(i32) -> Option<(u64, u64)>,
    ) -> Option<Found> {
        let (init, level) = self.find_init(c.state.pid?)?;
        let mut members: BTreeSet<i32> = self.descendants(init).into_iter().collect();
        // The namespace, from a member whose /proc/PID/ns/pid we may read.
        let ns = members
            .iter()
            .filter(|p| self.entries.get(p).is_some_and(|e| e.nspid.len() == level))
            .find_map(|p| ns_of(*p));
        if let Some(ns) = ns {
            let joined: Vec<i32> = self
                .entries
                .iter()
                .filter(|(p, e)| {
                    e.nspid.len() == level && !members.contains(p) && ns_of(**p) == Some(ns)
                })
                .map(|(p, _)| *p)
                .collect();
            for p in joined {
                members.extend(self.descendants(p));
            }
        }
        members.retain(|p| self.entries.contains_key(p));
        Some(Found {
            members,
            level: level - 1,
        })
    }
}

/// (device, inode) of the PID namespace of `pid`, when we may see it.
fn pid_namespace(pid: i32) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn parse_status(text: &str) -> Option<Entry> {
    let mut ppid = None;
    let mut nspid = None;
    let mut euid = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut nums = value.split_whitespace().map(|v| v.parse::<i64>().ok());
        match key {
            "PPid" => ppid = nums.next().flatten().map(|v| v as i32),
            // Real, effective, saved, filesystem: ps shows the effective.
            "Uid" => euid = nums.nth(1).flatten().map(|v| v as u32),
            "NSpid" => {
                nspid = nums
                    .map(|v| v.map(|v| v as i32))
                    .collect::<Option<Vec<_>>>()
            }
            _ => {}
        }
    }
    Some(Entry {
        ppid: ppid?,
        nspid: nspid.filter(|n| !n.is_empty())?,
        euid: euid?,
    })
}

/// What /proc/PID/stat says: the command's name, its terminal and times
/// in clock ticks.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    comm: String,
    tty_nr: u64,
    cpu_ticks: u64,
    start_ticks: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The name may hold spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields from the third (state) on.
    let f: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        comm,
        tty_nr: num(4)?,
        cpu_ticks: num(11)? + num(12)?,
        start_ticks: num(19)?,
    })
}

/// A terminal's name from `tty_nr` as ps writes it (`pts/0`, `tty1`).
fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 0 => "tty".into(),
        5 if minor == 1 => "console".into(),
        _ => format!("{major},{minor}"),
    }
}

/// `host` mapped back into the container through its uid map (65534,
/// the overflow id, when unmapped, as the kernel shows it inside).
fn inside_id(maps: &[IdMap], host: u32) -> u32 {
    maps.iter()
        .find(|m| host >= m.outside && host - m.outside < m.count)
        .map(|m| m.inside + (host - m.outside))
        .unwrap_or(65534)
}

fn describe(table: &ProcTable, found: &Found, spec: &SandboxSpec) -> Vec<Process> {
    // The container's own /etc/passwd: its upper dir over the image.
    let mut layers = vec![spec.rootfs.upper.clone()];
    layers.extend(spec.rootfs.lowers.iter().cloned());
    let accounts = Accounts::of_image(&layers);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let ticks_ns = |t: u64| t.saturating_mul(1_000_000_000) / hz;
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let now_ns = (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64);
    let level = found.level;
    let mut out: Vec<Process> = found
        .members
        .iter()
        .filter_map(|&host_pid| {
            let e = table.entries.get(&host_pid)?;
            let stat = std::fs::read_to_string(format!("/proc/{host_pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))?;
            let args: Vec<String> = std::fs::read(format!("/proc/{host_pid}/cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let mut args: Vec<String> = args;
            while args.last().is_some_and(|a| a.is_empty()) {
                args.pop();
            }
            if args.is_empty() {
                args = vec![format!("[{}]", stat.comm)];
            }
            let ppid = if found.members.contains(&e.ppid) {
                table
                    .entries
                    .get(&e.ppid)
                    .and_then(|p| p.nspid.get(level).copied())
                    .unwrap_or(0)
            } else {
                0
            };
            let uid = inside_id(&spec.id_maps.uid, e.euid);
            let user = accounts
                .passwd
                .iter()
                .find(|p| p.uid == uid)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| uid.to_string());
            Some(Process {
                host_pid,
                pid: *e.nspid.get(level)?,
                ppid,
                host_uid: e.euid,
                uid,
                user,
                comm: stat.comm,
                args,
                tty: tty_name(stat.tty_nr),
                elapsed_ns: now_ns.saturating_sub(ticks_ns(stat.start_ticks)),
                cpu_ns: ticks_ns(stat.cpu_ticks),
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// A duration as Go prints a `time.Duration` (`1h2m3.5s`, `20.38s`,
/// `150ms`, `0s`), which is how `podman top` writes ELAPSED and TIME.
pub(crate) fn go_duration(ns: u64) -> String {
    fn frac(v: u64, digits: usize) -> String {
        let s = format!("{v:0digits$}");
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    }
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}{}µs", n / 1_000, frac(n % 1_000, 3)),
        n if n < 1_000_000_000 => format!("{}{}ms", n / 1_000_000, frac(n % 1_000_000, 6)),
        n => {
            let secs = n / 1_000_000_000;
            let s = format!("{}{}s", secs % 60, frac(n % 1_000_000_000, 9));
            match (secs / 3600, secs / 60 % 60) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ppid: i32, nspid: &[i32]) -> Entry {
        Entry {
            ppid,
            nspid: nspid.to_vec(),
            euid: 1000,
        }
    }

    #[test]
    fn status_and_stat_lines() {
        let status = "Name:\tsleep\nPPid:\t4711\nUid:\t1000\t101233\t1000\t1000\nNSpid:\t4800\t2\n";
        assert_eq!(
            parse_status(status),
            Some(Entry {
                ppid: 4711,
                nspid: vec![4800, 2],
                euid: 101233
            })
        );
        // A kernel without NSpid gives nothing to place the process by.
        assert_eq!(parse_status("PPid:\t1\nUid:\t0\t0\t0\t0\n"), None);
        let stat = "4800 (we(ird) name) S 4711 4800 4800 34816 4800 4194304 100 0 0 0 \
                    7 3 0 0 20 0 1 0 123456 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                comm: "we(ird) name".into(),
                tty_nr: 34816,
                cpu_ticks: 10,
                start_ticks: 123456,
            })
        );
        assert_eq!(tty_name(34816), "pts/0");
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
    }

    /// Init is found below the server by its `NSpid`, its descendants are
    /// members, and so is a command `hutch exec` started (its parent is
    /// outside) in the same namespace, with its children; another
    /// container's processes at the same level are not.
    #[test]
    fn members_by_descent() {
        let mut t = ProcTable::default();
        t.insert(100, entry(1, &[100])); // keeper
        t.insert(101, entry(100, &[101])); // its run (launcher)
        t.insert(102, entry(101, &[102])); // relay
        t.insert(103, entry(102, &[103, 1])); // init
        t.insert(104, entry(103, &[104, 2])); // sh
        t.insert(105, entry(104, &[105, 3])); // sleep
        t.insert(106, entry(104, &[106, 4, 1])); // a nested container's init
        t.insert(200, entry(1, &[200])); // another keeper
        t.insert(203, entry(200, &[203, 1])); // its init
        t.insert(204, entry(203, &[204, 2])); // its command
        t.insert(300, entry(1, &[300])); // hutch exec
        t.insert(301, entry(300, &[301])); // its joiner
        t.insert(302, entry(301, &[302, 7])); // the command it started
        t.insert(303, entry(302, &[303, 8])); // and its child
        // What may be read of /proc/PID/ns/pid: the commands (init and
        // joiners are not dumpable).
        let ns = |p: i32| match p {
            104 | 105 | 302 | 303 => Some((9, 1)),
            204 => Some((9, 2)),
            _ => None,
        };
        assert_eq!(t.find_init(100), Some((103, 2)));
        assert_eq!(t.find_init(105), None);
        let mut c = crate::store::containers::ContainerInfo {
            state: serde_json::from_value(serde_json::json!({
                "id": "ab", "name": "c", "image": "i", "image_id": "x", "layers": [],
                "command": [], "profile": "default", "created": "", "status": "running",
                "pid": 100, "exit_code": null, "finished": null,
            }))
            .unwrap(),
            alive: true,
        };
        let found = t.container(&c, &ns).unwrap();
        assert_eq!(found.level, 1);
        assert_eq!(
            found.members.iter().copied().collect::<Vec<_>>(),
            vec![103, 104, 105, 106, 302, 303]
        );
        // Without a readable member, only what descends from init.
        let found = t.container(&c, &|_| None).unwrap();
        assert_eq!(
            found.members.iter().copied().collect::<Vec<_>>(),
            vec![103, 104, 105, 106]
        );
        c.state.pid = Some(200);
        let found = t.container(&c, &ns).unwrap();
        assert_eq!(
            found.members.iter().copied().collect::<Vec<_>>(),
            vec![203, 204]
        );
        c.state.pid = Some(105);
        assert!(t.container(&c, &ns).is_none());
    }

    #[test]
    fn ids_map_back_into_the_container() {
        let maps = [
            IdMap {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: 100000,
                count: 65536,
            },
        ];
        assert_eq!(inside_id(&maps, 1000), 0);
        assert_eq!(inside_id(&maps, 100000 + 1233), 1234);
        assert_eq!(inside_id(&maps, 5), 65534);
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(10_000_000), "10ms");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(20_386_825_206), "20.386825206s");
        assert_eq!(go_duration(120_000_000_000), "2m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(999), "999ns");
        assert_eq!(go_duration(1_230), "1.23µs");
    }
}
