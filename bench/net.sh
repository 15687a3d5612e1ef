#!/usr/bin/env bash
# bench/net.sh — hutch's userspace network against slirp4netns and pasta,
# side by side in one run (issue 5):
#   hutch run --network slirp --mtu M   (smoltcp, in the hutch process)
#   slirp4netns --configure --mtu=M     (libslirp, the Debian package)
#   pasta --config-net -m M             (the Debian passt package)
# at MTU 1500 and 65520:
#   iperf3 from the container to a server on the host's 127.0.0.1, and the
#     reverse (-R: the host server sends);
#   iperf3 from the host through a port forward (127.0.0.1:PORT -> the
#     container's 5201), and the reverse;
#   TCP connections per second from the container to a host server;
#   peak RSS (VmHWM) of the process that does the networking.
# Every run starts a fresh container or namespace; the repetitions of all
# tools are interleaved. Prints medians in Gbit/s and ratios; it measures
# and judges nothing.
#
# Usage: bench/net.sh [--quick] [--reps N] [--time S] [--conns N]
#   as a normal user; as root it re-runs itself as the test user hutch-test.
#   --reps N   iperf3 runs per cell and connection rounds (default 3)
#   --time S   seconds per iperf3 run, after 1 s omitted (default 5)
#   --conns N  connections per round of the connection test (default 1000)
#   --quick    1 repetition, 2 s, 300 connections
# Defaults take about 10 minutes. HUTCH_BIN picks the hutch binary
# (default: a release build in target/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
REPS=3
TIME=5
CONNS=1000
args=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --quick) REPS=1; TIME=2; CONNS=300; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --time) TIME=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench/net: unknown argument $1" >&2; exit 2 ;;
  esac
done

. "$here/lib.sh"
: "${TMPDIR:=/var/tmp}"; export TMPDIR   # its work dirs, as a normal user or not
as_test_user "$0" ${args[@]+"${args[@]}"}   # the options, not what parsing left

HUTCH=${HUTCH_BIN:-$repo/target/release/hutch}
for t in iperf3 slirp4netns pasta python3 unshare pgrep timeout ip awk; do
  command -v "$t" >/dev/null || { echo "bench/net: $t is missing (tests/host-setup.sh installs it)"; exit 1; }
done
[ -x "$HUTCH" ] || { echo "bench/net: no hutch binary at $HUTCH: cargo build --release"; exit 1; }
# Open files: libslirp keeps a host socket per connection in TIME_WAIT, and
# slirp4netns runs out of descriptors (the guest sees ENETUNREACH) at the
# usual soft limit of 1024 during the connection test. Same limit for all.
ulimit -n "$(ulimit -Hn)"
# pasta maps its namespace's default gateway (the host's own gateway
# address) to the host's loopback; the container side connects there.
PASTA_GW=$(ip -4 route show default | awk '{print $3; exit}')
[ -n "$PASTA_GW" ] || { echo "bench/net: the host has no IPv4 default route, which pasta needs"; exit 1; }
LIMIT=$((TIME + 40))          # seconds before a hung run is killed (timeout)

work=$(mktemp -d "${TMPDIR:-/var/tmp}/hutch-bench-net.XXXXXX")
sig=$work/sig                 # the container sees it as /sig
mkdir -p "$sig"
: >"$work/pids"
cleanup() {
  # Only what this script started, by pid (see track).
  local p
  while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
  sleep 0.3
  while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$work/pids"
  chmod -R u+rwX "$work" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || unshare -Ur rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
track() { echo "$1" >>"$work/pids"; }
untrack() { # PID...: forget those that have ended (pids get reused)
  local p
  for p in "$@"; do
    [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null && sed -i "/^$p\$/d" "$work/pids"
  done
  return 0
}
t_start=$(date +%s)
export HUTCH_ROOT=$work/store

cat >"$work/hostlo.toml" <<'EOF'
extends = "default"
[network]
mode = "slirp"
allow_host_loopback = true
EOF

# The server side of the port-forward test, run inside the container or
# namespace: iperf3 -s for one test; $1 appears once it listens on 5201.
cat >"$sig/srv.sh" <<'EOF'
iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
p=$!
i=0
until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:1451$/ && $4 == "0A" {f = 1} END {exit !f}'; do
  i=$((i + 1)); [ $i -lt 400 ] || break
  sleep 0.05
done
: >"$1"
wait $p
EOF

# The client of the connection test, run inside: N sequential connections
# (connect, read the server's byte and its FIN, close), ROUNDS times.
CONN_CLIENT='
import json, socket, sys, time
addr, port, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def one():
    s = socket.create_connection((addr, port), timeout=10)
    while s.recv(64):
        pass
    s.close()
for _ in range(20):
    one()
rates = []
for _ in range(rounds):
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    rates.append(n / (time.perf_counter() - t0))
print(json.dumps(rates))
'

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_listen() { # PORT: until something listens on the host's 127.0.0.1:PORT
  local hex i
  hex=$(printf '0100007F:%04X' "$1")
  for i in $(seq 200); do
    awk -v a="$hex" '$2 == a && $4 == "0A" {f = 1} END {exit !f}' /proc/net/tcp && return 0
    sleep 0.05
  done
  return 1
}

child_of() { # PID: its first child (the process `timeout` started)
  local c i
  for i in $(seq 200); do
    c=$(pgrep -P "$1" | head -n1) && [ -n "$c" ] && { echo "$c"; return 0; }
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

watch_rss() { # PID FILE: append PID's VmHWM (KiB) to FILE while PID lives
  local pid=$1 f=$2
  ( while v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
      echo "$v" >>"$f"; sleep 0.2
    done ) >/dev/null 2>&1 &
  SAMPLER=$!
  track "$SAMPLER"
}

# ns_start TOOL MTU FWD OUT CMD...: run CMD (stdout to OUT, stderr to
# OUT.err) inside TOOL's container or namespace with a network of MTU; FWD
# is a host port to forward from 127.0.0.1 to the inside's 5201, or 0.
# Sets NS_PID (the timeout wrapper around it), NET_PID (the process that
# does the networking), CMDLINE (what was run, for the failure report).
# ns_finish waits for CMD and returns its exit status (124: timed out).
ns_start() {
  local tool=$1 mtu=$2 fwd=$3 out=$4; shift 4
  NET_PID= ; NS_PID= ; SAMPLER=
  case $tool in
    hutch)
      local pub=()
      [ "$fwd" = 0 ] || pub=(-p "127.0.0.1:$fwd:5201")
      local cmd=("$HUTCH" run --rm --network slirp --profile "$work/hostlo.toml" --mtu "$mtu" "${pub[@]}"
                 -v "$sig:/sig" host -- "$@")
      CMDLINE="${cmd[*]}"
      timeout -k 5 "$LIMIT" "${cmd[@]}" >"$out" 2>"$out.err" &
      NS_PID=$!; track "$NS_PID"
      NET_PID=$(child_of "$NS_PID") || { NET_PID=; return 1; }
      track "$NET_PID"
      ;;
    slirp4netns|pasta)
      rm -f "$work/go" "$work/go.pid" "$work/ready" "$work/pasta.pid" "$work/api.sock"
      mkfifo "$work/go" "$work/ready"
      # A user+net namespace that waits for "go" before running CMD.
      timeout -k 5 "$LIMIT" unshare -Urn sh -c 'echo $$ >"$0.pid"; read -r _ <"$0"; exec "$@"' "$work/go" "$@" \
        >"$out" 2>"$out.err" &
      NS_PID=$!; track "$NS_PID"
      local i upid=
      for i in $(seq 200); do
        upid=$(cat "$work/go.pid" 2>/dev/null) && [ -n "$upid" ] && break
        sleep 0.01
      done
      [ -n "$upid" ] || { echo "the namespace did not start" >>"$out.err"; return 1; }
      if [ "$tool" = slirp4netns ]; then
        local cmd=(slirp4netns --configure --mtu="$mtu" --api-socket "$work/api.sock" --ready-fd=3 "$upid" tap0)
        CMDLINE="${cmd[*]}   + in the namespace: $*"
        "${cmd[@]}" 3>"$work/ready" >"$work/slirp.log" 2>&1 &
        NET_PID=$!; track "$NET_PID"
        read -r -t 20 -n 1 _ <"$work/ready" ||
          { echo "slirp4netns did not get ready: $(tail -n 3 "$work/slirp.log")" >>"$out.err"; return 1; }
        if [ "$fwd" != 0 ]; then
          python3 - "$work/api.sock" "$fwd" >>"$out.err" 2>&1 <<'PY' || return 1
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(json.dumps({"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1",
                      "host_port": int(sys.argv[2]), "guest_port": 5201}}).encode())
s.shutdown(socket.SHUT_WR)
r = s.recv(4096)
if b'"return"' not in r or b"error" in r:
    sys.exit("add_hostfwd: %r" % r)
PY
        fi
      else
        local tcp=(-t none)
        [ "$fwd" = 0 ] || tcp=(-t "127.0.0.1/$fwd:5201")
        local cmd=(pasta -q --config-net -m "$mtu" "${tcp[@]}" -u none -T "${PASTA_NS_T:-none}" -U none -P "$work/pasta.pid" "$upid")
        CMDLINE="${cmd[*]}   + in the namespace: $*"
        # pasta daemonizes once it is set up, after writing its pid.
        timeout 20 "${cmd[@]}" >>"$out.err" 2>&1 || { echo "pasta failed" >>"$out.err"; return 1; }
        NET_PID=$(cat "$work/pasta.pid"); track "$NET_PID"
      fi
      timeout 10 sh -c 'echo go >"$1"' sh "$work/go" || { echo "could not start the command" >>"$out.err"; return 1; }
      ;;
  esac
  watch_rss "$NET_PID" "$RSSFILE"
}

ns_finish() {
  local rc=0
  [ -z "$NS_PID" ] || wait "$NS_PID" || rc=$?
  case $TOOL in
    slirp4netns) [ -z "$NET_PID" ] || { kill "$NET_PID" 2>/dev/null || true; wait "$NET_PID" 2>/dev/null || true; } ;;
    pasta) if [ -n "$NET_PID" ]; then
             kill "$NET_PID" 2>/dev/null || true
             local i; for i in $(seq 50); do kill -0 "$NET_PID" 2>/dev/null || break; sleep 0.05; done
           fi ;;
  esac
  [ -z "$SAMPLER" ] || wait "$SAMPLER" 2>/dev/null || true
  untrack "$NS_PID" "$NET_PID" "$SAMPLER"
  return $rc
}

ns_abort() { # stop what ns_start started after a failure
  [ -z "$NS_PID" ] || kill "$NS_PID" 2>/dev/null || true
  ns_finish || true
}

gbps() { # JSON: iperf3's receiver rate in Gbit/s, or nothing (and the error on stderr)
  python3 - "$1" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("no iperf3 result (%s)" % e)
if j.get("error"):
    sys.exit("iperf3: " + j["error"])
print("%.3f" % (j["end"]["sum_received"]["bits_per_second"] / 1e9))
PY
}

fail() { # ROW TOOL WHAT: note a failed run for the report
  { echo "[$1 / $2] $3"
    echo "    command: $CMDLINE"
    [ -z "${4:-}" ] || sed 's/^/    /' "$4" | tail -n 6
  } >>"$work/failures"
}

# One iperf3 run: ROW TOOL MTU KIND(c2h|fwd|splice) [-R]; appends "ROW|TOOL|Gbit/s"
# (or "fail") to $work/results and echoes the number.
iperf_run() {
  local row=$1 tool=$2 mtu=$3 kind=$4 rev=${5:-} out=$work/run.json rc=0 v
  TOOL=$tool RSSFILE=$work/rss.$tool.iperf
  rm -f "$out" "$out.err" "$sig/ready"
  if [ "$kind" != fwd ]; then
    local port addr srv PASTA_NS_T=none
    port=$(free_port)
    timeout "$LIMIT" iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$work/srv.log" 2>&1 &
    srv=$!; track "$srv"
    case $tool in hutch|slirp4netns) addr=10.0.2.2 ;; pasta) addr=$PASTA_GW ;; esac
    # splice: pasta's own loopback bypass (-T PORT: the namespace's
    # 127.0.0.1:PORT is spliced to the host's), for reference.
    [ "$kind" = splice ] && { addr=127.0.0.1; PASTA_NS_T=$port; }
    CMDLINE="iperf3 -s -1 -B 127.0.0.1 -p $port (on the host)"
    if ! wait_listen "$port"; then
      echo "the host's iperf3 server did not start: $(cat "$work/srv.log")" >>"$out.err"; rc=125
    # shellcheck disable=SC2086  # $rev: empty or -R
    elif ns_start "$tool" "$mtu" 0 "$out" iperf3 -c "$addr" -p "$port" -t "$TIME" -O 1 -J $rev; then
      ns_finish || rc=$?
    else
      rc=125; ns_abort
    fi
    kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; untrack "$srv"
  else
    local port ready inside i
    port=$(free_port)
    if [ "$tool" = hutch ]; then inside=/sig; else inside=$sig; fi
    if ns_start "$tool" "$mtu" "$port" "$work/srv.out" sh "$inside/srv.sh" "$inside/ready"; then
      ready=0
      for i in $(seq 400); do
        [ -e "$sig/ready" ] && { ready=1; break; }
        kill -0 "$NS_PID" 2>/dev/null || break
        sleep 0.05
      done
      if [ $ready = 1 ]; then
        # shellcheck disable=SC2086
        timeout "$LIMIT" iperf3 -c 127.0.0.1 -p "$port" -t "$TIME" -O 1 -J $rev >"$out" 2>"$out.err" || rc=$?
        ns_finish || true
      else
        echo "the server inside never listened (stderr inside: $(cat "$work/srv.out.err" 2>/dev/null))" >>"$out.err"
        rc=125; ns_abort
      fi
    else
      cat "$work/srv.out.err" >>"$out.err" 2>/dev/null
      rc=125; ns_abort
    fi
    CMDLINE="$CMDLINE   + on the host: iperf3 -c 127.0.0.1 -p $port -t $TIME -O 1 -J $rev"
  fi
  if v=$(gbps "$out" 2>>"$out.err") && [ -n "$v" ]; then
    echo "$row|$tool|$v" >>"$work/results"
    echo "$v"
  else
    [ "$rc" = 124 ] && echo "timed out after ${LIMIT}s (killed)" >>"$out.err"
    fail "$row" "$tool" "exit $rc" "$out.err"
    echo "$row|$tool|fail" >>"$work/results"
    echo "FAIL"
  fi
}

TOOLS=(hutch slirp4netns pasta)
ROWS=()
for mtu in 1500 65520; do
  ROWS+=("ctr->host MTU $mtu|$mtu|c2h|" "host->ctr (-R) MTU $mtu|$mtu|c2h|-R"
         "fwd host->ctr MTU $mtu|$mtu|fwd|" "fwd ctr->host (-R) MTU $mtu|$mtu|fwd|-R")
done
ROWS+=("ctr->127.0.0.1, pasta -T|65520|splice|")

host_iperf() { # the reference: iperf3 over the host's loopback, no namespace
  local port srv v
  port=$(free_port)
  timeout "$LIMIT" iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$work/srv.log" 2>&1 &
  srv=$!; track "$srv"
  wait_listen "$port" && timeout "$LIMIT" iperf3 -c 127.0.0.1 -p "$port" -t "$TIME" -O 1 -J >"$work/host.json" 2>&1
  kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; untrack "$srv"
  if v=$(gbps "$work/host.json" 2>/dev/null); then echo "ref-iperf|host|$v" >>"$work/results"; echo "$v"; else echo "FAIL"; fi
}

echo "bench/net: $REPS x ${TIME}s iperf3 runs per cell (1 s omitted), $CONNS x $REPS connections per tool;" \
     "$(nproc) cores, $(uname -r)"
echo "  hutch: $HUTCH ($("$HUTCH" --version 2>/dev/null | head -n1))"
echo "  $(slirp4netns --version | head -n1), $(slirp4netns --version | grep libslirp)"
echo "  pasta: Debian passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null || echo '?'); $(iperf3 --version | head -n1)"
echo "  work dir $work; open files limit $(ulimit -n)"
: >"$work/results"
for rep in $(seq "$REPS"); do
  for r in "${ROWS[@]}"; do
    IFS='|' read -r row mtu kind rev <<<"$r"
    line=""
    for tool in "${TOOLS[@]}"; do
      [ "$kind" != splice ] || [ "$tool" = pasta ] || continue
      line+=" $tool $(iperf_run "$row" "$tool" "$mtu" "$kind" "$rev")"
    done
    printf '  run %d/%d  %-29s%s\n' "$rep" "$REPS" "$row" "$line"
  done
  printf '  run %d/%d  %-29s host %s\n' "$rep" "$REPS" "no namespace, host loopback" "$(host_iperf)"
done

# Connections per second, container -> host 127.0.0.1, MTU 65520 for all.
CPORT=$(free_port)
python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(512)
while True:
    c, _ = s.accept()
    c.sendall(b"x")
    c.close()
' "$CPORT" >"$work/connsrv.log" 2>&1 &
connsrv=$!; track "$connsrv"
wait_listen "$CPORT" || { echo "bench/net: the connection test server did not start: $(cat "$work/connsrv.log")"; exit 1; }
for tool in "${TOOLS[@]}"; do
  TOOL=$tool RSSFILE=$work/rss.$tool.conn
  case $tool in hutch|slirp4netns) addr=10.0.2.2 ;; pasta) addr=$PASTA_GW ;; esac
  out=$work/conn.$tool.json rc=0
  if ns_start "$tool" 65520 0 "$out" python3 -c "$CONN_CLIENT" "$addr" "$CPORT" "$CONNS" "$REPS"; then
    ns_finish || rc=$?
  else
    rc=125; ns_abort
  fi
  if [ "$rc" = 0 ] && python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$out" 2>/dev/null; then
    echo "conns|$tool|$(cat "$out")" >>"$work/results"
    printf '  connections/s %-12s %s\n' "$tool" "$(python3 -c 'import json, sys; print(" ".join("%.0f" % r for r in json.load(open(sys.argv[1]))))' "$out")"
  else
    [ "$rc" = 124 ] && echo "timed out after ${LIMIT}s (killed)" >>"$out.err"
    CMDLINE=${CMDLINE/"$CONN_CLIENT"/'"$CONN_CLIENT"'}   # the client script is CONN_CLIENT in bench/net.sh
    fail "connections/s" "$tool" "exit $rc" "$out.err"
    echo "conns|$tool|fail" >>"$work/results"
    printf '  connections/s %-12s FAIL\n' "$tool"
  fi
done
# The same client on the host, without any namespace, for reference.
if timeout "$LIMIT" python3 -c "$CONN_CLIENT" 127.0.0.1 "$CPORT" "$CONNS" "$REPS" >"$work/conn.host.json" 2>&1; then
  echo "ref-conns|host|$(cat "$work/conn.host.json")" >>"$work/results"
fi
kill "$connsrv" 2>/dev/null || true; wait "$connsrv" 2>/dev/null || true; untrack "$connsrv"

python3 - "$work" "$REPS" "$TIME" "$CONNS" <<'PY'
import json, os, statistics, sys
work, reps, secs, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
tools = ["hutch", "slirp4netns", "pasta"]
rows, vals = [], {}
for line in open(os.path.join(work, "results")):
    row, tool, v = line.rstrip("\n").split("|", 2)
    if row not in rows:
        rows.append(row)
    cell = vals.setdefault((row, tool), [])
    if v == "fail":
        cell.append(None)
    elif row.endswith("conns"):
        cell.extend(json.loads(v))
    else:
        cell.append(float(v))

def med(row, tool):
    xs = [x for x in vals.get((row, tool), []) if x is not None]
    return statistics.median(xs) if xs else None

def gb(v):
    return f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"

def num(row, v):
    return f"{v:.0f}" if row.endswith("conns") else gb(v)

def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

def rss(tool, phase):
    try:
        xs = [int(l) for l in open(os.path.join(work, f"rss.{tool}.{phase}")) if l.strip()]
    except OSError:
        return None
    return max(xs) / 1024 if xs else None

label = {"conns": "connections/s ctr->host, MTU 65520",
         "ctr->127.0.0.1, pasta -T": "ctr->127.0.0.1 (pasta -T splice) **",
         "ref-iperf": "no namespace: iperf3", "ref-conns": "no namespace: connections/s"}
w = 38
main = [r for r in rows if not r.startswith("ref-")]
print()
print(f"Gbit/s (iperf3 receiver), median of {reps} x {secs} s; connections/s, median of {reps} rounds of {conns}")
print(f"{'':<{w}}" + "".join(f"{t:>13}" for t in tools) + f"{'hutch/slirp':>13}{'hutch/pasta':>13}")
for row in main:
    m = {t: med(row, t) for t in tools}
    def cell(t):
        xs = vals.get((row, t))
        if not xs:
            return "-"
        if m[t] is None:
            return "FAIL"
        nf = sum(x is None for x in xs)
        return num(row, m[t]) + (f" ({nf}F)" if nf else "")
    name = label.get(row, row) + (" *" if row.startswith("fwd") else "")
    print(f"{name:<{w}}" + "".join(f"{cell(t):>13}" for t in tools)
          + f"{ratio(m['hutch'], m['slirp4netns']):>13}{ratio(m['hutch'], m['pasta']):>13}")
for phase, what in (("iperf", "peak RSS MiB, iperf3 runs"), ("conn", "peak RSS MiB, connection test")):
    r = {t: rss(t, phase) for t in tools}
    print(f"{what:<{w}}" + "".join(f"{'n/a' if r[t] is None else f'{r[t]:.1f}':>13}" for t in tools)
          + f"{ratio(r['hutch'], r['slirp4netns']):>13}{ratio(r['hutch'], r['pasta']):>13}")
ri, rc = med("ref-iperf", "host"), med("ref-conns", "host")
print(f"{'no namespace (host to host 127.0.0.1)':<{w}}"
      + f"iperf3 {'n/a' if ri is None else gb(ri)} Gbit/s, connection client {'n/a' if rc is None else f'{rc:.0f}'}/s")
print()
print("Throughput and connection ratios: above 1.00x hutch is faster. RSS ratios: above 1.00x hutch uses more.")
print("(nF) = n of the runs behind that median failed (listed below); FAIL = all did; - = not run.")
print("ctr->host: iperf3 -c in the container to a server on the host's 127.0.0.1, reached as 10.0.2.2")
print("  (hutch, slirp4netns) or as pasta's gateway address; host->ctr (-R): the same, the host sending.")
print("* fwd = the host's iperf3 connects to 127.0.0.1:PORT, forwarded into the container's 5201. pasta")
print("  splices such loopback forwards between sockets (splice(2)): its fwd rows never touch its tap")
print("  device or MTU, unlike hutch's and slirp4netns's, which go through their TCP/IP stacks.")
print("** pasta's other way to the host: -T PORT splices the namespace's own 127.0.0.1:PORT to the host's")
print("  (no tap device); hutch and slirp4netns have no equivalent. For reference only.")
print("Peak RSS is VmHWM of the process that does the networking, sampled every 0.2 s, the highest over")
print("all runs: for hutch the main `hutch run` process, which also serves the FUSE overlay and runs")
print("the launcher (one process; its helper and the container's own processes are not counted);")
print("for slirp4netns and pasta their own process, which does nothing else.")
print()
print("samples (Gbit/s, or connections/s), in run order:")
for row in rows:
    for t in tools + ["host"]:
        xs = vals.get((row, t))
        if xs:
            print(f"  {label.get(row, row):<{w}}{t:<13}" + " ".join("FAIL" if x is None else num(row, x) for x in xs))
PY

if [ -s "$work/failures" ]; then
  echo
  echo "FAILED RUNS:"
  cat "$work/failures"
fi
echo "total $(( $(date +%s) - t_start ))s"
