#!/usr/bin/env bash
# `pinnace doctor` against `pinnace inspect` on the same image, side by side in one run:
# wall time, peak RSS and CPU time from `/usr/bin/time -f '%e %M %U %S'`, median of ROUNDS,
# and the ratio doctor / inspect. The issue's target: doctor no slower than inspect + 20 %
# (both stream every layer once; doctor parses ELF files only for what matters).
#
# The image: the >= 500 MB image of bench/make-large-image.sh (debootstrap bookworm
# minbase + openjdk-17-jdk-headless, CMD java -version) when it exists in $BENCH_DIR, as
# docker-archive (uncompressed layers) and as OCI layout (gzip layers); otherwise one
# generated here from the host's /usr/bin, /usr/lib/x86_64-linux-gnu and /lib64 (CMD
# /usr/bin/curl), with a layer that deletes a 64 MB file.
#
#   ROUNDS=3               rounds (default 3)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md
#   BENCH_BOOST=-10        autogroup nice for the run, as root (0 to disable): on a shared
#                          machine the scheduler gives every session an equal CPU share, so
#                          the script runs in a session of its own with a raised weight,
#                          which both commands inherit alike (as bench/copy.sh does)
#
# Appends (or replaces) the "doctor.sh" section of bench/RESULTS.md; other sections are
# left as they are.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
ROUNDS="${ROUNDS:-3}"
BENCH_BOOST="${BENCH_BOOST:--10}"
if [ "$BENCH_BOOST" != 0 ] && [ "$(id -u)" = 0 ] && [ -z "${BENCH_IN_SESSION:-}" ] && command -v setsid >/dev/null; then
  BENCH_IN_SESSION=1 exec setsid --wait "$BENCH_ROOT/bench/doctor.sh" "$@"
fi
BOOSTED="no"
if [ -n "${BENCH_IN_SESSION:-}" ] && [ "$BENCH_BOOST" != 0 ] && [ -w /proc/$$/autogroup ]; then
  echo "$BENCH_BOOST" >/proc/$$/autogroup 2>/dev/null && BOOSTED="autogroup nice $BENCH_BOOST"
fi
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"
mkdir -p "$BENCH_DIR"

bench_pinnace pinnace-doctor-bench

REFS=()
if [ -s "$BENCH_LARGE_DOCKER" ]; then
  REFS+=("docker-archive:$BENCH_LARGE_DOCKER")
  [ -f "$BENCH_LARGE_OCI/index.json" ] && REFS+=("oci:$BENCH_LARGE_OCI:1")
  IMAGE_DESC="the large image of bench/make-large-image.sh (debootstrap bookworm minbase + openjdk-17-jdk-headless, CMD java -version)"
else
  GEN="$BENCH_DIR/doctor-generated"
  if [ ! -f "$GEN/index.json" ]; then
    log "generating an image from the host's /usr/bin, /usr/lib/x86_64-linux-gnu and /lib64"
    rm -rf "$GEN.tmp"
    python3 - "$GEN.tmp" <<'PY'
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256")
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d
def layer(fill):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        fill(t)
    return buf.getvalue()
def host(t):
    for top in ["/usr/bin", "/usr/lib/x86_64-linux-gnu", "/lib64", "/etc/ssl/certs/ca-certificates.crt"]:
        if os.path.exists(top):
            t.add(top, arcname=top.lstrip("/"), recursive=True)
def big(t):
    i = tarfile.TarInfo("tmp/big.bin"); data = os.urandom(64 << 20); i.size = len(data)
    t.addfile(i, io.BytesIO(data))
def delete(t):
    i = tarfile.TarInfo("tmp/.wh.big.bin"); i.size = 0
    t.addfile(i, io.BytesIO(b""))
layers = [layer(host), layer(big), layer(delete)]
diff_ids = [put(l) for l in layers]
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/usr/bin/curl"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(l)}
               for l, d in zip(layers, diff_ids)]}).encode()
md = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1"}}]},
    open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
    mv "$GEN.tmp" "$GEN"
  fi
  REFS+=("oci:$GEN:1")
  IMAGE_DESC="an image generated from the host's /usr/bin, /usr/lib/x86_64-linux-gnu and /lib64 (CMD /usr/bin/curl), plus a layer deleting a 64 MB file"
fi

# One run: appends "WALL RSS_KB USER SYS" to $1. doctor exits 1 when it finds errors:
# that is a result, not a failure of the run.
measure() {
  local out=$1; shift
  local tf; tf=$(mktemp)
  local rc=0
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >/dev/null 2>"$tf.err" || rc=$?
  if [ "$rc" -gt 1 ] || { [ "$rc" = 1 ] && [ "$2" != doctor ]; }; then
    cat "$tf.err" >&2; rm -f "$tf" "$tf.err"; die "command failed ($rc): $*"
  fi
  tail -n1 "$tf" >>"$out"
  rm -f "$tf" "$tf.err"
}
col() { awk -v c="$2" '{ print $c }' "$1" | median; }
cpu() { awk '{ printf "%.2f\n", $3 + $4 }' "$1" | median; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=""
SUMMARY=""
for ref in "${REFS[@]}"; do
  ins=$(mktemp); doc=$(mktemp)
  log "$ref: reading it once (untimed) so both commands start with a warm page cache"
  "$PINNACE" inspect --json "$ref" >/dev/null
  for r in $(seq "$ROUNDS"); do
    # Alternate which command goes first.
    if [ $((r % 2)) = 1 ]; then
      measure "$ins" "$PINNACE" inspect --json "$ref"; measure "$doc" "$PINNACE" doctor --json "$ref"
    else
      measure "$doc" "$PINNACE" doctor --json "$ref"; measure "$ins" "$PINNACE" inspect --json "$ref"
    fi
  done
  iw=$(col "$ins" 1); dw=$(col "$doc" 1)
  im=$(col "$ins" 2); dm=$(col "$doc" 2)
  ratio=$(awk -v d="$dw" -v i="$iw" 'BEGIN { printf "%.2f", (i > 0) ? d / i : 0 }')
  met=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.2) ? "yes" : "no" }')
  findings=$("$PINNACE" doctor --json "$ref" | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d["summary"]; t = d["stats"]
ids = sorted({f["id"] for f in d["findings"]})
print("%d errors, %d warnings, %d info (%s); %d ELF files kept (%.1f MiB of headers and tables), %d layers re-read"
      % (s["errors"], s["warnings"], s["infos"], ", ".join(ids), t["elf_files"], t["kept_bytes"] / 1048576, t["layers_reread"]))' || true)
  kind=${ref%%:*}
  ROWS+="| $kind | $iw s ($(cpu "$ins") s CPU) | $dw s ($(cpu "$doc") s CPU) | **${ratio}x** | $(mib $((im * 1024))) | $(mib $((dm * 1024))) | $met |"$'\n'
  SUMMARY+="- $kind: $findings"$'\n'
  printf '%-16s inspect %6.2f s %7.1f MiB | doctor %6.2f s %7.1f MiB | doctor/inspect %sx (target <= 1.2: %s)\n' \
    "$kind" "$iw" "$(echo "$im / 1024" | bc -l)" "$dw" "$(echo "$dm / 1024" | bc -l)" "$ratio" "$met" >&2
  rm -f "$ins" "$doc"
done

SECTION="<!-- doctor.sh:begin -->
## doctor — bench/doctor.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`ROUNDS=$ROUNDS bench/doctor.sh\` (from the repository root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after
- Scheduling boost: $BOOSTED (see the header of bench/doctor.sh)
- pinnace: $("$PINNACE" --version) (git $GIT_REV, release profile)
- Image: $IMAGE_DESC
- Both commands with \`--json\`, output discarded; median of $ROUNDS rounds, alternating which goes first;
  the source read once before (untimed). Target (issue 7): doctor <= inspect + 20 %.

| source | inspect wall | doctor wall | doctor/inspect | inspect RSS MiB | doctor RSS MiB | met |
|---|---|---|---|---|---|---|
${ROWS}
What doctor found:
${SUMMARY}<!-- doctor.sh:end -->"

printf '%s\n' "$SECTION"
write_section doctor.sh
