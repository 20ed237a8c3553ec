#!/usr/bin/env bash
# Times `pinnace copy` against `skopeo copy` on the large local image (see
# make-large-image.sh), side by side in one run: for every pair and every round both tools
# copy the same source to a fresh destination; wall time, peak RSS and CPU time come from
# `/usr/bin/time -f '%e %M %U %S'`. Prints a markdown table of medians and replaces the
# "copy.sh" section of bench/RESULTS.md with it.
#
#   ROUNDS=5               rounds per pair (default 5)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   PAIRS="a b"            only these pairs (names as in the table, e.g. "docker-archive->oci")
#   NO_RESULTS=1           do not touch bench/RESULTS.md
#   BENCH_BOOST=-10        scheduling boost for this run (see below); 0 to disable
#
# Fairness: the page cache cannot be dropped reliably here, so each pair's source is read
# once (untimed) before its rounds so both tools start warm; destinations are removed and
# `sync` runs between commands (untimed), so neither tool pays for the other's writeback.
# On a shared machine (other sessions compiling), the kernel's autogroup scheduler gives
# every session an equal share of the CPUs whatever `nice` says; so, as root, the script
# re-runs itself in a session of its own (setsid) and raises that session's autogroup
# weight (BENCH_BOOST, default nice -10) for the measurements, which both tools inherit
# alike. It changes only how much CPU the benchmark gets next to the other sessions, not
# how either tool behaves; the CPU-time columns do not depend on it.
# Needs root (podman image store via make-large-image.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

ROUNDS="${ROUNDS:-5}"
BENCH_BOOST="${BENCH_BOOST:--10}"
BOOSTED="no"
# The boost applies to a whole session: run in a session of our own so nothing else gets it.
if [ "$BENCH_BOOST" != 0 ] && [ "$(id -u)" = 0 ] && [ -z "${BENCH_IN_SESSION:-}" ] && command -v setsid >/dev/null; then
  BENCH_IN_SESSION=1 exec setsid --wait "$BENCH_ROOT/bench/copy.sh" "$@"
fi
command -v skopeo >/dev/null || die "skopeo missing: run scripts/setup-test-tools.sh"
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"

# 1. pinnace, release build. The binary is copied aside so concurrent rebuilds by others
#    cannot swap it mid-run.
bench_pinnace pinnace
PINNACE_VERSION=$("$PINNACE" --version)
if [ -n "${PINNACE_BIN:-}" ]; then
  BUILT="binary $PINNACE_BIN, built $(date -u -r "$PINNACE_BIN" +'%Y-%m-%d %H:%M UTC'); tree now at git $GIT_REV"
else
  BUILT="git $GIT_REV, release profile"
fi
SKOPEO_VERSION=$(skopeo --version | awk '{ print $3 }')

# 2. The large image.
sizes=$("$BENCH_ROOT/bench/make-large-image.sh")
IMAGE_BYTES=$(sed -n 's/^BENCH_IMAGE_BYTES=//p' <<<"$sizes")
BASE_BYTES=$(sed -n 's/^BENCH_BASE_BYTES=//p' <<<"$sizes")
IMAGE_GZ_BYTES=$(sed -n 's/^BENCH_IMAGE_GZIP_BYTES=//p' <<<"$sizes")

# Boost only the measurements (not the build above).
if [ -n "${BENCH_IN_SESSION:-}" ] && [ "$BENCH_BOOST" != 0 ] && [ -w /proc/$$/autogroup ]; then
  echo "$BENCH_BOOST" >/proc/$$/autogroup 2>/dev/null && BOOSTED="autogroup nice $BENCH_BOOST"
fi

OUT="$BENCH_DIR/copy-out"
RAW="$BENCH_DIR/copy-raw.txt"
rm -rf "$OUT"; mkdir -p "$OUT"
: >"$RAW"
NAME="localhost/pinnace-bench-large:1"

# name | source file | pinnace/skopeo source ref | destination kind | target kind
#   kind "fast": no recompression, >= 3x faster; "compress": faster and output no larger.
ALL_PAIRS=(
  "oci->oci-archive|$BENCH_LARGE_OCI|oci:$BENCH_LARGE_OCI:1|oci-archive|fast"
  "oci-archive->oci|$BENCH_LARGE_OCI_ARCHIVE|oci-archive:$BENCH_LARGE_OCI_ARCHIVE:1|oci|fast"
  "oci->docker-archive|$BENCH_LARGE_OCI|oci:$BENCH_LARGE_OCI:1|docker-archive|fast"
  "docker-archive->docker-archive|$BENCH_LARGE_DOCKER|docker-archive:$BENCH_LARGE_DOCKER|docker-archive|fast"
  "docker-archive->oci|$BENCH_LARGE_DOCKER|docker-archive:$BENCH_LARGE_DOCKER|oci|compress"
)

dest_ref() { # KIND PATH
  case $1 in
    oci) echo "oci:$2:1" ;;
    oci-archive) echo "oci-archive:$2:1" ;;
    docker-archive) echo "docker-archive:$2:$NAME" ;;
  esac
}

warm() { # read the source once so both tools start from the same (warm) page cache
  if [ -d "$1" ]; then find "$1" -type f -exec cat {} + >/dev/null; else cat "$1" >/dev/null; fi
}

# Config digest of any readable reference (must be the same for source and every output).
config_digest() {
  skopeo inspect --raw "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])'
}

run_tool() { # TOOL SRC DST_KIND DST_PATH RAWFILE
  local tool=$1 src=$2 kind=$3 path=$4 raw=$5
  rm -rf "$path"; sync
  case $tool in
    pinnace) timed "$raw" "$PINNACE" copy --quiet "$src" "$(dest_ref "$kind" "$path")" ;;
    skopeo) timed "$raw" skopeo copy --quiet "$src" "$(dest_ref "$kind" "$path")" ;;
  esac
  sync
}

ext_of() { case $1 in oci) echo "" ;; *) echo ".tar" ;; esac; }

LOAD_BEFORE=$(cat /proc/loadavg | cut -d' ' -f1-3)
START=$(date +%s)
ROWS=()
FAILS=()
for spec in "${ALL_PAIRS[@]}"; do
  IFS='|' read -r pair srcfile srcref dkind goal <<<"$spec"
  if [ -n "${PAIRS:-}" ] && ! grep -qw -- "$pair" <<<"$PAIRS"; then continue; fi
  log "$pair: warm-up read of $srcfile, then $ROUNDS rounds"
  warm "$srcfile"
  p_raw="$OUT/$pair.pinnace.raw"; s_raw="$OUT/$pair.skopeo.raw"; : >"$p_raw"; : >"$s_raw"
  p_out="$OUT/pinnace-$dkind$(ext_of "$dkind")"; s_out="$OUT/skopeo-$dkind$(ext_of "$dkind")"
  for r in $(seq 1 "$ROUNDS"); do
    # Alternate which tool goes first, so neither always follows the other's writeback.
    if [ $((r % 2)) = 1 ]; then order="pinnace skopeo"; else order="skopeo pinnace"; fi
    for tool in $order; do
      if [ "$tool" = pinnace ]; then run_tool pinnace "$srcref" "$dkind" "$p_out" "$p_raw"
      else run_tool skopeo "$srcref" "$dkind" "$s_out" "$s_raw"; fi
    done
    log "  round $r: pinnace $(tail -n1 "$p_raw") | skopeo $(tail -n1 "$s_raw")  (wall s, RSS KiB, user s, sys s; load $(load1))"
  done
  { echo "$pair pinnace"; cat "$p_raw"; echo "$pair skopeo"; cat "$s_raw"; } >>"$RAW"

  # The outputs of the last round: both readable, same config as the source.
  want=$(config_digest "$srcref")
  for o in "$p_out" "$s_out"; do
    got=$(config_digest "$(dest_ref "$dkind" "$o")") || got="unreadable"
    [ "$got" = "$want" ] || FAILS+=("$pair: $(basename "$o") config $got, source $want")
  done
  p_bytes=$(blob_bytes "$p_out"); s_bytes=$(blob_bytes "$s_out")
  rm -rf "$p_out" "$s_out"

  p_wall=$(cut -d' ' -f1 "$p_raw" | median); s_wall=$(cut -d' ' -f1 "$s_raw" | median)
  p_min=$(cut -d' ' -f1 "$p_raw" | sort -g | head -n1); p_max=$(cut -d' ' -f1 "$p_raw" | sort -g | tail -n1)
  s_min=$(cut -d' ' -f1 "$s_raw" | sort -g | head -n1); s_max=$(cut -d' ' -f1 "$s_raw" | sort -g | tail -n1)
  p_rss=$(cut -d' ' -f2 "$p_raw" | median); s_rss=$(cut -d' ' -f2 "$s_raw" | median)
  p_rss_max=$(cut -d' ' -f2 "$p_raw" | sort -g | tail -n1)
  p_cpu=$(awk '{ printf "%.2f\n", $3 + $4 }' "$p_raw" | median); s_cpu=$(awk '{ printf "%.2f\n", $3 + $4 }' "$s_raw" | median)
  ratio=$(awk -v s="$s_wall" -v p="$p_wall" 'BEGIN { if (p > 0) printf "%.2f", s / p; else print "inf" }')
  rss_ok=$(awk -v k="$p_rss_max" 'BEGIN { print (k <= 65536) ? "yes" : "no" }')
  case $goal in
    fast)
      target="≥ 3x"
      met=$(awk -v r="$ratio" 'BEGIN { print (r >= 3) ? "yes" : "no" }') ;;
    compress)
      target="> 1x, output ≤ skopeo"
      met=$(awk -v r="$ratio" -v p="$p_bytes" -v s="$s_bytes" 'BEGIN { print (r > 1 && p <= s) ? "yes" : "no" }') ;;
  esac
  ROWS+=("| $pair | $p_wall ($p_min–$p_max) | $s_wall ($s_min–$s_max) | **${ratio}x** | $p_cpu | $s_cpu | $(mib $((p_rss * 1024))) | $(mib $((s_rss * 1024))) | $(mib "$p_bytes") | $(mib "$s_bytes") | $target | $met; RSS ≤ 64 MiB: $rss_ok |")
done

# RSS flat in image size: the same pinnace copies of the smaller base image.
FLAT_ROWS=()
if [ -z "${PAIRS:-}" ] || grep -qw -- "flat" <<<"${PAIRS:-}"; then
  warm "$BENCH_BASE_DOCKER"
  for dkind in oci docker-archive; do
    raw="$OUT/flat-$dkind.raw"; : >"$raw"
    path="$OUT/flat-$dkind$(ext_of "$dkind")"
    for r in $(seq 1 "$ROUNDS"); do run_tool pinnace "docker-archive:$BENCH_BASE_DOCKER" "$dkind" "$path" "$raw"; done
    rm -rf "$path"
    large_rss=$(awk -v p="docker-archive->$dkind pinnace" '$0 == p { f = 1; next } /^[a-z]/ { f = 0 } f { print $2 }' "$RAW" | median)
    FLAT_ROWS+=("| docker-archive->$dkind | $(mib "$BASE_BYTES") MiB | $(mib $(( $(cut -d' ' -f2 "$raw" | median) * 1024 ))) | $(mib "$IMAGE_BYTES") MiB | $( [ "$large_rss" = nan ] && echo "–" || mib $((large_rss * 1024)) ) |")
  done
fi
LOAD_AFTER=$(cat /proc/loadavg | cut -d' ' -f1-3)
ELAPSED=$(( $(date +%s) - START ))

CMD="ROUNDS=$ROUNDS bench/copy.sh"
[ -n "${PAIRS:-}" ] && CMD="PAIRS=\"$PAIRS\" $CMD"
[ -n "${PINNACE_BIN:-}" ] && CMD="PINNACE_BIN=$PINNACE_BIN $CMD"
SECTION=$(cat <<EOF
<!-- copy.sh:begin -->
## copy.sh — $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`$CMD\` (from the repository root, as root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $LOAD_AFTER after (${ELAPSED}s run)
- pinnace: $PINNACE_VERSION ($BUILT); skopeo $SKOPEO_VERSION
- Image: \`$NAME\` = debootstrap minbase bookworm + openjdk-17-jdk-headless:
  $(mib "$IMAGE_BYTES") MiB uncompressed ($IMAGE_BYTES bytes of layer tars), $(mib "$IMAGE_GZ_BYTES") MiB as gzip layers (skopeo's)
- Scheduling boost for the run: $BOOSTED (see the header of bench/copy.sh).
- $ROUNDS rounds per pair; each round runs both tools (alternating which goes first) into a
  fresh destination; removal and \`sync\` between commands are not timed; one untimed
  warm-up read of the source before each pair. Wall = median seconds (min–max);
  CPU = median user+sys seconds; RSS = median peak RSS; all from
  \`/usr/bin/time -f '%e %M %U %S'\`; ratio = skopeo wall / pinnace wall;
  out = bytes written (blobs for oci, the file for archives).

| pair | pinnace s | skopeo s | skopeo/pinnace | pinnace CPU s | skopeo CPU s | pinnace RSS MiB | skopeo RSS MiB | pinnace out MiB | skopeo out MiB | target | met |
|---|---|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")
EOF
)
if [ "${#FLAT_ROWS[@]}" -gt 0 ]; then
  SECTION+=$'\n\n'"RSS flat in image size (pinnace, median peak RSS):"$'\n\n'
  SECTION+="| pair | base image | pinnace RSS MiB | large image | pinnace RSS MiB |"$'\n'"|---|---|---|---|---|"$'\n'
  SECTION+=$(printf '%s\n' "${FLAT_ROWS[@]}")
fi
finish_section copy.sh "Output check failures (config digest differs from the source's, or unreadable):" "some outputs failed the check (see above)"
