# Shared helpers for the bench/ scripts. Source it: `. "$(dirname "$0")/lib.sh"`.
# shellcheck shell=bash

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/var/tmp/pinnace-bench}"

# The large image, in every form the benchmarks read.
BENCH_BASE_IMAGE="localhost/pinnace-bench-base:1"
BENCH_LARGE_IMAGE="localhost/pinnace-bench-large:1"
BENCH_LARGE_DOCKER="$BENCH_DIR/large-docker.tar"    # docker-archive (uncompressed layers)
BENCH_LARGE_OCI="$BENCH_DIR/large-oci"              # OCI layout, gzip layers, tag "1"
BENCH_LARGE_OCI_ARCHIVE="$BENCH_DIR/large-oci.tar"  # oci-archive of the same layout
BENCH_BASE_DOCKER="$BENCH_DIR/base-docker.tar"      # the smaller base, for the RSS-flatness check

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The Debian mirror the host's apt uses (deb822 *.sources or one-line *.list), first
# URI that serves the main archive (not -security). Falls back to deb.debian.org.
host_debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" \
      | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' "$f" \
      | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  echo "http://deb.debian.org/debian"
}

# Median of numbers on stdin (one per line).
median() {
  sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# Bytes of a path (file or directory, apparent size of regular files).
bytes_of() {
  if [ -d "$1" ]; then
    find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
  else
    stat -c %s "$1"
  fi
}

# Total bytes of the blobs of an OCI layout directory or an oci-archive / docker-archive tar
# (for an archive: the size of the tar itself).
blob_bytes() {
  if [ -d "$1/blobs" ]; then
    find "$1/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
  else
    bytes_of "$1"
  fi
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# Runs "$@" under /usr/bin/time, appending "WALL_SECONDS PEAK_RSS_KB USER_SECONDS SYS_SECONDS"
# to file $1 (`/usr/bin/time -f '%e %M %U %S'`; RSS in KiB).
timed() {
  local out=$1; shift
  local tf; tf=$(mktemp)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >/dev/null 2>"$tf.err"; then
    cat "$tf.err" >&2; rm -f "$tf" "$tf.err"
    die "command failed: $*"
  fi
  tail -n1 "$tf" >>"$out"
  rm -f "$tf" "$tf.err"
}

machine_summary() {
  local mem
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  local cpu
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo "nproc $(nproc), ${mem} RAM, ${cpu:-unknown CPU}, $(uname -r)"
}

load1() { awk '{ print $1 }' /proc/loadavg; }

# Sets PINNACE to a release pinnace copied aside as $BENCH_DIR/NAME (so a concurrent
# rebuild cannot swap it mid-run): $PINNACE_BIN when given, else a fresh
# `cargo build --release -p pinnace`. Also sets GIT_REV (with +dirty for local changes).
bench_pinnace() {
  local name=$1 src_bin
  mkdir -p "$BENCH_DIR"
  if [ -n "${PINNACE_BIN:-}" ]; then
    src_bin="$PINNACE_BIN"
  else
    log "cargo build --release -p pinnace"
    cargo build --release -p pinnace >&2
    src_bin="$BENCH_ROOT/target/release/pinnace"
  fi
  PINNACE="$BENCH_DIR/$name"
  cp -p "$src_bin" "$PINNACE.tmp" && mv "$PINNACE.tmp" "$PINNACE"
  GIT_REV=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$BENCH_ROOT" diff --quiet HEAD -- pinnace 2>/dev/null || GIT_REV="$GIT_REV+dirty"
}

# Replaces the section between `<!-- NAME:begin -->` and `<!-- NAME:end -->` of
# bench/RESULTS.md with $SECTION (appending it when absent), atomically. Skipped when
# NO_RESULTS is set.
write_section() {
  local name=$1 results="$BENCH_ROOT/bench/RESULTS.md"
  [ -z "${NO_RESULTS:-}" ] || return 0
  [ -f "$results" ] || printf '# pinnace benchmarks\n\nRecorded by the scripts in bench/; each script replaces its own section.\n' >"$results"
  SECTION="$SECTION" NAME="$name" python3 - "$results" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
section, name = os.environ["SECTION"], re.escape(os.environ["NAME"])
pat = re.compile(r"<!-- %s:begin -->.*?<!-- %s:end -->" % (name, name), re.S)
if pat.search(text):
    text = pat.sub(lambda _: section, text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path + ".tmp", "w").write(text)
os.replace(path + ".tmp", path)
PY
  log "wrote the $name section of $results"
}

# finish_section NAME HEADING MESSAGE: appends the FAILS array (if any) under HEADING and
# the end marker to SECTION, prints it, writes it into RESULTS.md, and fails with MESSAGE
# when there were failures.
finish_section() {
  local name=$1 heading=$2 message=$3
  if [ "${#FAILS[@]}" -gt 0 ]; then
    SECTION+=$'\n\n'"$heading"$'\n'
    SECTION+=$(printf -- '- %s\n' "${FAILS[@]}")
  fi
  SECTION+=$'\n'"<!-- $name:end -->"
  printf '%s\n' "$SECTION"
  write_section "$name"
  [ "${#FAILS[@]}" = 0 ] || die "$message"
}
