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
#   curl floors    the same blobs sent by curl (POST, one streamed PATCH, PUT ?digest=; all
#                  blobs at once), and fetched by curl into files (all at once, then fsync),
#                  with no verifying or format logic: what this registry can ingest and serve
#                  here, the floors any client pushes and pulls against; the pull floor
#                  twice, through the page cache and with direct I/O (`dd oflag=direct`)
#
# Both tools run with their defaults: 3 blobs at once (pinnace's --jobs, skopeo's own);
# pinnace streams each large blob in one PATCH.
#
# Bytes sent are what the registry process read (`rchar` of /proc/PID/io, sockets and
# files; the registry hashes uploads while writing them, so this is essentially request
# bytes) and what its blob store grew by. Wall time and peak RSS from `/usr/bin/time`.
# Prints a markdown table and writes it as the registry.sh section of bench/RESULTS.md.
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

# measure NAME TOOL -- command...: appends "NAME TOOL seconds read_bytes stored_delta rss_kib".
RAW="$WORK/raw.txt"
: >"$RAW"
measure() {
  local name=$1 tool=$2; shift 3
  sync
  local r0 s0 t
  r0=$(reg_read); s0=$(stored)
  if ! /usr/bin/time -f '%e %M' "$@" >/dev/null 2>"$WORK/err"; then
    cat "$WORK/err" >&2
    die "$name/$tool failed"
  fi
  local rss
  read -r t rss < <(tail -n1 "$WORK/err")
  echo "$name $tool $t $(( $(reg_read) - r0 )) $(( $(stored) - s0 )) $rss" >>"$RAW"
  log "$name $tool: ${t}s, ${rss} KiB"
}

# curl_push REPO: every blob of the layout at $LARGE, all at once, as curl sends them.
curl_push() {
  local repo=$1 pids=() f d
  for f in "$LARGE"/blobs/sha256/*; do
    d=sha256:$(basename "$f")
    (
      loc=$(curl -sf -D - -o /dev/null -X POST "http://$REG/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
      case $loc in http*) ;; *) loc="http://$REG$loc" ;; esac
      loc=$(curl -sf -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -T "$f" "$loc" \
        | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
      case $loc in http*) ;; *) loc="http://$REG$loc" ;; esac
      case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
      curl -sf -o /dev/null -X PUT "$loc${sep}digest=$d"
    ) &
    pids+=($!)
  done
  local rc=0 p
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
export -f curl_push

# curl_pull REPO DIR: every layer blob, all at once, into DIR; then fsync.
curl_pull() {
  local repo=$1 dir=$2 pids=() f p rc=0
  mkdir -p "$dir"
  for f in $(find "$LARGE/blobs/sha256" -type f -size +64k); do
    curl -sf -o "$dir/${f##*/}" "http://$REG/v2/$repo/blobs/sha256:${f##*/}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  sync -f "$dir"/* && return $rc
}
export -f curl_pull

# curl_pull_direct REPO DIR: the same, each blob piped into dd writing with O_DIRECT (the
# short last block through the page cache) and fsyncing: what pinnace's layout sink does
# to the disk, without the verifying.
curl_pull_direct() {
  local repo=$1 dir=$2 pids=() f p rc=0
  mkdir -p "$dir"
  for f in $(find "$LARGE/blobs/sha256" -type f -size +64k); do
    ( set -o pipefail
      curl -sf "http://$REG/v2/$repo/blobs/sha256:${f##*/}" \
        | dd of="$dir/${f##*/}" bs=4M iflag=fullblock oflag=direct conv=fsync status=none ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
export -f curl_pull_direct

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
  start_registry
  measure cold-push curl -- env LARGE="$LARGE" REG="$REG" bash -c 'curl_push bench/floor'
  rm -rf "$WORK/curl-pull"
  measure cold-pull curl -- env LARGE="$LARGE" REG="$REG" bash -c "curl_pull bench/floor $WORK/curl-pull"
  rm -rf "$WORK/curl-pull"
  measure cold-pull curl-direct -- env LARGE="$LARGE" REG="$REG" bash -c "curl_pull_direct bench/floor $WORK/curl-pull"
  stop_registry
done

cell() { awk -v n="$1" -v t="$2" -v c="$3" '$1 == n && $2 == t { print $c }' "$RAW" | median; }
mib() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
kib2mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
table() {
  echo "| operation | pinnace s | skopeo s | skopeo/pinnace | pinnace RSS MiB | skopeo RSS MiB | pinnace registry read | skopeo registry read | pinnace stored | skopeo stored |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in cold-push cold-pull re-push top-layer-push; do
    local pt st
    pt=$(cell $n pinnace 3); st=$(cell $n skopeo 3)
    printf '| %s | %s | %s | **%sx** | %s | %s | %s | %s | %s | %s |\n' "$n" "$pt" "$st" "$(ratio "$st" "$pt")" \
      "$(kib2mib "$(cell $n pinnace 6)")" "$(kib2mib "$(cell $n skopeo 6)")" \
      "$(mib "$(cell $n pinnace 4)")" "$(mib "$(cell $n skopeo 4)")" \
      "$(mib "$(cell $n pinnace 5)")" "$(mib "$(cell $n skopeo 5)")"
  done
}
TABLE=$(table)
floor_line() {
  local op=$1 how=$2 tool=${3:-curl} f p s
  f=$(cell "$op" "$tool" 3); p=$(cell "$op" pinnace 3); s=$(cell "$op" skopeo 3)
  echo "- $op floor, curl ($how): **$f s**; pinnace takes $(ratio "$p" "$f")x the floor, skopeo $(ratio "$s" "$f")x: a client that moves the bytes this way cannot beat skopeo by more than $(ratio "$s" "$f")x on this registry and machine."
}
FLOOR_LINE="$(floor_line cold-push "the same blobs, all at once, one streamed PATCH each, nothing read or verified")
$(floor_line cold-pull "the layer blobs, all at once, into files, then fsync; nothing verified")
$(floor_line cold-pull "the layer blobs, all at once, each piped into \`dd oflag=direct conv=fsync\`; nothing verified" curl-direct)"
echo "$TABLE"
echo "$FLOOR_LINE"

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
LARGE_LAYERS=$(find "$LARGE/blobs/sha256" -type f -size +1M | wc -l)
SECTION=$(cat <<EOF
<!-- registry.sh:begin -->
## registry — bench/registry.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`ROUNDS=$ROUNDS bench/registry.sh\` (git $GIT_REV; $($PINNACE --version); skopeo $(skopeo --version | awk '{ print $3 }'))
- Image: $LARGE, $(mib "$IMAGE_BYTES") of blobs ($LARGE_LAYERS large layers); docker-registry (distribution 2.8) on 127.0.0.1, plain HTTP, a fresh registry per tool and round
- Machine: nproc $(nproc), shared with other work (load average $LOAD at the end); medians of $ROUNDS round(s)
- Both tools with their defaults (3 blobs at once). "registry read" is the registry's rchar (request bytes plus
  file reads), "stored" what its blob store grew by, RSS the client's peak.

$TABLE

$FLOOR_LINE

Where the time goes (looked at when this section was last changed by hand; see bench/RESULTS.md's history):
- Pull (2026-11-26): the 1 MiB write(2) calls that took 3 to 4.5 ms were not waiting on pages under
  writeback (sync_file_range): they were filling fresh page-cache pages. This VM hands freed guest
  pages back to the host (virtio-balloon free page reporting), so a fresh page is a host fault: a
  first touch of anonymous memory runs at ~1 GB/s here against ~15 GB/s on re-touch, and perf of a
  pull put copy_folio_from_iter_atomic first (24 % of samples). 256 MiB written with dd oflag=direct
  took 0.64 to 0.93 s, buffered + fsync 1.12 to 1.39 s. pinnace now writes layout blobs with O_DIRECT
  from one reused 4 MiB aligned buffer that the verifying read-ahead fills directly (blob::DirectFile;
  the tail shorter than a block through the page cache; fsync before the rename as before). A pull's
  system time went from 0.20-0.87 s to 0.12-0.20 s in back-to-back runs; strace shows both writer threads in
  direct writes ~90 % of the time (about 25 ms per 4 MiB each), then the fsync at commit (0.18 to
  0.32 s: a journal commit that waits for other writers on this shared disk). So a pull is bound by
  the disk; hashing was already on the read-ahead thread, and 1 MiB ureq buffers cut recvfrom calls
  from 1,993 to 269. pinnace is under both pull floors: they verify nothing, but each of their
  streams waits for its own writes (curl writes, then syncs; dd reads a block, then writes it), while
  pinnace downloads and verifies during the disk writes. Peak RSS grew by the 4 MiB
  buffer per blob in flight and the 1 MiB ureq buffers.
- Push: the client is not the bound. distribution 2.8 hashes and writes every byte as it arrives;
  pinnace takes about the curl floor (1.04x to 1.11x). Its margin over skopeo is skopeo's own cost:
  skopeo used ~1.4 s of CPU for a push where pinnace used ~0.5 s, which counts when the 2 cores are
  shared. This run was at load average ~8 (other builds), where that gives 1.56x; at load ~4 earlier
  the same session measured 1.28x. On a quiet machine >= 1.5x holds only while skopeo is >= 1.5x
  the floor.
<!-- registry.sh:end -->
EOF
)
printf '%s\n' "$SECTION" >"$WORK/section.md"
write_section registry.sh
