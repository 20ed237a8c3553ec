#!/usr/bin/env bash
# `pinnace slim` on the images of its integration tests (pinnace/tests/fixtures/slim/
# make-images.sh: Debian bookworm minbase + ca-certificates, with python3, nodejs,
# openjdk-17-jre-headless or nothing added by apt-get, plus a small app), each with the
# tests' probes:
#
#   original size, slim size, ratio, time to slim, probes agreeing (verified by docker)
#
# next to DockerSlim's published ratios (~30x from full Debian/Ubuntu bases, 1.8-3.7x
# from alpine/distroless bases). Sizes are uncompressed: the sum of the layer tars (what
# `docker images` shows, and what DockerSlim's ratios compare). The originals here start
# from minbase (about 125 MiB), not from a full `python:3`-style image of about 1 GB with
# compilers and headers, so the same work gives smaller ratios than DockerSlim's headline.
#
# Tracing overhead is measured by bench/trace-overhead.sh (the same commands traced and
# untraced in the same sandbox); this script times the whole slim.
#
#   ROUNDS=3               runs per image (default 3; the ratio is the same every time)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md
#
# Needs root (the sandbox, debootstrap for the images), docker, and what make-images.sh
# needs. Appends (or replaces) the "slim.sh" section of bench/RESULTS.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
ROUNDS="${ROUNDS:-3}"
[ "$(id -u)" = 0 ] || die "run as root (the sandbox and debootstrap need it)"
docker info >/dev/null 2>&1 || die "docker is not running (slim verifies with it)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

bench_pinnace pinnace-slim
BUILD_DESC=${PINNACE_BIN:+binary $PINNACE_BIN}
BUILD_DESC=${BUILD_DESC:-release profile}
log "building the fixture images (cached per day)"
IMAGES=$(bash "$BENCH_ROOT/pinnace/tests/fixtures/slim/make-images.sh")
W="$BENCH_DIR/slim"
rm -rf "$W"
mkdir -p "$W"

# tag | what it is | probe arguments (the integration tests' probes)
SPECS=(
  "python|Python http.server, ssl+json+sqlite3 on /work|--http-probe 8080:/ --http-probe 8080:/work"
  "node|Node (Debian nodejs), crypto+zlib|--http-probe 8080:/"
  "java|Java HttpServer on Debian's JRE 17|--http-probe 8080:/=crc32=abb4c184"
  "perl|Perl worker (perl-base), exec probe|--exec-probe perl_report"
  "capps|C service behind a /bin/sh entrypoint (date, cat, tr; CA bundle, getaddrinfo, stat-only file, empty dir)|--http-probe 8080:/ --http-probe 8080:/ca --http-probe 8080:/resolve --http-probe 8080:/feature --http-probe 8080:/lock --http-probe 8080:/motd"
)

# Sum of the layer tars of a docker-archive.
layer_bytes() {
  python3 - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = json.load(t.extractfile("manifest.json"))
    sizes = {i.name: i.size for i in t.getmembers()}
    print(sum(sizes[l] for l in m[0]["Layers"]))
PY
}

# Fields of a --json report: verified, agreeing/total probes, first probe's millis on
# both sides (empty when not an HTTP probe), total seconds.
report_fields() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["probes"]
first = p[0]
http = first["original"]["probe"].startswith("http")
print(r["verified"], sum(1 for x in p if x["agree"]), len(p),
      first["original"]["millis"] if http else "-", (first.get("slim") or {}).get("millis", "-") if http else "-",
      "%.1f" % r["seconds"]["total"], r["verified_with"].split()[0])
PY
}

ROWS=""
for spec in "${SPECS[@]}"; do
  IFS='|' read -r tag what probes <<<"$spec"
  # shellcheck disable=SC2206
  args=($probes)
  for i in "${!args[@]}"; do
    [ "${args[$i]}" = perl_report ] && args[$i]="perl /app/worker.pl --report"
  done
  orig=$(cat "$IMAGES/$tag.size")
  walls=()
  verified="" agree="" total="" slim_bytes="" rt=""
  for r in $(seq 1 "$ROUNDS"); do
    out="$W/$tag-slim.tar"
    rm -f "$out"
    log "$tag: round $r: pinnace slim ${args[*]}"
    t0=$(date +%s.%N)
    if ! "$PINNACE" slim "oci:$IMAGES:$tag" -t "docker-archive:$out" --json "${args[@]}" >"$W/$tag.json" 2>"$W/$tag.err"; then
      tail -n 15 "$W/$tag.err" >&2
      log "$tag: slim failed (see $W/$tag.err)"
      verified="failed"
      break
    fi
    t1=$(date +%s.%N)
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
    read -r verified agree total _ _ _ rt < <(report_fields "$W/$tag.json")
    slim_bytes=$(layer_bytes "$out")
  done
  if [ "$verified" = failed ]; then
    ROWS+="| $tag | $what | $(mib "$orig") | failed | | | see \`$W/$tag.err\` |"$'\n'
    continue
  fi
  wall=$(printf '%s\n' "${walls[@]}" | median)
  ratio=$(awk -v a="$orig" -v b="$slim_bytes" 'BEGIN { printf "%.1f", a / b }')
  ROWS+="| $tag | $what | $(mib "$orig") | $(mib "$slim_bytes") | **${ratio}x** | $wall | $agree/$total ($rt) |"$'\n'
  log "$tag: $(mib "$orig") MiB -> $(mib "$slim_bytes") MiB (${ratio}x), $wall s, $agree/$total probes agree"
done

SECTION="<!-- slim.sh:begin -->
## slim — bench/slim.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`ROUNDS=$ROUNDS bench/slim.sh\` (from the repository root, as root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after
- pinnace: $("$PINNACE" --version) (git $GIT_REV, $BUILD_DESC)
- Images: \`pinnace/tests/fixtures/slim/make-images.sh\` (bookworm minbase + ca-certificates, apt-get of the
  runtime, the app as a second layer); the probes are the integration tests'. Sizes are uncompressed layer
  tars; time is the wall time of the whole \`pinnace slim\` (unpack, traced run, rebuild, verification with
  docker, write), median of $ROUNDS.

| image | app | original MiB | slim MiB | ratio | slim s | probes agreeing |
|---|---|---|---|---|---|---|
${ROWS}
DockerSlim's published ratios, for comparison: about **30x** from full Debian/Ubuntu-based images, **1.8-3.7x**
from alpine or distroless bases. The originals above are minbase images (no compilers, docs or apt lists
beyond what apt-get installs), between those two kinds of starting point.

Tracing overhead: see the trace-overhead.sh section (traced against untraced in the same sandbox).
<!-- slim.sh:end -->"

printf '%s\n' "$SECTION"
write_section slim.sh
