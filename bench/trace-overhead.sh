#!/usr/bin/env bash
# What slim's tracer costs: the same command, in the same sandbox over the same unpacked
# image, untraced and traced (the seccomp filter that stops only file-related syscalls,
# answered through seccomp user notifications, pinnace's default on Linux >= 5.5, and
# through ptrace, the fallback, forced with PINNACE_TRACER=ptrace), side by side in one run. The command is each app's start-up:
# the interpreter loading what the fixture app imports.
#
#   overhead = (traced - untraced) / (untraced - sandbox)
#
# where "sandbox" is the untraced time of /bin/true in the same sandbox (namespaces,
# overlayfs, pivot_root: paid by both runs, not the app's own start-up). Times are what
# `pinnace __trace --no-trace` / `pinnace __trace` measure from the sandbox's start to the
# app's exit; medians of ROUNDS runs. The issue's target: overhead under 20 % of the app's
# own start-up time.
#
#   ROUNDS=7               runs per command and mode (default 7)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md
#
# Needs root (the sandbox), umoci (unpacks the images), and what
# pinnace/tests/fixtures/slim/make-images.sh needs. Writes the "trace-overhead.sh"
# section of bench/RESULTS.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
ROUNDS="${ROUNDS:-7}"
[ "$(id -u)" = 0 ] || die "run as root (the sandbox needs it)"
command -v umoci >/dev/null || die "umoci missing (scripts/setup-test-tools.sh installs it)"
bench_pinnace pinnace-trace
IMAGES=$(pinnace/tests/fixtures/slim/make-images.sh)
WORK=$(mktemp -d /var/tmp/pinnace-trace-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

unpack() { umoci unpack --image "$IMAGES:$1" "$WORK/$1" >/dev/null 2>&1 && echo "$WORK/$1/rootfs"; }

# one ROOT MODE CMD...: the milliseconds of one run (MODE: untraced, notify or ptrace).
one() {
  local root=$1 mode=$2; shift 2
  local flag=()
  [ "$mode" = untraced ] && flag=(--no-trace)
  PINNACE_TRACER=$mode "$PINNACE" __trace "$root" --seconds 60 "${flag[@]}" -- "$@" |
    python3 -c 'import json,sys; v=json.load(sys.stdin); assert v["exit"]==0, v; print(v["millis"])'
}

# pair ROOT CMD...: "UNTRACED NOTIFY PTRACE", medians of ROUNDS runs taken alternately (so
# drift in the machine's load hits every mode alike).
pair() {
  local root=$1; shift
  local u=() t=() p=() i
  for i in $(seq "$ROUNDS"); do
    u+=("$(one "$root" untraced "$@")")
    t+=("$(one "$root" notify "$@")")
    p+=("$(one "$root" ptrace "$@")")
  done
  printf '%s %s %s\n' "$(printf '%s\n' "${u[@]}" | median)" "$(printf '%s\n' "${t[@]}" | median)" \
    "$(printf '%s\n' "${p[@]}" | median)"
}

rows=""
judged_ok=1
for tag in python node java perl; do
  case $tag in
    python) cmd=(python3 -c 'import ssl, json, sqlite3, http.server') ;;
    node) cmd=(node -e 'require("http"); require("crypto")') ;;
    java) cmd=(java -version) ;;
    perl) cmd=(perl -MPOSIX -MFile::Spec -e 1) ;;
  esac
  root=$(unpack "$tag")
  read -r base _ _ < <(pair "$root" /bin/true)
  read -r un tr pt < <(pair "$root" "${cmd[@]}")
  read -r base un tr pt < <(awk -v a="$base" -v b="$un" -v c="$tr" -v d="$pt" 'BEGIN { printf "%.1f %.1f %.1f %.1f\n", a, b, c, d }')
  pct=$(awk -v t="$tr" -v u="$un" -v b="$base" 'BEGIN { printf "%.1f", 100 * (t - u) / (u - b) }')
  ppct=$(awk -v t="$pt" -v u="$un" -v b="$base" 'BEGIN { printf "%.1f", 100 * (t - u) / (u - b) }')
  ok=$(awk -v p="$pct" 'BEGIN { print (p < 20) ? "yes" : "no" }')
  [ "$ok" = yes ] || judged_ok=0
  log "$tag: sandbox $base ms, untraced $un ms, traced $tr ms ($pct %), ptrace $pt ms ($ppct %)"
  rows+="| $tag | \`${cmd[*]}\` | $base | $un | $tr | **$pct %** | $ok | $pt | $ppct % |"$'\n'
done

# The cost of one stop: a static C loop of 5000 stat() calls, traced and untraced.
root="$WORK/python/rootfs"
printf '#include <sys/stat.h>\n#include <stdlib.h>\nint main(int c, char **v) { struct stat st; for (int i = 0; i < atoi(v[1]); i++) stat(v[2], &st); return 0; }\n' >"$WORK/statloop.c"
gcc -O2 -static -o "$root/usr/local/bin/statloop" "$WORK/statloop.c"
read -r u1 t1 p1 < <(pair "$root" statloop 1 /etc/passwd)
read -r u5 t5 p5 < <(pair "$root" statloop 5001 /etc/passwd)
per_stop=$(awk -v a="$u1" -v b="$t1" -v c="$u5" -v d="$t5" 'BEGIN { printf "%.1f", ((d - c) - (b - a)) * 1000 / 5000 }')
per_ptrace=$(awk -v a="$u1" -v b="$p1" -v c="$u5" -v d="$p5" 'BEGIN { printf "%.1f", ((d - c) - (b - a)) * 1000 / 5000 }')
log "one traced stat(): $per_stop us (ptrace: $per_ptrace us)"

SECTION="<!-- trace-overhead.sh:begin -->
## slim's tracer: overhead on app start-up (\`bench/trace-overhead.sh\`)

Command: \`ROUNDS=$ROUNDS bench/trace-overhead.sh\` at $GIT_REV, $(date -u +%Y-%m-%d). $(machine_summary)
Each command runs in pinnace's sandbox over the unpacked fixture image, untraced
(\`__trace --no-trace\`), traced as \`pinnace slim\` traces by default (seccomp user notifications), and
traced through the ptrace fallback (\`PINNACE_TRACER=ptrace\`), median of $ROUNDS taken alternately;
\"sandbox\" is /bin/true untraced (set-up all pay). Overhead = (traced - untraced) / (untraced - sandbox).
Target: under 20 % (the default tracer). Met on every command: $([ "$judged_ok" = 1 ] && echo yes || echo no).

| image | command | sandbox ms | untraced ms | traced ms | overhead | < 20 % | ptrace ms | ptrace overhead |
|---|---|---|---|---|---|---|---|---|
$rows
One stop (a static loop of 5000 \`stat()\` calls, traced minus untraced, per call): **$per_stop µs**
(ptrace: $per_ptrace µs) on this machine. Each traced syscall costs two context switches between the app
and the supervisor; start-ups that are mostly file lookups (Python's imports, Perl's @INC search) pay it
hundreds of times.
<!-- trace-overhead.sh:end -->"
write_section trace-overhead.sh
printf '%s\n' "$SECTION"
