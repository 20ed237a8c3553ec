#!/usr/bin/env bash
# Builds the benchmark's large image without any registry pull, and saves it to $BENCH_DIR
# (default /var/tmp/pinnace-bench) in the forms the benchmarks read:
#
#   localhost/pinnace-bench-base:1   debootstrap --variant=minbase bookworm, podman import
#   localhost/pinnace-bench-large:1  base + openjdk-17-jdk-headless (podman build --network host)
#                                    (the JDK, not just the JRE: the JRE alone gives 435 MB,
#                                    below the >= 500 MB the benchmark asks for)
#   $BENCH_DIR/large-docker.tar      docker-archive (podman save --format docker-archive)
#   $BENCH_DIR/large-oci/            OCI layout, gzip layers, tag "1" (skopeo copy)
#   $BENCH_DIR/large-oci.tar         oci-archive of the same manifest (skopeo copy, blobs kept)
#   $BENCH_DIR/base-docker.tar       docker-archive of the base (smaller; RSS-flatness check)
#
# Idempotent and cached: every step is skipped when its output already exists; outputs are
# written under a temporary name and renamed, so an interrupted run never leaves a partial
# file that a later run would take for a finished one. Needs root (debootstrap, podman).
# Set BENCH_MIRROR to override the Debian mirror (default: the host's apt mirror).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and podman import need it)"
for t in debootstrap podman skopeo; do
  command -v "$t" >/dev/null || die "$t missing: run scripts/setup-test-tools.sh"
done
grep -q '# pinnace-setup' /etc/containers/containers.conf 2>/dev/null \
  || log "warning: /etc/containers/containers.conf not set up; run scripts/setup-test-tools.sh if podman fails"

mkdir -p "$BENCH_DIR"
MIRROR="${BENCH_MIRROR:-$(host_debian_mirror)}"

# 1. Base image from a debootstrap rootfs.
if podman image exists "$BENCH_BASE_IMAGE"; then
  log "cached: $BENCH_BASE_IMAGE"
else
  rootfs="$BENCH_DIR/rootfs.tmp"
  rm -rf "$rootfs"
  log "debootstrap --variant=minbase bookworm from $MIRROR (a few minutes)"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$BENCH_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$BENCH_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $BENCH_DIR/debootstrap.log)"; }
  if grep -q " $rootfs/" /proc/mounts; then
    die "debootstrap left mounts under $rootfs; unmount them and run again"
  fi
  log "podman import -> $BENCH_BASE_IMAGE"
  tar -C "$rootfs" --numeric-owner -c . | podman import - "$BENCH_BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# 2. Large image: base + a JDK, installed from the same mirror over the host network.
if podman image exists "$BENCH_LARGE_IMAGE"; then
  log "cached: $BENCH_LARGE_IMAGE"
else
  ctx=$(mktemp -d "$BENCH_DIR/ctx.XXXXXX")
  cat >"$ctx/Containerfile" <<EOF
FROM $BENCH_BASE_IMAGE
ARG MIRROR=$MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "\$MIRROR" "\$MIRROR" > /etc/apt/sources.list \\
 && apt-get update \\
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
CMD ["java", "-version"]
EOF
  log "podman build --network host -> $BENCH_LARGE_IMAGE (a few minutes)"
  podman build --network host -t "$BENCH_LARGE_IMAGE" -f "$ctx/Containerfile" "$ctx" \
    >"$BENCH_DIR/build.log" 2>&1 \
    || { tail -n 30 "$BENCH_DIR/build.log" >&2; die "podman build failed (log: $BENCH_DIR/build.log)"; }
  rm -rf "$ctx"
fi

# 3. The saved forms.
save_docker_archive() { # IMAGE FILE
  if [ -s "$2" ]; then log "cached: $2"; return; fi
  log "podman save --format docker-archive $1 -> $2"
  rm -f "$2.tmp"
  podman save --format docker-archive -o "$2.tmp" "$1"
  mv "$2.tmp" "$2"
}
save_docker_archive "$BENCH_LARGE_IMAGE" "$BENCH_LARGE_DOCKER"
save_docker_archive "$BENCH_BASE_IMAGE" "$BENCH_BASE_DOCKER"

if [ -f "$BENCH_LARGE_OCI/index.json" ]; then
  log "cached: $BENCH_LARGE_OCI"
else
  log "skopeo copy containers-storage:$BENCH_LARGE_IMAGE -> oci:$BENCH_LARGE_OCI:1 (gzip)"
  rm -rf "$BENCH_LARGE_OCI.tmp"
  skopeo copy --quiet --dest-compress --dest-compress-format gzip \
    "containers-storage:$BENCH_LARGE_IMAGE" "oci:$BENCH_LARGE_OCI.tmp:1"
  rm -rf "$BENCH_LARGE_OCI"
  mv "$BENCH_LARGE_OCI.tmp" "$BENCH_LARGE_OCI"
fi

# The OCI layout's layers must be gzip: by media type and by magic bytes.
check_gzip_layout() {
  local dir=$1 manifest layer n=0
  manifest=$(skopeo inspect --raw "oci:$dir:1")
  while read -r mt digest; do
    [ "$mt" = "application/vnd.oci.image.layer.v1.tar+gzip" ] \
      || die "$dir: layer $digest has media type $mt, expected gzip"
    layer="$dir/blobs/${digest/://}"
    [ "$(head -c2 "$layer" | od -An -tx1 | tr -d ' \n')" = "1f8b" ] \
      || die "$dir: layer $digest is not gzip by its magic bytes"
    n=$((n + 1))
  done < <(printf '%s' "$manifest" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]:
    print(l["mediaType"], l["digest"])')
  log "$dir: $n gzip layers"
}
check_gzip_layout "$BENCH_LARGE_OCI"

if [ -s "$BENCH_LARGE_OCI_ARCHIVE" ]; then
  log "cached: $BENCH_LARGE_OCI_ARCHIVE"
else
  log "skopeo copy oci:$BENCH_LARGE_OCI:1 -> oci-archive:$BENCH_LARGE_OCI_ARCHIVE:1"
  rm -f "$BENCH_LARGE_OCI_ARCHIVE.tmp"
  skopeo copy --quiet "oci:$BENCH_LARGE_OCI:1" "oci-archive:$BENCH_LARGE_OCI_ARCHIVE.tmp:1"
  a=$(skopeo inspect --raw "oci:$BENCH_LARGE_OCI:1" | sha256sum | cut -d' ' -f1)
  b=$(skopeo inspect --raw "oci-archive:$BENCH_LARGE_OCI_ARCHIVE.tmp:1" | sha256sum | cut -d' ' -f1)
  [ "$a" = "$b" ] || die "oci-archive manifest differs from the layout's (layers were recompressed?)"
  mv "$BENCH_LARGE_OCI_ARCHIVE.tmp" "$BENCH_LARGE_OCI_ARCHIVE"
fi

# 4. Sizes. Uncompressed = the sum of the layer tars (what docker-archive stores).
layer_tar_bytes() { # docker-archive FILE -> sum of the layer members' sizes
  python3 - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = json.load(t.extractfile("manifest.json"))
    sizes = {i.name: i.size for i in t.getmembers()}
    print(sum(sizes[l] for l in m[0]["Layers"]))
PY
}
large_raw=$(layer_tar_bytes "$BENCH_LARGE_DOCKER")
base_raw=$(layer_tar_bytes "$BENCH_BASE_DOCKER")
gz=$(skopeo inspect --raw "oci:$BENCH_LARGE_OCI:1" \
  | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
echo "BENCH_IMAGE_BYTES=$large_raw"
echo "BENCH_BASE_BYTES=$base_raw"
echo "BENCH_IMAGE_GZIP_BYTES=$gz"
log "$BENCH_LARGE_IMAGE: $(mib "$large_raw") MiB uncompressed ($(mib "$gz") MiB gzip); base $(mib "$base_raw") MiB"
[ "$large_raw" -ge 500000000 ] || log "warning: image is below the 500 MB target"
