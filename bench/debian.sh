#!/usr/bin/env bash
# Debian packages as a source (issue 8): the python3 image built by pinnace from the
# archive (cold cache, then warm) vs the usual way: a debootstrap --variant=minbase
# bookworm base + `apt-get install --no-install-recommends python3` in `podman build`,
# then `podman save`. Also the presets' sizes next to distroless's published sizes.
#
# Usage: bench/debian.sh   (as root, from anywhere; needs podman, debootstrap for the base)
# Appends a "debian" section to bench/RESULTS.md (between markers, replacing an older one).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (podman)"
# CARGO_TARGET_DIR is honoured: a private one keeps other builds sharing target/ from
# replacing the binaries between the build and the measurement.
TARGET="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}"
# The pinnace binary, and the index alone (read + verify, parse, resolver index,
# resolve): examples/deb_index.rs; both built from this tree.
(cd "$BENCH_ROOT" && cargo build --release -p pinnace --bin pinnace --example deb_index -q)
PINNACE="${PINNACE:-$TARGET/release/pinnace}"
INDEX_BENCH="$TARGET/release/examples/deb_index"
W="$BENCH_DIR/debian"; rm -rf "$W"; mkdir -p "$W"
export SOURCE_DATE_EPOCH=0
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# Uncompressed size of an image = sum of its layers' uncompressed sizes (from --json).
usize() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["uncompressed_size"], r["size"])' "$1"; }

printf 'import ssl, json, sqlite3\nprint("ok")\n' >"$W/app.py"
py_args=(--preset python3 --file "$W/app.py:/app/app.py" --entrypoint /usr/bin/python3,/app/app.py)

log "pinnace python3, cold cache"
t0=$(now); XDG_CACHE_HOME="$W/cold-cache" "$PINNACE" build "${py_args[@]}" -t "docker-archive:$W/py-cold.tar" --json >"$W/py-cold.json"; t1=$(now)
COLD=$(secs "$t0" "$t1")
log "pinnace python3, warm cache (3 runs, median)"
WARM=$(for i in 1 2 3; do t0=$(now); XDG_CACHE_HOME="$W/cold-cache" "$PINNACE" build "${py_args[@]}" -t "docker-archive:$W/py-warm.tar" --json >"$W/py-warm.json"; t1=$(now); secs "$t0" "$t1"; echo; done | median)
read -r PY_U PY_C < <(usize "$W/py-warm.json")
log "the bookworm main Packages alone (examples/deb_index.rs, best and median of 7)"
XDG_CACHE_HOME="$W/cold-cache" "$INDEX_BENCH" >"$W/index.txt"
INDEX=$(sed 1d "$W/index.txt" | sed 's/^/    /')
INDEX_HEAD=$(head -1 "$W/index.txt" | sed 's/^.*: //')
# Instruction counts of one warm build (wall time is noisy on a shared machine). Under
# valgrind, SHA-256 runs without the CPU's SHA extensions (valgrind does not emulate
# them), so hashing weighs far more there than on the CPU itself.
if command -v valgrind >/dev/null; then
  log "warm build under callgrind (instruction count)"
  XDG_CACHE_HOME="$W/cold-cache" valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.out" \
    "$PINNACE" build "${py_args[@]}" -t "docker-archive:$W/py-cg.tar" --json >/dev/null 2>"$W/callgrind.err"
  IR=$(awk '/Collected :/ { printf "%.2f G", $4 / 1e9 }' "$W/callgrind.err")
else
  IR="not measured (no valgrind)"
fi
PY_TAR=$(stat -c %s "$W/py-warm.tar")
podman load -q -i "$W/py-warm.tar" >/dev/null
id=$(python3 -c 'import json;print(json.load(open("'"$W/py-warm.json"'"))["config_digest"].split(":")[1])')
[ "$(podman run --rm --network none "$id")" = ok ] || die "pinnace python3 image does not run"
podman rmi -f "$id" >/dev/null

if ! podman image exists "$BENCH_BASE_IMAGE"; then
  log "building $BENCH_BASE_IMAGE with bench/build.sh's debootstrap step"
  rootfs="$W/rootfs"; MIRROR="${BENCH_MIRROR:-$(host_debian_mirror)}"
  t0=$(now); debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$W/debootstrap.log" 2>&1
  tar -C "$rootfs" --numeric-owner -c . | podman import - "$BENCH_BASE_IMAGE" >/dev/null; t1=$(now)
  DEBOOTSTRAP="$(secs "$t0" "$t1") s"; rm -rf "$rootfs"
else
  DEBOOTSTRAP="not timed (base image cached)"
fi
mkdir -p "$W/ctx"
printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\nCOPY app.py /app/app.py\nENTRYPOINT ["/usr/bin/python3", "/app/app.py"]\n' "$BENCH_BASE_IMAGE" >"$W/ctx/Containerfile"
cp "$W/app.py" "$W/ctx/"
log "podman build (apt-get install python3) + podman save"
t0=$(now)
podman build -q --no-cache --network host -t localhost/pinnace-bench-py:1 "$W/ctx" >/dev/null
podman save --format docker-archive -o "$W/py-podman.tar" localhost/pinnace-bench-py:1 >/dev/null
t1=$(now); PODMAN=$(secs "$t0" "$t1")
POD_U=$(podman image inspect --format '{{.Size}}' localhost/pinnace-bench-py:1)
POD_TAR=$(stat -c %s "$W/py-podman.tar")
podman rmi -f localhost/pinnace-bench-py:1 >/dev/null

declare -A DISTROLESS=([static]="~2 MiB" [base]="~20 MiB" [cc]="~23 MiB" [python3]="~50 MiB" [java17]="~220 MiB")
rows=""
for p in static base cc python3 java17; do
  if XDG_CACHE_HOME="$W/cold-cache" "$PINNACE" build --preset "$p" -t "oci:$W/preset-$p:1" --json >"$W/preset-$p.json" 2>"$W/preset-$p.err"; then
    read -r u c < <(usize "$W/preset-$p.json")
    n=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(e[1] for e in r["extras"] if e[0]=="debian").split()[0])' "$W/preset-$p.json")
    rows+="| \`$p\` | $n | $(mib "$u") MiB | $(mib "$c") MiB | ${DISTROLESS[$p]} |"$'\n'
  else
    rows+="| \`$p\` | failed: $(head -c 200 "$W/preset-$p.err" | tr '\n' ' ') | | | ${DISTROLESS[$p]} |"$'\n'
  fi
done

section=$(cat <<EOF2
<!-- debian.sh:begin -->
## debian — bench/debian.sh, $(date -u '+%Y-%m-%d %H:%M') UTC

- Command: \`bench/debian.sh\` (as root; binaries built from this tree into $TARGET); machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end
- Mirror: $(host_debian_mirror) (the host's apt source), suite bookworm; pinnace $("$PINNACE" --version 2>/dev/null | head -1)
- The usual way: \`FROM $BENCH_BASE_IMAGE\` (debootstrap --variant=minbase bookworm; $DEBOOTSTRAP) +
  \`RUN apt-get update && apt-get install -y --no-install-recommends python3\` in \`podman build --no-cache\`, then \`podman save\`.

| python3 image | time | uncompressed | docker-archive written |
|---|---|---|---|
| pinnace, cold cache (download + verify + extract) | $COLD s | $(mib "$PY_U") MiB | — |
| pinnace, warm cache (median of 3) | $WARM s | $(mib "$PY_U") MiB | $(mib "$PY_TAR") MiB |
| debootstrap base + apt-get install python3 + podman save | $PODMAN s | $(mib "$POD_U") MiB | $(mib "$POD_TAR") MiB |

Size ratio (uncompressed): usual / pinnace = $(awk -v a="$POD_U" -v b="$PY_U" 'BEGIN { printf "%.1fx", a / b }'); target <= 1/3.
Both images run the same script (\`import ssl, json, sqlite3\`). Warm build: target <= 2 s.
Instructions of one warm build (callgrind, stable where wall time is not): $IR; most of them
are SHA-256 in software, since valgrind hides the CPU's SHA extensions (under \`perf\` on the
CPU itself, SHA-256 is about 13% of a warm build). The machine may be shared with other
benchmarks: see the load average above. Before the extraction cache (every warm build
decompressed each .deb's xz, about 65% of its time) and with one suite: 2.14 s, 19.0 G.

The index alone, \`cargo run --release -p pinnace --example deb_index\` ($INDEX_HEAD;
target: "well under a second when cached"):

$INDEX

| preset | packages | uncompressed | compressed (gzip layers) | distroless debian12 (uncompressed, as \`docker images\` shows) |
|---|---|---|---|---|
$rows
<!-- debian.sh:end -->
EOF2
)
R="$BENCH_ROOT/bench/RESULTS.md"
touch "$R"
python3 - "$R" "$section" <<'PY'
import sys, re
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pat = re.compile(r"<!-- debian.sh:begin -->.*?<!-- debian.sh:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
echo "$section"
