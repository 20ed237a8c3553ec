#!/usr/bin/env bash
# Registry push and pull: `pinnace copy` vs `skopeo copy` against a local docker-registry
# (distribution 2.8, plain HTTP on 127.0.0.1), side by side in one run, on the large image
# (bench/make-large-image.sh's OCI layout; its gzip layers are pushed byte for byte by
# both tools):
#
#   cold push      OCI layout -> empty registry (a fresh registry per tool and round)
#   cold pull      registry -> fresh OCI layout
#   re-push        the unchanged image again (every blob already there)
#   top-layer push the image plus one changed top layer (built with `pinnace build --from`)
#
# Bytes sent are what the registry process read (`rchar` of /proc/PID/io, sockets and
# files; the registry hashes uploads while writing them, so this is essentially request
# bytes) and what its blob store grew by. Wall time from `/usr/bin/time -f %e`.
# Prints a markdown table and appends it as a "registry" section of bench/RESULTS.md.
#
#   ROUNDS=1               rounds (median of each cell; default 1)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

ROUNDS="${ROUNDS:-1}"
command -v skopeo >/dev/null || die "skopeo missing: run scripts/setup-test-tools.sh"
command -v docker-registry >/dev/null || die "docker-registry missing: run scripts/setup-test-tools.sh"
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"

bench_pinnace pinnace-registry

# The large image: make-large-image.sh's layout, or a ~300 MB random one when absent.
LARGE="$BENCH_LARGE_OCI"
if [ ! -f "$LARGE/index.json" ]; then
  log "no $LARGE: generating a random-content image"
  work="$BENCH_DIR/registry-gen"
  rm -rf "$work"; mkdir -p "$work/files"
  for i in 1 2 3; do head -c $((100 << 20)) /dev/urandom >"$work/files/blob$i"; done
  "$PINNACE" build --file "$work/files/blob1:/data/1" --file "$work/files/blob2:/data/2" \
    --file "$work/files/blob3:/data/3" --file /bin/true:/bin/true --entrypoint /bin/true \
    -t "oci:$LARGE:1" >&2
fi
IMAGE_BYTES=$(blob_bytes "$LARGE")

WORK="$BENCH_DIR/registry-work"
rm -rf "$WORK"; mkdir -p "$WORK"
# Top layer changed: the same image plus one new small layer on top.
date +%s%N >"$WORK/changed.txt"
"$PINNACE" build --from "oci:$LARGE:1" --file "$WORK/changed.txt:/etc/changed.txt" -t "oci:$WORK/top:1" >/dev/null

REG_PID=""
REG_DIR=""
start_registry() {
  REG_DIR=$(mktemp -d "$WORK/reg.XXXX")
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REG="127.0.0.1:$port"
  cat >"$REG_DIR/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG_DIR/storage
http:
  addr: $REG
  secret: bench
EOF
  docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && return; sleep 0.1; done
  die "registry did not start"
}
stop_registry() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  REG_PID=""
  rm -rf "$REG_DIR"
}
trap stop_registry EXIT

reg_read() { awk '/^rchar:/ { print $2 }' "/proc/$REG_PID/io"; }
stored() { blob_bytes "$REG_DIR/storage/docker/registry/v2" 2>/dev/null || echo 0; }

# measure NAME TOOL -- command...: appends "NAME TOOL seconds read_bytes stored_delta".
RAW="$WORK/raw.txt"
: >"$RAW"
measure() {
  local name=$1 tool=$2; shift 3
  sync
  local r0 s0 t
  r0=$(reg_read); s0=$(stored)
  if ! /usr/bin/time -f '%e' "$@" >/dev/null 2>"$WORK/err"; then
    cat "$WORK/err" >&2
    die "$name/$tool failed"
  fi
  t=$(tail -n1 "$WORK/err")
  echo "$name $tool $t $(( $(reg_read) - r0 )) $(( $(stored) - s0 ))" >>"$RAW"
  log "$name $tool: ${t}s"
}

for ROUND in $(seq "$ROUNDS"); do
  for tool in pinnace skopeo; do
    start_registry
    rm -rf "$WORK/cache-$ROUND" "$WORK/pull"
    dst="docker://$REG/bench/large:1"
    if [ $tool = pinnace ]; then
      measure cold-push $tool -- env XDG_CACHE_HOME="$WORK/cache-$ROUND" "$PINNACE" copy -q --dest-tls-verify=false "oci:$LARGE:1" "$dst"
      measure cold-pull $tool -- env XDG_CACHE_HOME="$WORK/cache-$ROUND" "$PINNACE" copy -q --src-tls-verify=false "$dst" "oci:$WORK/pull:1"
      measure re-push $tool -- env XDG_CACHE_HOME="$WORK/cache-$ROUND" "$PINNACE" copy -q --dest-tls-verify=false "oci:$LARGE:1" "$dst"
      measure top-layer-push $tool -- env XDG_CACHE_HOME="$WORK/cache-$ROUND" "$PINNACE" copy -q --dest-tls-verify=false "oci:$WORK/top:1" "docker://$REG/bench/large:2"
    else
      measure cold-push $tool -- skopeo copy -q --dest-tls-verify=false "oci:$LARGE:1" "$dst"
      measure cold-pull $tool -- skopeo copy -q --src-tls-verify=false "$dst" "oci:$WORK/pull:1"
      measure re-push $tool -- skopeo copy -q --dest-tls-verify=false "oci:$LARGE:1" "$dst"
      measure top-layer-push $tool -- skopeo copy -q --dest-tls-verify=false "oci:$WORK/top:1" "docker://$REG/bench/large:2"
    fi
    stop_registry
  done
done

cell() { awk -v n="$1" -v t="$2" -v c="$3" '$1 == n && $2 == t { print $c }' "$RAW" | median; }
mib() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
table() {
  echo "| operation | pinnace s | skopeo s | skopeo/pinnace | pinnace registry read | skopeo registry read | pinnace stored | skopeo stored |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for n in cold-push cold-pull re-push top-layer-push; do
    local pt st
    pt=$(cell $n pinnace 3); st=$(cell $n skopeo 3)
    printf '| %s | %s | %s | %sx | %s | %s | %s | %s |\n' "$n" "$pt" "$st" \
      "$(awk -v a="$st" -v b="$pt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')" \
      "$(mib "$(cell $n pinnace 4)")" "$(mib "$(cell $n skopeo 4)")" \
      "$(mib "$(cell $n pinnace 5)")" "$(mib "$(cell $n skopeo 5)")"
  done
}
TABLE=$(table)
echo "$TABLE"

if [ -z "${NO_RESULTS:-}" ]; then
  GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- pinnace 2>/dev/null || GIT_REV="$GIT_REV+dirty"
  {
    echo
    echo "## registry — bench/registry.sh, $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`ROUNDS=$ROUNDS bench/registry.sh\` (git $GIT_REV; $($PINNACE --version); skopeo $(skopeo --version | awk '{ print $3 }'));"
    echo "image: $LARGE, $(mib "$IMAGE_BYTES") of blobs; docker-registry (distribution 2.8) on 127.0.0.1, plain HTTP,"
    echo "a fresh registry per tool. \"registry read\" is the registry's rchar (request bytes plus file reads),"
    echo "\"stored\" what its blob store grew by; medians of $ROUNDS round(s); 2 shared cores."
    echo
    echo "$TABLE"
  } >>"$BENCH_ROOT/bench/RESULTS.md"
  log "appended the registry section to bench/RESULTS.md"
fi
