#!/usr/bin/env bash
# The test command of hutch.
#
#   tests/run.sh [FILTER...]
#
# As root (CI: `bash .ci/run`): prepares the host (tests/host-setup.sh),
# builds the fixtures once into $HUTCH_FIXTURES (default
# /var/cache/hutch-fixtures), checks formatting and clippy, builds the tests
# and runs every test executable as the unprivileged user hutch-test, from a
# staging copy in /var/tmp/hutch-tests/ that this user can read.
#
# As another user (a developer): the same minus host setup and fixture
# building (run `sudo tests/run.sh` once for those); the tests run as you.
#
# FILTER arguments are passed to every test executable (libtest name
# filters, or e.g. `--exact NAME`). The last line printed is always
# `N passed, M failed`; the exit status is non-zero when a test failed, a
# test executable crashed, or fmt, clippy or the build failed.
#
# Environment:
#   HUTCH_FIXTURES     fixture directory (default /var/cache/hutch-fixtures)
#   HUTCH_TEST_USER    user the tests run as when started as root (default hutch-test)
#   HUTCH_TEST_THREADS threads per test executable (default 2)
#   HUTCH_TEST_TIMEOUT seconds one test executable may take (default 900)
#   HUTCH_SKIP_LINT=1  skip cargo fmt --check and clippy (quick local iterations)
#   HUTCH_KEEP_STAGE=1 keep the staging directory after the run
#   HUTCH_CONFORMANCE  1: run pjdfstest on the overlay (tests/conformance/;
#                      about 6 minutes), failing when hutch fails more tests
#                      beyond a tmpfs control than the kernel overlay (+2),
#                      and the unionmount-testsuite (about 1 minute), failing
#                      when one of its tests fails (beyond the kernel's in
#                      its --xdev runs); 0: skip them. Default: 1 for a whole
#                      run, 0 when FILTERs are given
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH=$HOME/.cargo/bin:$PATH
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_TERM_PROGRESS_WHEN=never

fixtures=${HUTCH_FIXTURES:-/var/cache/hutch-fixtures}
test_user=${HUTCH_TEST_USER:-hutch-test}
threads=${HUTCH_TEST_THREADS:-2}
timeout_s=${HUTCH_TEST_TIMEOUT:-900}
filters=("$@")
is_root=0; [ "$(id -u)" = 0 ] && is_root=1
logdir=""; stage=""; test_tmp=""; fixture_pid=""

# ---------------------------------------------------------------- helpers
t0=$(date +%s.%N)
phase_names=(); phase_times=(); phase_status=()
current_phase=""; phase_t0=""
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
phase() { # NAME: start a phase (ends the previous one as ok)
    [ -n "$current_phase" ] && end_phase ok
    current_phase=$1; phase_t0=$(now)
    echo
    echo "==== $1"
}
end_phase() { # STATUS
    local t; t=$(elapsed "$phase_t0" "$(now)")
    phase_names+=("$current_phase"); phase_times+=("$t"); phase_status+=("$1")
    echo "==== $current_phase: $1 (${t}s)"
    current_phase=""
}
failures=()   # reasons the run fails besides test counts
total_passed=0; total_failed=0
bin_rows=()

summary_and_exit() {
    [ -n "$current_phase" ] && end_phase "${1:-ok}"
    finish_fixture_build
    remove_stage
    echo
    echo "==== summary"
    local i
    for i in "${!phase_names[@]}"; do
        printf '  %-32s %-20s %8ss\n' "${phase_names[$i]}" "${phase_status[$i]}" "${phase_times[$i]}"
    done
    printf '  %-32s %-20s %8ss\n' total "" "$(elapsed "$t0" "$(now)")"
    if [ ${#bin_rows[@]} -gt 0 ]; then
        echo
        printf '  %-40s %7s %7s %7s %8s  %s\n' "test executable" passed failed ignored time status
        for i in "${bin_rows[@]}"; do echo "  $i"; done
    fi
    if [ ${#failures[@]} -gt 0 ]; then
        echo
        for i in "${failures[@]}"; do echo "FAILED: $i"; done
    fi
    echo "$total_passed passed, $total_failed failed"
    if [ ${#failures[@]} -gt 0 ] || [ "$total_failed" -gt 0 ]; then exit 1; fi
    exit 0
}

die() { # MESSAGE: a failure that stops the run
    echo "run.sh: $*" >&2
    failures+=("$*")
    summary_and_exit FAILED
}

remove_stage() {
    if [ -n "$stage" ] && [ -d "$stage" ]; then
        if [ "${HUTCH_KEEP_STAGE:-0}" = 1 ]; then
            echo "run.sh: kept the staging directory $stage (HUTCH_KEEP_STAGE=1)"
        else
            rm -rf "$stage" 2>/dev/null || echo "run.sh: could not remove all of $stage" >&2
        fi
    fi
    stage=""
    if [ -n "$test_tmp" ] && [ -d "$test_tmp" ] && [ "${HUTCH_KEEP_STAGE:-0}" != 1 ]; then
        rm -rf "$test_tmp" 2>/dev/null || echo "run.sh: could not remove all of $test_tmp" >&2
    fi
    test_tmp=""
}
finish_fixture_build() { # after a failure: let it finish so the next run has it cached
    [ -n "$fixture_pid" ] || return 0
    echo "run.sh: waiting for the background fixture build to finish (cached for the next run)..."
    if ! wait "$fixture_pid" 2>/dev/null; then
        echo "run.sh: the fixture build failed too; end of its log:"
        tail -n 30 "$logdir/fixtures.log" | sed 's/^/  /'
    fi
    fixture_pid=""
}
cleanup() {
    # Interrupted: the fixture build runs in its own session; stop all of it.
    if [ -n "$fixture_pid" ]; then kill -- "-$fixture_pid" 2>/dev/null || true; fi
    remove_stage
    rm -rf "$logdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
logdir=$(mktemp -d "${TMPDIR:-/tmp}/hutch-run.XXXXXX")

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup; looked in PATH and $HOME/.cargo/bin)"

echo "hutch tests: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit'), $(nproc) cores, $(uname -r)," \
     "$( [ $is_root = 1 ] && echo "as root, tests as $test_user" || echo "as $(id -un)")"

# ---------------------------------------------------------------- host + fixtures
if [ $is_root = 1 ]; then
    phase "host setup"
    bash "$repo/tests/host-setup.sh" || die "tests/host-setup.sh failed"
    test_uid=$(id -u "$test_user")
    end_phase ok

    # Fixtures build in the background while cargo compiles (debootstrap
    # mostly waits on the network and dpkg; cargo wants the CPUs).
    echo
    echo "==== fixtures: building in the background into $fixtures (log follows later)"
    fixture_t0=$(now)
    setsid bash "$repo/tests/fixtures/build.sh" "$fixtures" >"$logdir/fixtures.log" 2>&1 </dev/null &
    fixture_pid=$!
else
    phase "fixtures check"
    rc=0; bash "$repo/tests/fixtures/build.sh" --check "$fixtures" || rc=$?
    if [ $rc = 1 ]; then
        echo "run.sh: fixtures missing in $fixtures: run \`sudo tests/run.sh\` once to build them" >&2
        exit 1
    elif [ $rc = 2 ]; then
        echo "run.sh: WARNING: fixtures are stale; run \`sudo tests/run.sh\` to rebuild them" >&2
    fi
fi

# host-setup.sh installs jq; a developer may lack it.
command -v jq >/dev/null 2>&1 || die "jq not found (apt-get install jq, or run sudo tests/run.sh once)"

# ---------------------------------------------------------------- lint
if [ "${HUTCH_SKIP_LINT:-0}" = 1 ]; then
    echo; echo "==== lint skipped (HUTCH_SKIP_LINT=1)"
else
    phase "cargo fmt --check"
    fmt_color=(); [ -t 1 ] || fmt_color=(-- --color=never)
    if cargo fmt --check "${fmt_color[@]}"; then end_phase ok; else
        end_phase FAILED; failures+=("cargo fmt --check (run cargo fmt)")
    fi
    phase "cargo clippy"
    if cargo clippy --all-targets -- -D warnings; then end_phase ok; else
        end_phase FAILED; failures+=("cargo clippy --all-targets -- -D warnings")
    fi
fi

# ---------------------------------------------------------------- build
phase "cargo build"
cargo build --tests --bins --message-format=json-render-diagnostics >"$logdir/build.json" ||
    die "cargo build --tests --bins failed"
cargo test --no-run --message-format=json-render-diagnostics >"$logdir/tests.json" ||
    die "cargo test --no-run failed"
hutch_exe=$(jq -r 'select(.reason == "compiler-artifact" and .profile.test == false
                          and (.target.kind | index("bin")) and .target.name == "hutch")
                   | .executable // empty' "$logdir/build.json" | tail -n1)
[ -n "$hutch_exe" ] && [ -x "$hutch_exe" ] || die "could not find the hutch binary in cargo's output"
# "kind<TAB>name<TAB>executable" of every test executable.
jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
       | "\(.target.kind[0])\t\(.target.name)\t\(.executable)"' "$logdir/tests.json" |
    sort -u >"$logdir/tests.tsv"
[ -s "$logdir/tests.tsv" ] || die "cargo reported no test executables"
echo "hutch binary: $hutch_exe"
echo "test executables: $(wc -l <"$logdir/tests.tsv")"
end_phase ok

# ---------------------------------------------------------------- fixtures (wait)
if [ $is_root = 1 ]; then
    phase "fixtures"
    rc=0; wait "$fixture_pid" || rc=$?
    fixture_pid=""
    # build.sh's own end time: the log file is written to until it exits.
    fixture_done=$(stat -c %.9Y "$logdir/fixtures.log")
    sed 's/^/  /' "$logdir/fixtures.log"
    fixture_time=$(elapsed "$fixture_t0" "$fixture_done")
    echo "the fixture build took ${fixture_time}s in the background"
    [ $rc = 0 ] || die "building the fixtures failed (tests/fixtures/build.sh, exit $rc): see the log above"
    runuser -u "$test_user" -- test -r "$fixtures/busybox-oci/index.json" ||
        die "$test_user cannot read the fixtures in $fixtures (is a parent directory private?)"
    end_phase ok
    phase_names+=("  (fixture build, background)"); phase_times+=("$fixture_time"); phase_status+=(ok)
fi

# ---------------------------------------------------------------- stage
declare -a t_kind t_name t_exe
while IFS=$'\t' read -r k n e; do t_kind+=("$k"); t_name+=("$n"); t_exe+=("$e"); done <"$logdir/tests.tsv"

if [ $is_root = 1 ]; then
    phase "stage"
    base=/var/tmp/hutch-tests
    mkdir -p "$base"
    [ "$(stat -c %u "$base")" = 0 ] || die "$base is not owned by root; remove it"
    chmod 0755 "$base"
    # Runs older than a day that were kept or interrupted.
    find "$base" -mindepth 1 -maxdepth 1 -type d -mtime +0 -exec rm -rf {} + 2>/dev/null || true
    find /tmp -mindepth 1 -maxdepth 1 -type d -name 'ht.??????' -user "$test_user" -mtime +0 \
        -exec rm -rf {} + 2>/dev/null || true
    stage=$(mktemp -d "$base/run.$(date +%Y%m%d-%H%M%S).XXXXXX")
    chmod 0755 "$stage"
    mkdir -p "$stage/bin" "$stage/work"
    install -m 0755 "$hutch_exe" "$stage/bin/hutch"
    for i in "${!t_exe[@]}"; do
        install -m 0755 "${t_exe[$i]}" "$stage/bin/$(basename "${t_exe[$i]}")"
        t_exe[$i]=$stage/bin/$(basename "${t_exe[$i]}")
    done
    chown -R "$test_user:" "$stage/work"
    chmod 0700 "$stage/work"
    # TMPDIR: short, because tools limit path lengths (podman's runroot must
    # be under 50 characters, unix socket paths under 108 bytes).
    test_tmp=$(mktemp -d /tmp/ht.XXXXXX)
    chown "$test_user:" "$test_tmp"
    chmod 0700 "$test_tmp"
    hutch_bin=$stage/bin/hutch
    workdir=$stage/work
    echo "staged in $stage ($(du -sh "$stage/bin" | cut -f1)); TMPDIR for the tests: $test_tmp"
    end_phase ok
else
    hutch_bin=$hutch_exe
    workdir=$logdir/work
    mkdir -p "$workdir"
fi

# ---------------------------------------------------------------- run
# The environment the tests see: clean, with what they need and pass-through
# of RUST_* and HUTCH_* settings.
test_env=()
while IFS= read -r -d '' kv; do
    case ${kv%%=*} in
        RUST_LOG|RUST_BACKTRACE|RUST_LIB_BACKTRACE|HUTCH_*) test_env+=("$kv") ;;
    esac
done < <(env -0)
test_env+=(HUTCH_BIN="$hutch_bin" HUTCH_FIXTURES="$fixtures" CI="${CI:-}")
[[ " ${test_env[*]} " == *" RUST_BACKTRACE="* ]] || test_env+=(RUST_BACKTRACE=1)
if [ $is_root = 1 ]; then
    test_env+=(HOME="$(getent passwd "$test_user" | cut -d: -f6)" USER="$test_user" LOGNAME="$test_user"
               XDG_RUNTIME_DIR="/run/user/$test_uid" TMPDIR="$test_tmp"
               PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
               LANG=C.UTF-8)
    runner=(runuser -u "$test_user" -- env -i)
else
    test_env+=(HOME="$HOME" USER="${USER:-$(id -un)}" PATH="$PATH" LANG="${LANG:-C.UTF-8}")
    [ -n "${XDG_RUNTIME_DIR:-}" ] && test_env+=(XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR")
    [ -n "${TMPDIR:-}" ] && test_env+=(TMPDIR="$TMPDIR")
    runner=(env -i)
fi

crashed=0
for i in "${!t_exe[@]}"; do
    label="${t_kind[$i]} ${t_name[$i]}"
    log=$logdir/test-$i.log
    phase "test: $label"
    bt0=$(now)
    rc=0
    "${runner[@]}" "${test_env[@]}" timeout --kill-after=30 "$timeout_s" \
        env --chdir="$workdir" "${t_exe[$i]}" --test-threads="$threads" "${filters[@]}" </dev/null 2>&1 |
        tee "$log" || rc=${PIPESTATUS[0]}
    bt=$(elapsed "$bt0" "$(now)")
    result=$(grep -E '^test result: ' "$log" | tail -n1 || true)
    p=0; f=0; ig=0
    if [ -n "$result" ]; then
        p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result")
        f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
        ig=$(sed -nE 's/.* ([0-9]+) ignored.*/\1/p' <<<"$result")
    fi
    total_passed=$((total_passed + ${p:-0})); total_failed=$((total_failed + ${f:-0}))
    if [ -z "$result" ] || { [ "$rc" != 0 ] && [ "${f:-0}" = 0 ]; }; then
        status="CRASHED (exit $rc)"
        [ "$rc" = 124 ] && status="TIMEOUT (${timeout_s}s)"
        crashed=$((crashed + 1))
        total_failed=$((total_failed + 1))
        failures+=("$label: test executable $status (counted as 1 failed test): see its output above")
    elif [ "${f:-0}" != 0 ]; then status=failed
    else status=ok
    fi
    bin_rows+=("$(printf '%-40s %7s %7s %7s %7ss  %s' "$label" "$p" "$f" "$ig" "$bt" "$status")")
    end_phase "$status"
done

# Doc tests need rustdoc, so they run as the invoking user.
if grep -q $'^lib\t' "$logdir/tests.tsv"; then
    phase "doctests"
    log=$logdir/doctests.log
    rc=0
    cargo test --doc -- --test-threads="$threads" "${filters[@]}" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    result=$(grep -E '^test result: ' "$log" | tail -n1 || true)
    p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
    ig=$(sed -nE 's/.* ([0-9]+) ignored.*/\1/p' <<<"$result")
    total_passed=$((total_passed + ${p:-0})); total_failed=$((total_failed + ${f:-0}))
    status=ok
    if [ "$rc" != 0 ]; then
        status=FAILED
        [ "${f:-0}" = 0 ] && failures+=("cargo test --doc exited $rc")
    fi
    bin_rows+=("$(printf '%-40s %7s %7s %7s %7ss  %s' "doctests" "${p:-0}" "${f:-0}" "${ig:-0}" \
        "$(elapsed "$phase_t0" "$(now)")" "$status")")
    end_phase "$status"
fi

# ---------------------------------------------------------------- conformance
# pjdfstest on the overlay against a tmpfs control, both maps, with the
# kernel overlay's reference figure as the bar (tests/conformance/README.md;
# the script alone also measures the kernel), and the unionmount-testsuite.
# Both come from ../shared beside the checkout. Part of every whole run.
conformance_default=1
[ ${#filters[@]} -eq 0 ] || conformance_default=0
if [ -z "${HUTCH_CONFORMANCE:-}" ] && [ $conformance_default = 1 ] \
    && [ ! -d "$repo/../shared/conformance" ] && [ -z "${HUTCH_CONFORMANCE_SRC:-}" ]; then
    echo "run.sh: conformance suites skipped: no ../shared/conformance beside the checkout" \
         "(CI has it; tests/conformance/README.md says where the suites come from)"
    conformance_default=0
fi
if [ "${HUTCH_CONFORMANCE:-$conformance_default}" = 1 ]; then
    phase "conformance: pjdfstest"
    rc=0
    HUTCH_BIN="$hutch_bin" HUTCH_FIXTURES="$fixtures" HUTCH_TEST_USER="$test_user" \
        bash "$repo/tests/conformance/pjdfstest.sh" --no-kernel </dev/null || rc=$?
    case $rc in
        0) end_phase ok ;;
        1) end_phase FAILED
           failures+=("pjdfstest: hutch's overlay fails more tests beyond the tmpfs control than the kernel overlay (see above)") ;;
        *) end_phase FAILED
           failures+=("tests/conformance/pjdfstest.sh could not run (exit $rc): see above") ;;
    esac
    phase "conformance: unionmount-testsuite"
    rc=0
    HUTCH_BIN="$hutch_bin" HUTCH_TEST_USER="$test_user" \
        bash "$repo/tests/conformance/unionmount.sh" </dev/null || rc=$?
    case $rc in
        0) end_phase ok ;;
        1) end_phase FAILED
           failures+=("unionmount-testsuite: some tests fail on hutch's overlay (see above)") ;;
        *) end_phase FAILED
           failures+=("tests/conformance/unionmount.sh could not run (exit $rc): see above") ;;
    esac
fi

if [ $is_root = 1 ]; then
    # Only ours: other runs may use the same user at the same time.
    left=$(pgrep -u "$test_user" -a -f "^$stage/" 2>/dev/null || true)
    if [ -n "$left" ]; then
        echo "run.sh: WARNING: processes started by these tests are still running:"
        echo "$left"
    fi
fi

summary_and_exit ok
