#!/usr/bin/env python3
"""File-system exerciser for hutch's differential overlay tests (stdlib only).

Runs inside a mount namespace where an overlay is mounted at ROOT (the kernel
overlayfs or hutch's FUSE overlay) and prints what it sees as JSON, so that
the same run on both can be compared line by line.

    ops.py run --seed N --steps K ROOT   random operations, one JSON line each
    ops.py scenario NAME ROOT            one hand-written scenario (JSON lines)
    ops.py scenarios                     the scenario names, one a line
    ops.py dump ROOT                     canonical JSON of the visible tree
    ops.py dump --raw DIR                the same for a layer/upper dir seen
                                         directly (whiteouts, all xattrs,
                                         exact times, ctime, inode groups)
    ops.py strip-override DIR            remove user.containers.override_stat
                                         from everything under DIR
    ops.py append-worker FILE BARRIER TAG COUNT BLOCK
                                         wait for BARRIER to exist, then
                                         append COUNT blocks to FILE

Every operation line has: i (step), op, args (paths relative to ROOT), r
("ok" or the errno name) and, where useful, v (a value read back) and post
(the lstat summary of the main path afterwards). Scenario `check` lines carry
a name and ok=true/false: semantic facts that must hold on any overlay.

Times: a modification time before 2020-09-13 (1.6e9 s) was set on purpose
(layers are generated with old times, utime operations use old times) and is
printed exactly; later times are "recent" (set by the clock while running).
"""

import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import random
import socket
import stat
import sys
import time

OLD_NS = 1_600_000_000 * 10**9
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def renameat2(old, new, flags):
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    else:  # x86_64 syscall number
        rc = _libc.syscall(316, AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def kind(mode):
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chr"
    if stat.S_ISBLK(mode):
        return "blk"
    if stat.S_ISSOCK(mode):
        return "sock"
    return "unknown"


def norm_time(ns):
    return ns if ns < OLD_NS else "recent"


def xval(v):
    try:
        s = v.decode("ascii")
        if s.isprintable():
            return s
    except UnicodeDecodeError:
        pass
    return "0x" + v.hex()


def sha_file(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            h.update(b)
    finally:
        os.close(fd)
    return h.hexdigest()


def xattrs(path, only_user=False):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        return {"!list": ename(e)}
    for n in sorted(names):
        if only_user and not n.startswith("user."):
            continue
        try:
            out[n] = xval(os.getxattr(path, n, follow_symlinks=False))
        except OSError as e:
            out[n] = "!" + ename(e)
    return out


def count_subdirs(path):
    n = 0
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                n += 1
    return n


def summary(path, content=True):
    """The lstat summary of one path, as compared between overlays."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return ename(e)
    k = kind(st.st_mode)
    d = {
        "type": k,
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime": norm_time(st.st_mtime_ns),
    }
    if k == "dir":
        # The kernel overlay reports 1 for merged dirs ("unknown"), the real
        # count elsewhere; both answers are right, anything else is not.
        try:
            sub = count_subdirs(path)
            d["nlink_ok"] = st.st_nlink in (1, 2 + sub)
        except OSError as e:
            d["nlink_ok"] = ename(e)
    else:
        d["nlink"] = st.st_nlink
    if k in ("file", "symlink"):
        d["size"] = st.st_size
    if k == "symlink":
        try:
            d["target"] = os.readlink(path)
        except OSError as e:
            d["target"] = "!" + ename(e)
    if k == "file" and content:
        try:
            d["sha256"] = sha_file(path)
        except OSError as e:
            d["sha256"] = "!" + ename(e)
    if k in ("chr", "blk"):
        d["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
    return d


# ---------------------------------------------------------------------------
# dump


def walk(root):
    """(rel, abs) of every entry under root, sorted, not following symlinks."""
    out = []

    def rec(rel):
        p = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(p))
        except OSError as e:
            out.append((rel + "/!listdir", ename(e)))
            return
        for n in names:
            r = rel + "/" + n if rel else n
            a = os.path.join(root, r)
            out.append((r, a))
            try:
                if stat.S_ISDIR(os.lstat(a).st_mode):
                    rec(r)
            except OSError:
                pass

    rec("")
    return out


def dump(root, raw=False):
    entries = {}
    inodes = {}
    paths = [(".", root)] + walk(root)
    for rel, a in paths:
        if rel.endswith("/!listdir"):
            entries[rel] = a
            continue
        if raw:
            try:
                st = os.lstat(a)
            except OSError as e:
                entries[rel] = ename(e)
                continue
            k = kind(st.st_mode)
            d = {
                "type": k,
                "mode": "%04o" % stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "nlink": st.st_nlink,
                "mtime": st.st_mtime_ns,
                "ctime": st.st_ctime_ns,
            }
            if k == "file":
                d["size"] = st.st_size
                try:
                    d["sha256"] = sha_file(a)
                except OSError as e:
                    d["sha256"] = "!" + ename(e)
            elif k == "symlink":
                d["target"] = os.readlink(a)
            elif k in ("chr", "blk"):
                d["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
            d["xattrs"] = xattrs(a)
        else:
            d = summary(a)
            if isinstance(d, str):
                entries[rel] = d
                continue
            st = os.lstat(a)
            d["xattrs"] = xattrs(a)
        entries[rel] = d
        if not stat.S_ISDIR(st.st_mode):
            inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    out = {"entries": entries, "hardlinks": groups}
    if not raw:
        try:
            sv = os.statvfs(root)
            out["statfs"] = {"ok": True, "bsize_pos": sv.f_bsize > 0, "namemax": sv.f_namemax}
        except OSError as e:
            out["statfs"] = ename(e)
    json.dump(out, sys.stdout, sort_keys=True, indent=1)
    sys.stdout.write("\n")


def strip_override(root):
    n = 0
    for rel, a in [(".", root)] + walk(root):
        try:
            os.removexattr(a, "user.containers.override_stat", follow_symlinks=False)
            n += 1
        except OSError:
            pass
    print(n)


# ---------------------------------------------------------------------------
# operations


class Runner:
    def __init__(self, root):
        self.root = root
        self.i = 0
        self.last = None

    def p(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def emit(self, **kw):
        kw["i"] = self.i
        self.i += 1
        sys.stdout.write(json.dumps(kw, sort_keys=True) + "\n")

    def do(self, op, args, fn, post=None):
        """Run fn(); record ok/errno, fn's return value and lstat of post."""
        rec = {"op": op, "args": list(args)}
        try:
            v = fn()
            rec["r"] = "ok"
            if v is not None:
                rec["v"] = v
        except OSError as e:
            rec["r"] = ename(e)
        if post is not None:
            rec["post"] = summary(self.p(post))
        self.emit(**rec)
        self.last = rec.get("v")
        return rec["r"] == "ok"

    def check(self, name, ok, detail=None):
        rec = {"op": "check", "name": name, "ok": bool(ok)}
        if detail is not None:
            rec["detail"] = detail
        self.emit(**rec)

    # -- primitive operations (paths relative to root) -------------------
    def create(self, rel, data, mode=0o644):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return self.do("create", [rel, len(data), "%o" % mode], f, post=rel)

    def pwrite(self, rel, off, data):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                return os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        return self.do("pwrite", [rel, off, len(data)], f, post=rel)

    def append(self, rel, data):
        def f():
            fd = os.open(self.p(rel), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        return self.do("append", [rel, len(data)], f, post=rel)

    def truncate(self, rel, n):
        return self.do("truncate", [rel, n], lambda: os.truncate(self.p(rel), n), post=rel)

    def open_trunc(self, rel):
        def f():
            os.close(os.open(self.p(rel), os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK))
        return self.do("open_trunc", [rel], f, post=rel)

    def read(self, rel):
        return self.do("read", [rel], lambda: sha_file(self.p(rel)))

    def stat(self, rel):
        return self.do("stat", [rel], lambda: summary(self.p(rel)))

    def mkdir(self, rel, mode=0o755):
        return self.do("mkdir", [rel, "%o" % mode], lambda: os.mkdir(self.p(rel), mode), post=rel)

    def rmdir(self, rel):
        return self.do("rmdir", [rel], lambda: os.rmdir(self.p(rel)), post=rel)

    def unlink(self, rel):
        return self.do("unlink", [rel], lambda: os.unlink(self.p(rel)), post=rel)

    def rename(self, a, b, flags=0):
        name = {0: "rename", RENAME_NOREPLACE: "rename_noreplace",
                RENAME_EXCHANGE: "rename_exchange"}.get(flags, "rename_flags_%d" % flags)

        def f():
            if flags == 0:
                os.rename(self.p(a), self.p(b))
            else:
                renameat2(self.p(a), self.p(b), flags)
        ok = self.do(name, [a, b], f, post=b)
        self.emit(op="post", args=[a], v=summary(self.p(a)))
        return ok

    def symlink(self, target, rel):
        return self.do("symlink", [target, rel], lambda: os.symlink(target, self.p(rel)), post=rel)

    def readlink(self, rel):
        return self.do("readlink", [rel], lambda: os.readlink(self.p(rel)))

    def link(self, a, b):
        ok = self.do("link", [a, b], lambda: os.link(self.p(a), self.p(b), follow_symlinks=False), post=b)
        self.emit(op="post", args=[a], v=summary(self.p(a)))
        return ok

    def chmod(self, rel, mode):
        # chmod follows symlinks; the overlays must agree on that too.
        return self.do("chmod", [rel, "%04o" % mode], lambda: os.chmod(self.p(rel), mode), post=rel)

    def chown(self, rel, uid, gid):
        return self.do("chown", [rel, uid, gid],
                       lambda: os.chown(self.p(rel), uid, gid, follow_symlinks=False), post=rel)

    def utime(self, rel, atime_ns, mtime_ns, follow=False):
        return self.do("utime", [rel, mtime_ns, follow],
                       lambda: os.utime(self.p(rel), ns=(atime_ns, mtime_ns), follow_symlinks=follow),
                       post=rel)

    def setxattr(self, rel, name, value, flags=0):
        shown = xval(value) if len(value) <= 64 else "sha256:" + hashlib.sha256(value).hexdigest()
        return self.do("setxattr", [rel, name, shown, flags],
                       lambda: os.setxattr(self.p(rel), name, value, flags, follow_symlinks=False))

    def getxattr(self, rel, name):
        return self.do("getxattr", [rel, name],
                       lambda: xval(os.getxattr(self.p(rel), name, follow_symlinks=False)))

    def removexattr(self, rel, name):
        return self.do("removexattr", [rel, name],
                       lambda: os.removexattr(self.p(rel), name, follow_symlinks=False))

    def listxattr(self, rel):
        return self.do("listxattr", [rel],
                       lambda: sorted(os.listxattr(self.p(rel), follow_symlinks=False)))

    def mkfifo(self, rel, mode=0o644):
        return self.do("mkfifo", [rel, "%o" % mode], lambda: os.mkfifo(self.p(rel), mode), post=rel)

    def readdir(self, rel):
        def f():
            with os.scandir(self.p(rel)) as it:
                return sorted([e.name, self._dtype(e)] for e in it)
        return self.do("readdir", [rel], f)

    @staticmethod
    def _dtype(e):
        if e.is_symlink():
            return "symlink"
        if e.is_dir(follow_symlinks=False):
            return "dir"
        if e.is_file(follow_symlinks=False):
            return "file"
        return "other"

    def statfs(self, rel):
        def f():
            sv = os.statvfs(self.p(rel))
            return [sv.f_bsize > 0, sv.f_blocks > 0, sv.f_namemax]
        return self.do("statfs", [rel], f)

    def rmtree(self, rel):
        """Recursive delete, each step recorded."""
        p = self.p(rel)
        try:
            isdir = stat.S_ISDIR(os.lstat(p).st_mode)
        except OSError:
            isdir = False
        if isdir:
            try:
                names = sorted(os.listdir(p))
            except OSError as e:
                self.emit(op="rmtree_list", args=[rel], r=ename(e))
                names = []
            for n in names:
                self.rmtree(rel + "/" + n if rel else n)
            return self.rmdir(rel)
        return self.unlink(rel)

    def unlink_open_read(self, rel):
        def f():
            fd = os.open(self.p(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                os.unlink(self.p(rel))
                h = hashlib.sha256()
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    h.update(b)
                return [h.hexdigest(), os.path.lexists(self.p(rel))]
            finally:
                os.close(fd)
        return self.do("unlink_open_read", [rel], f, post=rel)

    def rename_open_write(self, a, b, data):
        """Open a for writing, rename it to b, write through the fd, read b."""
        def f():
            fd = os.open(self.p(a), os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                os.rename(self.p(a), self.p(b))
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)
            return sha_file(self.p(b))
        return self.do("rename_open_write", [a, b, len(data)], f, post=b)

    def mmap_write(self, rel, off, data):
        def f():
            fd = os.open(self.p(rel), os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    return "empty"
                off2 = off % size
                n = min(len(data), size - off2)
                m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    m[off2:off2 + n] = data[:n]
                    m.flush()
                finally:
                    m.close()
            finally:
                os.close(fd)
            return sha_file(self.p(rel))
        return self.do("mmap_write", [rel, off, len(data)], f, post=rel)

    def fifo_roundtrip(self, rel, data):
        def f():
            fd = os.open(self.p(rel), os.O_RDWR | os.O_NONBLOCK)
            try:
                os.write(fd, data)
                return xval(os.read(fd, len(data)))
            finally:
                os.close(fd)
        return self.do("fifo_roundtrip", [rel], f)


# ---------------------------------------------------------------------------
# random runs

NAMES = ["a", "b", "c", "n0", "n1", "n2", "new", "f0", "f1", "f2", "d0", "sub", "x.txt", "\u00e9t\u00e9"]
FILE_MODES = [0o644, 0o600, 0o755, 0o700, 0o444, 0o400, 0o000, 0o4755, 0o2755, 0o666, 0o640]
DIR_MODES = [0o755, 0o700, 0o555, 0o1777, 0o2775, 0o750]
SIZES = [0, 1, 17, 100, 4096, 4097, 5000, 65536, 200000]
XNAMES = ["user.a", "user.b", "user.test.long-name", "user.big"]


def listing(root):
    """(rel, kind) of every entry, sorted; dtype from readdir (no stat)."""
    out = []

    def rec(rel):
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                ents = sorted(((e.name, Runner._dtype(e)) for e in it))
        except OSError:
            return
        for n, k in ents:
            r = rel + "/" + n if rel else n
            out.append((r, k))
            if k == "dir":
                rec(r)

    rec("")
    return out


def run_random(root, seed, steps):
    rng = random.Random(seed)
    r = Runner(root)

    def data(n=None):
        if n is None:
            n = rng.choice(SIZES)
        return rng.randbytes(n)

    for step in range(steps):
        ents = listing(root)
        files = [p for p, k in ents if k == "file"]
        dirs = [p for p, k in ents if k == "dir"]
        nondirs = [p for p, k in ents if k != "dir"]
        every = [p for p, _ in ents]
        fifos_syms = [p for p, k in ents if k in ("symlink", "other")]

        def pick(lst, fallback=None):
            if not lst:
                return fallback if fallback is not None else new_path()
            return rng.choice(lst)

        def new_path():
            d = rng.choice([""] + dirs)
            if rng.random() < 0.3:
                # A name that may exist already in that directory.
                sib = [p for p in every if os.path.dirname(p) == d]
                if sib:
                    return rng.choice(sib)
            n = rng.choice(NAMES)
            return d + "/" + n if d else n

        def anyp():
            return pick(every) if rng.random() < 0.7 else new_path()

        op = rng.choices(
            ["create", "pwrite", "append", "truncate", "read", "mkdir", "rmdir", "unlink",
             "rename", "rename_noreplace", "rename_exchange", "symlink", "link", "chmod",
             "chown", "utime", "setxattr", "removexattr", "listxattr", "mkfifo", "recreate",
             "file_to_dir", "dir_to_file", "stat", "readdir", "statfs", "open_trunc",
             "unlink_open_read", "rename_open_write", "mmap_write", "rmtree", "readlink",
             "fifo_roundtrip"],
            weights=[8, 8, 6, 4, 5, 5, 4, 6, 8, 3, 2, 3, 4, 4, 2, 3, 4, 2, 2, 2, 3, 2, 2, 3, 3,
                     1, 2, 2, 2, 2, 1, 1, 1])[0]
        r.emit(op="step", args=[step, op])
        if op == "create":
            r.create(new_path(), data(), rng.choice([0o644, 0o600, 0o755, 0o444]))
        elif op == "pwrite":
            f = pick(files)
            r.pwrite(f, rng.choice([0, 1, 4095, 4096, 10000, 300000]), data())
        elif op == "append":
            r.append(pick(files), data())
        elif op == "truncate":
            f, n = pick(files), rng.choice([0, 1, 4096, 5000, 100000])
            # Never to the current size: with FUSE's writeback cache that
            # keeps mtime (tests/overlay_diff.rs, top comment); the
            # truncate_lower scenario covers it without the cache.
            try:
                if os.lstat(r.p(f)).st_size == n:
                    n += 1
            except OSError:
                pass
            r.truncate(f, n)
        elif op == "read":
            r.read(pick(files))
        elif op == "mkdir":
            r.mkdir(new_path(), rng.choice(DIR_MODES))
        elif op == "rmdir":
            r.rmdir(pick(dirs))
        elif op == "unlink":
            r.unlink(pick(nondirs))
        elif op in ("rename", "rename_noreplace", "rename_exchange"):
            src = pick(every)
            dst = new_path() if rng.random() < 0.5 else pick(every)
            flags = {"rename": 0, "rename_noreplace": RENAME_NOREPLACE,
                     "rename_exchange": RENAME_EXCHANGE}[op]
            r.rename(src, dst, flags)
        elif op == "symlink":
            tgt = rng.choice(["../" + pick(every, "x"), "/" + pick(every, "x"), "dangling", pick(every, "x")])
            r.symlink(tgt, new_path())
        elif op == "link":
            r.link(pick(nondirs), new_path())
        elif op == "chmod":
            p = pick(every)
            r.chmod(p, rng.choice(DIR_MODES if p in dirs else FILE_MODES))
        elif op == "chown":
            # Only uid 0 is mapped: 0:0 works (and drops setuid), 1000 is EINVAL.
            r.chown(pick(every), rng.choice([0, 0, 1000]), 0)
        elif op == "utime":
            t = rng.randrange(10**9, 1_500_000_000) * 10**9 + rng.randrange(10**9)
            r.utime(pick(every), t, t + 1, follow=rng.random() < 0.2)
        elif op == "setxattr":
            p = pick(files + dirs) if rng.random() < 0.9 else pick(fifos_syms, pick(every))
            name = rng.choice(XNAMES)
            val = data(2000) if name == "user.big" else rng.choice([b"", b"v", b"value-2", data(10)])
            flags = rng.choice([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE])
            r.setxattr(p, name, val, flags)
        elif op == "removexattr":
            r.removexattr(pick(files + dirs), rng.choice(XNAMES))
        elif op == "listxattr":
            r.listxattr(pick(every))
        elif op == "mkfifo":
            r.mkfifo(new_path(), rng.choice([0o644, 0o600]))
        elif op == "recreate":
            f = pick(files)
            r.unlink(f)
            r.create(f, data())
        elif op == "file_to_dir":
            f = pick(files)
            r.unlink(f)
            r.mkdir(f)
            r.create(f + "/inner", data(10))
        elif op == "dir_to_file":
            small = [d for d in dirs if sum(1 for p in every if p.startswith(d + "/")) < 12]
            d = pick(small, pick(dirs))
            r.rmtree(d)
            r.create(d, data())
        elif op == "stat":
            r.stat(anyp())
        elif op == "readdir":
            r.readdir(rng.choice([""] + dirs))
        elif op == "statfs":
            r.statfs(rng.choice([""] + dirs))
        elif op == "open_trunc":
            r.open_trunc(pick(files))
        elif op == "unlink_open_read":
            r.unlink_open_read(pick(files))
        elif op == "rename_open_write":
            r.rename_open_write(pick(files), new_path(), data(100))
        elif op == "mmap_write":
            r.mmap_write(pick(files), rng.randrange(1 << 20), data(rng.choice([1, 100, 5000])))
        elif op == "rmtree":
            # Only small trees, or a run empties everything.
            small = [d for d in dirs if sum(1 for p in every if p.startswith(d + "/")) < 12]
            r.rmtree(pick(small, pick(dirs)))
        elif op == "readlink":
            r.readlink(pick(fifos_syms, pick(every)))
        elif op == "fifo_roundtrip":
            fifos = [p for p, k in ents if k == "other"]
            if fifos:
                r.fifo_roundtrip(rng.choice(fifos), b"through the pipe")
    r.emit(op="end", args=[steps])


# ---------------------------------------------------------------------------
# scenarios (the paths refer to the layers the tests generate, see
# tests/overlay/helpers.rs: L1 bottom, L2 middle, L3 top)

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def exists(r, rel):
    return os.path.lexists(r.p(rel))


def content(r, rel):
    with open(r.p(rel), "rb") as f:
        return f.read()


def names(r, rel):
    return sorted(os.listdir(r.p(rel)))


@scenario
def whiteout_hides_lower(r):
    # L2 whites out L1's wh/gone; L3 whites out L2's wh/l2only.
    r.check("layer whiteout hides the lower file", not exists(r, "wh/gone"))
    r.check("top layer whiteout hides a middle layer file", not exists(r, "wh/l2only"))
    r.stat("wh/gone")
    r.readdir("wh")
    r.check("whiteout names are not listed", "gone" not in names(r, "wh") and "l2only" not in names(r, "wh"))
    r.unlink("wh/keep")
    r.check("unlinked lower file is gone", not exists(r, "wh/keep"))
    r.stat("wh/keep")
    r.readdir("wh")
    r.do("open_missing", ["wh/keep"], lambda: os.open(r.p("wh/keep"), os.O_RDONLY) and None)
    r.create("wh/gone", b"new gone")
    r.check("whited-out name can be created", content(r, "wh/gone") == b"new gone")
    r.unlink("wh/gone")
    r.readdir("wh")
    r.unlink("wh/gone")  # ENOENT now


@scenario
def rm_then_recreate(r):
    r.read("base/d0/f0")
    r.unlink("base/d0/f0")
    r.create("base/d0/f0", b"recreated", 0o600)
    r.check("recreated file has the new content", content(r, "base/d0/f0") == b"recreated")
    r.check("recreated file has the new mode", stat.S_IMODE(os.lstat(r.p("base/d0/f0")).st_mode) == 0o600)
    r.stat("base/d0/f0")
    # Again, with a directory over the old file.
    r.unlink("base/d0/f1")
    r.mkdir("base/d0/f1")
    r.create("base/d0/f1/inside", b"in")
    r.readdir("base/d0/f1")
    r.check("dir over whiteout is empty but for the new file", names(r, "base/d0/f1") == ["inside"])
    # And a file whose name was a lower directory.
    r.rmtree("base/d1/sub")
    r.create("base/d1/sub", b"was a dir")
    r.stat("base/d1/sub")
    r.readdir("base/d1")


@scenario
def rmdir_then_mkdir_opaque(r):
    before = names(r, "rmd/full")
    r.check("lower dir has children from two layers", len(before) >= 4, before)
    r.rmdir("rmd/full")  # ENOTEMPTY
    r.rmtree("rmd/full")
    r.check("removed dir is gone", not exists(r, "rmd/full"))
    r.mkdir("rmd/full", 0o700)
    r.readdir("rmd/full")
    r.check("recreated dir is empty (opaque)", names(r, "rmd/full") == [])
    r.create("rmd/full/fresh", b"fresh")
    r.check("only the new child is visible", names(r, "rmd/full") == ["fresh"])
    r.stat("rmd/full")
    # rmdir of an empty lower dir, mkdir again.
    r.rmdir("rmd/empty")
    r.mkdir("rmd/empty")
    r.readdir("rmd/empty")
    # rmdir of a dir whose lower children are all whited out in layers.
    r.readdir("rmd/allwh")
    r.rmdir("rmd/allwh")
    r.mkdir("rmd/allwh")
    r.check("dir over a layer-emptied dir is empty", names(r, "rmd/allwh") == [])


@scenario
def opaque_dir_from_layer(r):
    r.readdir("opq")
    r.check("opaque layer dir hides L1 children", not exists(r, "opq/l1child") and not exists(r, "opq/l1dir"))
    r.check("opaque layer dir shows its own and upper layers' children",
            exists(r, "opq/l2child") and exists(r, "opq/l3child"))
    r.stat("opq")
    r.listxattr("opq")
    r.check("opaque xattr is not visible", not any(n.startswith("user.overlay") for n in os.listxattr(r.p("opq"))))
    r.create("opq/l1child", b"not the L1 one")
    r.readdir("opq")
    r.unlink("opq/l2child")
    r.readdir("opq")
    r.read("opq/l3child")


@scenario
def copyup_keeps_metadata(r):
    f = "meta/xf"
    before = os.lstat(r.p(f))
    xb = xattrs(r.p(f))
    r.stat(f)
    r.listxattr(f)
    # Copy-up by a metadata change that touches neither mode nor times.
    r.setxattr(f, "user.added", b"1")
    after = os.lstat(r.p(f))
    r.check("copy-up keeps mtime", after.st_mtime_ns == before.st_mtime_ns, [before.st_mtime_ns, after.st_mtime_ns])
    r.check("copy-up keeps mode", after.st_mode == before.st_mode)
    xa = xattrs(r.p(f))
    r.check("copy-up keeps xattrs", {k: v for k, v in xa.items() if k != "user.added"} == xb, [xb, xa])
    r.stat(f)
    # Copy-up by opening for writing without writing keeps everything.
    g = "meta/ro"
    b2 = os.lstat(r.p(g))
    r.do("open_rdwr", [g], lambda: os.close(os.open(r.p(g), os.O_RDWR)), post=g)
    a2 = os.lstat(r.p(g))
    r.check("open O_RDWR keeps mode 0444 and mtime",
            (a2.st_mode, a2.st_mtime_ns) == (b2.st_mode, b2.st_mtime_ns))
    # Copy-up by a write changes mtime and keeps mode.
    h = "meta/exe"
    b3 = os.lstat(r.p(h))
    x3 = xattrs(r.p(h))
    r.append(h, b"#")
    a3 = os.lstat(r.p(h))
    r.check("append keeps mode 0755", a3.st_mode == b3.st_mode)
    r.check("append updates mtime", a3.st_mtime_ns != b3.st_mtime_ns)
    r.check("append keeps xattrs", xattrs(r.p(h)) == x3 and "user.exe" in x3, x3)
    r.stat(h)
    # A lower dir copied up because a child changed keeps its mode/xattrs.
    r.stat("meta")
    r.listxattr("meta")
    r.getxattr("meta", "user.dirattr")


@scenario
def chmod_chown_utimens_lower(r):
    r.chmod("attr/f644", 0o600)
    r.chmod("attr/f644b", 0o4755)
    r.chmod("attr/dir", 0o1777)
    r.chown("attr/f600", 0, 0)
    r.chown("attr/f600", 1000, 1000)  # EINVAL: not mapped
    r.chown("attr/suid", 0, 0)  # drops setuid
    r.utime("attr/times", 1_100_000_000_000_000_000, 1_200_000_000_123_456_789)
    r.utime("attr/sym", 1_000_000_000_000_000_000, 1_000_000_001_000_000_000)
    r.utime("attr/dir", 1_000_000_000_000_000_000, 1_000_000_002_000_000_000)
    st = os.lstat(r.p("attr/times"))
    r.check("utimensat sets mtime with ns precision", st.st_mtime_ns == 1_200_000_000_123_456_789, st.st_mtime_ns)
    for p in ["attr/f644", "attr/f644b", "attr/dir", "attr/f600", "attr/suid", "attr/times", "attr/sym"]:
        r.stat(p)
    r.chmod("attr/sym", 0o600)  # follows the symlink to attr/symtarget
    r.stat("attr/symtarget")
    r.check("chmod through symlink changed the target",
            stat.S_IMODE(os.lstat(r.p("attr/symtarget")).st_mode) == 0o600)
    r.truncate("attr/f644", 3)
    r.stat("attr/f644")


@scenario
def rename_file_across_dirs(r):
    r.rename("ren/src/a", "ren/dst/a")
    r.check("renamed file left its old name", not exists(r, "ren/src/a"))
    r.check("renamed file has the lower content", content(r, "ren/dst/a") == b"ren a\n")
    r.rename("ren/src/b", "ren/dst/existing")  # over an existing lower file
    r.check("rename over an existing file replaces it", content(r, "ren/dst/existing") == b"ren b\n")
    r.readdir("ren/src")
    r.readdir("ren/dst")
    r.rename("ren/dst/a", "ren/src/a")  # and back: the whiteout is replaced
    r.readdir("ren/src")
    r.rename("ren/src/c", "ren/src/c")  # to itself
    r.rename("ren/src/c", "ren/dst")  # file over dir: EISDIR
    r.rename("ren/src/c", "ren/nodir/c")  # ENOENT
    r.rename("ren/src/c", "ren/src/c/x")  # ENOTDIR
    r.create("ren/up", b"upper file")
    r.rename("ren/up", "ren/dst/up")
    r.rename("ren/dst/up", "ren/src/c")
    r.read("ren/src/c")


@scenario
def rename_lower_dir(r):
    # Without redirect_dir (an unprivileged mount) the kernel refuses to
    # move a lower or merged directory (EXDEV; mv then copies). hutch,
    # run with --no-redirect-dir here, must give the same answer.
    # (Its default, a redirect record, is tested in overlay_semantics.rs.)
    r.rename("ren/lowdir", "ren/moved")
    r.readdir("ren")
    r.rename("ren/merged", "ren/moved2")  # dir in L1 and L2
    # A copied-up dir (a child was written) is still merged.
    r.append("ren/lowdir/f", b"more")
    r.rename("ren/lowdir", "ren/moved3")
    # A dir created in the overlay may move; so may one made opaque.
    r.mkdir("ren/newdir")
    r.create("ren/newdir/f", b"f")
    r.rename("ren/newdir", "ren/moved4")
    r.readdir("ren/moved4")
    r.rmtree("ren/opq")
    r.mkdir("ren/opq")
    r.rename("ren/opq", "ren/moved5")
    r.readdir("ren")
    # Moving a new dir over an empty lower dir, and over a non-empty one.
    r.mkdir("ren/newdir2")
    r.rename("ren/newdir2", "ren/emptydir")
    r.mkdir("ren/newdir3")
    r.rename("ren/newdir3", "ren/merged")
    r.rename("ren/moved4", "ren/moved4/sub")  # EINVAL
    r.readdir("ren")


@scenario
def rename_noreplace_exchange(r):
    r.rename("ren/src/a", "ren/src/b", RENAME_NOREPLACE)  # EEXIST
    r.rename("ren/src/a", "ren/src/fresh", RENAME_NOREPLACE)
    r.rename("ren/src/fresh", "ren/src/a", RENAME_NOREPLACE)
    r.create("ren/src/up1", b"one")
    r.create("ren/src/up2", b"two")
    r.rename("ren/src/up1", "ren/src/up2", RENAME_EXCHANGE)
    r.read("ren/src/up1")
    r.rename("ren/src/a", "ren/src/b", RENAME_EXCHANGE)  # two lower files
    r.read("ren/src/a")
    r.read("ren/src/b")
    r.rename("ren/src/a", "ren/src/missing", RENAME_EXCHANGE)  # ENOENT
    r.rename("ren/src/a", "ren/src/b", RENAME_NOREPLACE | RENAME_EXCHANGE)  # EINVAL
    r.readdir("ren/src")


@scenario
def hardlink_to_lower(r):
    r.link("links/single", "links/single2")
    r.check("new link has the content", content(r, "links/single2") == content(r, "links/single"))
    r.stat("links/single")
    r.stat("links/single2")
    r.append("links/single2", b"+")
    r.check("write through one link shows through the other",
            content(r, "links/single") == content(r, "links/single2"))
    r.link("links/pair1", "links/pair3")  # lower file that has a lower link already
    for p in ["links/pair1", "links/pair2", "links/pair3"]:
        r.stat(p)
    r.link("links/sym", "links/sym2")  # hardlink to a symlink
    r.link("links", "links/dirlink")  # EPERM
    r.link("links/nothere", "links/x")  # ENOENT
    r.link("links/single", "links/pair2")  # EEXIST


@scenario
def file_apis(r):
    """fsync, fallocate, SEEK_DATA/SEEK_HOLE, flock and POSIX locks, unix
    sockets and O_DIRECT on lower and upper files."""

    def sync_ro():
        fd = os.open(r.p("data/small"), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    r.do("fsync_lower_readonly", ["data/small"], sync_ro, post="data/small")

    def sync_rw():
        fd = os.open(r.p("data/small"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"synced")
            os.fdatasync(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        return sha_file(r.p("data/small"))
    r.do("fsync_after_append", ["data/small"], sync_rw, post="data/small")

    def falloc():
        fd = os.open(r.p("data/medium"), os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, 100000)
        finally:
            os.close(fd)
        return sha_file(r.p("data/medium"))
    r.do("fallocate_lower", ["data/medium", 100000], falloc, post="data/medium")

    def seeks(rel):
        def f():
            fd = os.open(r.p(rel), os.O_RDONLY)
            try:
                out = []
                for whence, off in [(os.SEEK_DATA, 0), (os.SEEK_HOLE, 0), (os.SEEK_DATA, 4096),
                                    (os.SEEK_HOLE, 2 << 20), (os.SEEK_DATA, (2 << 20) + 8192),
                                    (os.SEEK_END, 0)]:
                    try:
                        out.append(os.lseek(fd, off, whence))
                    except OSError as e:
                        out.append(ename(e))
                return out
            finally:
                os.close(fd)
        return f
    r.do("seek_data_hole", ["data/sparse"], seeks("data/sparse"))
    r.chmod("data/sparse", 0o600)  # copy-up: holes stay holes

    def copied_holes():
        # The kernel copies up in 1 MiB chunks and skips only whole-chunk
        # holes; hutch keeps every hole. Both must keep the file sparse.
        fd = os.open(r.p("data/sparse"), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            out = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE) < size]
            try:
                out.append(os.lseek(fd, (3 << 20) + 4096, os.SEEK_DATA))
            except OSError as e:
                out.append(ename(e))
            return out
        finally:
            os.close(fd)
    r.do("copied_up_holes", ["data/sparse"], copied_holes, post="data/sparse")
    r.check("copy-up keeps the file sparse", r.last == [0, True, "ENXIO"], r.last)

    def flocks():
        fd1 = os.open(r.p("data/small"), os.O_RDONLY)
        fd2 = os.open(r.p("data/small"), os.O_RDONLY)
        try:
            fcntl.flock(fd1, fcntl.LOCK_EX)
            out = []
            try:
                fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
                out.append("acquired")
            except OSError as e:
                out.append(ename(e))
            fcntl.flock(fd1, fcntl.LOCK_UN)
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out.append("acquired after unlock")
            return out
        finally:
            os.close(fd1)
            os.close(fd2)
    r.do("flock_conflict", ["data/small"], flocks)
    r.check("flock excludes a second open", r.last == ["EAGAIN", "acquired after unlock"], r.last)

    def posix_locks():
        fd = os.open(r.p("data/medium"), os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)
            pid = os.fork()
            if pid == 0:  # child: the byte range is held by the parent
                code = 3
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
                    code = 0
                except OSError as e:
                    code = 1 if e.errno in (errno.EAGAIN, errno.EACCES) else 2
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200)
                except OSError:
                    code += 10
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            return {0: "overlap acquired", 1: "overlap refused, other range free",
                    2: "other error"}.get(os.waitstatus_to_exitcode(status), status)
        finally:
            os.close(fd)
    r.do("posix_lock_conflict", ["data/medium"], posix_locks)
    r.check("POSIX byte-range locks", r.last == "overlap refused, other range free", r.last)

    def unix_socket():
        path = r.p("base/d0/sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            srv.bind(path)
            srv.listen(1)
            cli.connect(path)
            conn, _ = srv.accept()
            with conn:
                cli.sendall(b"ping")
                return xval(conn.recv(4))
        finally:
            cli.close()
            srv.close()
    r.do("unix_socket", ["base/d0/sock"], unix_socket, post="base/d0/sock")
    r.check("unix socket bound in the overlay", r.last == "ping", r.last)
    r.readdir("base/d0")
    r.unlink("base/d0/sock")

    def direct_io():
        buf = mmap.mmap(-1, 8192)
        buf.write(bytes(range(256)) * 32)
        fd = os.open(r.p("base/d0/direct"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        try:
            n = os.pwritev(fd, [buf], 0)
            back = mmap.mmap(-1, 8192)
            m = os.preadv(fd, [back], 0)
            return [n, m, back[:] == buf[:]]
        finally:
            os.close(fd)
    r.do("o_direct_roundtrip", ["base/d0/direct"], direct_io, post="base/d0/direct")
    r.check("O_DIRECT write and read back", r.last == [8192, 8192, True], r.last)

    def direct_read_lower():
        fd = os.open(r.p("data/big"), os.O_RDONLY | os.O_DIRECT)
        try:
            back = mmap.mmap(-1, 4096)
            os.preadv(fd, [back], 8192)
            return hashlib.sha256(back[:]).hexdigest()
        finally:
            os.close(fd)
    r.do("o_direct_read_lower", ["data/big"], direct_read_lower)

    # An executable of a lower layer is pushed into the page cache at its
    # first open for reading (hutch's prefetch); a later write must win.
    r.read("modes/m755")
    r.append("modes/m755", b"appended after a read-only open")
    r.read("modes/m755")
    r.mmap_write("modes/m755", 2, b"XY")
    r.read("modes/m755")


@scenario
def truncate_lower(r):
    # truncate(2) to the current size still sets mtime (and copies up).
    r.truncate("data/medium", 70000)
    r.check("same-size truncate updates mtime", os.lstat(r.p("data/medium")).st_mtime_ns > OLD_NS)
    r.truncate("data/big", 1000)
    r.read("data/big")
    r.truncate("data/small", 100000)
    r.read("data/small")
    r.check("grown file reads zeros", content(r, "data/small")[-10:] == b"\0" * 10)
    r.open_trunc("data/medium")
    r.stat("data/medium")
    r.truncate("data/nonexistent", 1)
    r.truncate("data", 1)  # EISDIR


@scenario
def append_lower(r):
    before = content(r, "data/medium")
    r.append("data/medium", b"appended")
    r.check("append keeps lower content and adds", content(r, "data/medium") == before + b"appended")
    r.append("data/big", b"x" * 70000)
    r.read("data/big")
    r.pwrite("data/big", 5 * 1024 * 1024 - 7, b"middle write")
    r.read("data/big")
    r.mmap_write("data/small", 3, b"MMAP")
    r.read("data/small")


@scenario
def symlinks(r):
    for p in ["sym/rel", "sym/abs", "sym/dangling", "sym/todir", "sym/l2over"]:
        r.readlink(p)
        r.stat(p)
    r.read("sym/rel")
    r.readdir("sym/todir")
    r.symlink("../data/small", "sym/new")
    r.read("sym/new")
    r.symlink("x", "sym/rel")  # EEXIST
    r.unlink("sym/rel")
    r.symlink("data/medium", "sym/rel")
    r.readlink("sym/rel")
    r.rename("sym/abs", "sym/abs2")
    r.readlink("sym/abs2")
    r.check("symlink chain", os.path.realpath(r.p("sym/new")) == os.path.realpath(r.p("data/small")))


@scenario
def fifos(r):
    r.stat("fifo/lowerfifo")
    r.fifo_roundtrip("fifo/lowerfifo", b"lower fifo")
    r.mkfifo("fifo/newfifo", 0o600)
    r.stat("fifo/newfifo")
    r.fifo_roundtrip("fifo/newfifo", b"new fifo")
    r.chmod("fifo/lowerfifo", 0o640)
    r.stat("fifo/lowerfifo")
    r.rename("fifo/lowerfifo", "fifo/moved")
    r.readdir("fifo")
    r.setxattr("fifo/moved", "user.x", b"1")  # EPERM on fifos
    r.unlink("fifo/newfifo")


@scenario
def xattrs_on_lower(r):
    r.listxattr("xa/file")
    r.getxattr("xa/file", "user.one")
    r.getxattr("xa/file", "user.bin")
    r.getxattr("xa/file", "user.absent")
    r.setxattr("xa/file", "user.two", b"2")
    r.setxattr("xa/file", "user.one", b"replaced", os.XATTR_REPLACE)
    r.setxattr("xa/file", "user.one", b"x", os.XATTR_CREATE)  # EEXIST
    r.setxattr("xa/file", "user.none", b"x", os.XATTR_REPLACE)  # ENODATA
    r.listxattr("xa/file")
    r.removexattr("xa/file", "user.bin")
    r.removexattr("xa/file", "user.bin")  # ENODATA
    r.listxattr("xa/file")
    r.getxattr("xa/file", "user.one")
    r.listxattr("xa/dir")
    r.setxattr("xa/dir", "user.d2", b"dir value")
    r.removexattr("xa/dir", "user.d")
    r.listxattr("xa/dir")
    r.listxattr("xa/sym")
    r.setxattr("xa/sym", "user.s", b"1")  # EPERM on symlinks
    r.setxattr("xa/file", "user." + "n" * 250, b"long name")
    r.setxattr("xa/file", "user.large", b"v" * 4000)
    r.getxattr("xa/file", "user.large")
    r.setxattr("xa/file", "trusted.x", b"1")  # EPERM in a user namespace
    r.listxattr("xa/file")
    r.stat("xa/file")


@scenario
def readdir_whiteouts(r):
    r.readdir("big")
    n0 = len(names(r, "big"))
    r.check("merged big dir lists every visible name once", len(set(names(r, "big"))) == n0, n0)
    for i in range(0, 40, 3):
        r.unlink("big/e%03d" % i)
    for i in range(5):
        r.create("big/new%d" % i, b"n")
    r.readdir("big")
    r.check("deleted names are not listed", "e000" not in names(r, "big"))
    # Listing a dir while deleting from it: every remaining name once.
    fd = os.open(r.p("big"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = []
        with os.scandir(fd) as it:
            for k, e in enumerate(it):
                seen.append(e.name)
                if k == 10:
                    os.unlink(r.p("big/new4"))
        r.emit(op="readdir_during_unlink", args=["big"], r="ok", v=len(set(seen)) == len(seen))
    finally:
        os.close(fd)
    r.readdir("big")


@scenario
def unlink_hardlinked_lower(r):
    r.stat("links/pair1")
    r.unlink("links/pair1")
    r.check("other link keeps its content", content(r, "links/pair2") == b"hardlinked\n")
    r.stat("links/pair2")
    r.append("links/pair2", b"more")
    r.stat("links/pair2")
    r.unlink_open_read("links/single")


@scenario
def dotdot_and_dir_nlink(r):
    for d in ["base", "base/d0", "opq", "big", "rmd/full"]:
        st = os.stat(r.p(d))
        parent = os.stat(r.p(os.path.dirname(d)))
        dd = os.stat(r.p(d + "/.."))
        r.check(".. of %s is its parent" % d, (dd.st_ino, dd.st_dev) == (parent.st_ino, parent.st_dev))
        r.check(". of %s is itself" % d, os.stat(r.p(d + "/.")).st_ino == st.st_ino)
        r.stat(d)
    r.mkdir("base/d0/newsub")
    r.stat("base/d0")
    st = os.stat(r.p("base/d0/newsub"))
    r.check("new dir nlink is 2", st.st_nlink == 2, st.st_nlink)
    r.mkdir("base/d0/newsub/x")
    r.stat("base/d0/newsub")
    r.check("dir with one subdir has nlink 3", os.stat(r.p("base/d0/newsub")).st_nlink == 3)
    rs = os.stat(r.root)
    r.check(".. of the root is the root itself or its mount parent",
            os.stat(r.p("..")).st_ino is not None and rs.st_ino == os.stat(r.p(".")).st_ino)
    r.readdir("")


@scenario
def statfs_works(r):
    r.statfs("")
    r.statfs("base/d0")
    sv = os.statvfs(r.root)
    r.check("statfs reports a block size and capacity", sv.f_bsize > 0 and sv.f_blocks > 0)
    r.check("statfs reports name length 255", sv.f_namemax == 255, sv.f_namemax)


@scenario
def replace_file_and_dir(r):
    r.unlink("base/d2/f0")
    r.mkdir("base/d2/f0")
    r.create("base/d2/f0/child", b"child")
    r.stat("base/d2/f0")
    r.rmtree("base/d3")
    r.create("base/d3", b"a file now")
    r.stat("base/d3")
    r.readdir("base")
    r.rmtree("base/d2/f0")
    r.create("base/d2/f0", b"file again")
    r.read("base/d2/f0")
    # Layers: L2 replaced L1's dir `typ/wasdir` by a file and L1's file
    # `typ/wasfile` by a dir.
    r.stat("typ/wasdir")
    r.stat("typ/wasfile")
    r.readdir("typ/wasfile")
    r.check("L1's children of a dir replaced by a file are gone", not exists(r, "typ/wasdir/child"))


@scenario
def open_unlinked_and_renamed(r):
    r.unlink_open_read("data/medium")
    r.rename_open_write("data/small", "data/small.moved", b"written after rename")
    r.readdir("data")
    r.read("data/small.moved")


@scenario
def lower_layer_modes(r):
    for p in ["modes/m000", "modes/m400", "modes/m444", "modes/m755", "modes/dir555", "modes/dir700"]:
        r.stat(p)
        r.read(p) if not p.startswith("modes/dir") else r.readdir(p)
    r.append("modes/m000", b"root may")
    r.create("modes/dir555/new", b"root may")
    r.stat("modes/m000")
    r.readdir("modes/dir555")


@scenario
def layers_hardlinks_and_identity(r):
    # Hardlinks inside the lower layers are one inode; inode numbers are
    # stable across lookups.
    a = os.lstat(r.p("links/pair1"))
    b = os.lstat(r.p("links/pair2"))
    r.check("lower hardlinks share an inode", (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev))
    a2 = os.lstat(r.p("links/pair1"))
    r.check("inode numbers are stable", a2.st_ino == a.st_ino)
    s = os.lstat(r.p("links/single"))
    r.append("links/single", b"!")
    s2 = os.lstat(r.p("links/single"))
    r.check("copy-up keeps the inode number of a single-link file", s2.st_ino == s.st_ino)


# ---------------------------------------------------------------------------
# concurrency helper


def append_worker(path, barrier, tag, count, block):
    count, block = int(count), int(block)
    while not os.path.exists(barrier):
        time.sleep(0.001)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        chunk = (tag.encode() * block)[:block]
        for _ in range(count):
            if os.write(fd, chunk) != block:
                sys.exit("short write")
    finally:
        os.close(fd)


def main(argv):
    os.umask(0o022)
    if not argv:
        sys.exit(__doc__)
    cmd = argv[0]
    if cmd == "run":
        seed, steps, root = None, 200, None
        it = iter(argv[1:])
        for a in it:
            if a == "--seed":
                seed = int(next(it))
            elif a == "--steps":
                steps = int(next(it))
            else:
                root = a
        if seed is None or root is None:
            sys.exit("usage: ops.py run --seed N --steps K ROOT")
        run_random(root, seed, steps)
    elif cmd == "scenario":
        name, root = argv[1], argv[2]
        if name not in SCENARIOS:
            sys.exit("unknown scenario %s (known: %s)" % (name, " ".join(sorted(SCENARIOS))))
        r = Runner(root)
        SCENARIOS[name](r)
        r.emit(op="end", args=[name])
    elif cmd == "scenarios":
        print("\n".join(sorted(SCENARIOS)))
    elif cmd == "dump":
        raw = "--raw" in argv
        root = [a for a in argv[1:] if a != "--raw"][0]
        dump(root, raw=raw)
    elif cmd == "strip-override":
        strip_override(argv[1])
    elif cmd == "append-worker":
        append_worker(*argv[1:6])
    else:
        sys.exit("unknown command %s" % cmd)
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
