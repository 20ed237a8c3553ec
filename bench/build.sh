#!/usr/bin/env bash
# `pinnace build` against the Containerfile a user would write, side by side in one run.
# Every round runs both (alternating which goes first); wall time and peak RSS come from
# `/usr/bin/time -f '%e %M'`; the table shows medians. Replaces the "build" section of
# bench/RESULTS.md.
#
# Cases (each ends with the same artifact, a docker-archive file):
#   static-c   a static C program (gcc -static)
#   static-go  a static Go net/http program (CGO_ENABLED=0; it serves one request to itself)
#            pinnace build --binary X -t docker-archive:OUT
#            vs podman build (FROM scratch + COPY) && podman save --format docker-archive
#   dyn-c    a dynamic C program (libc + libm)
#            pinnace build vs podman build (FROM the debootstrap base + COPY) && podman save
#   curl     /usr/bin/curl (34 libraries, TLS)
#            pinnace build --binary /usr/bin/curl vs podman build (FROM the base +
#            RUN apt-get install curl ca-certificates, --network host) && podman save.
#            (FROM base + COPY /usr/bin/curl does not run at all: libcurl is not in a
#            minbase; the script shows the error once.)
#
#   ROUNDS=10              rounds per case (default 10)
#   CASES="static-c dyn-c" only these cases (default: all four)
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path       use this binary instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1           do not touch bench/RESULTS.md
#
# The base is localhost/pinnace-bench-base:1 (debootstrap --variant=minbase bookworm,
# podman import), made here if bench/make-large-image.sh has not made it yet.
# podman builds use --no-cache (a changed binary would miss the cache anyway) and their
# images are removed between rounds (untimed). Needs root (podman, debootstrap), go, gcc,
# and the Debian mirror for the curl case.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

ROUNDS="${ROUNDS:-10}"
CASES="${CASES:-static-c static-go dyn-c curl}"
[ "$(id -u)" = 0 ] || die "run as root (podman, debootstrap)"
for t in podman go gcc skopeo; do command -v "$t" >/dev/null || die "$t missing: run scripts/setup-test-tools.sh"; done
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"

# 1. pinnace, release build, copied aside so concurrent rebuilds cannot swap it mid-run.
bench_pinnace pinnace-build-bench
PINNACE_VERSION=$("$PINNACE" --version)
PODMAN_VERSION=$(podman --version | awk '{ print $3 }')
unset SOURCE_DATE_EPOCH

# 2. The Debian base (shared with make-large-image.sh).
if podman image exists "$BENCH_BASE_IMAGE"; then
  log "cached: $BENCH_BASE_IMAGE"
else
  command -v debootstrap >/dev/null || die "debootstrap missing"
  rootfs="$BENCH_DIR/rootfs.tmp"
  rm -rf "$rootfs"
  MIRROR="${BENCH_MIRROR:-$(host_debian_mirror)}"
  log "debootstrap --variant=minbase bookworm from $MIRROR (a few minutes)"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$BENCH_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$BENCH_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $BENCH_DIR/debootstrap.log)"; }
  grep -q " $rootfs/" /proc/mounts && die "debootstrap left mounts under $rootfs; unmount them and run again"
  tar -C "$rootfs" --numeric-owner -c . | podman import - "$BENCH_BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi
BASE_SIZE=$(podman image inspect --format '{{.Size}}' "$BENCH_BASE_IMAGE")

# 3. The programs.
W="$BENCH_DIR/build"
rm -rf "$W"; mkdir -p "$W/static-src" "$W/ctx-static-c" "$W/ctx-static-go" "$W/ctx-dyn-c" "$W/ctx-curl" "$W/ctx-curl-copy" "$W/out"
cat >"$W/static-src/main.go" <<'EOF'
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "static-go ok")
	}))
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
}
EOF
printf 'module example.com/static\n\ngo 1.19\n' >"$W/static-src/go.mod"
log "go build (CGO_ENABLED=0) and gcc"
(cd "$W/static-src" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE="$W/go-cache" GOPATH="$W/go-path" \
  go build -o "$W/ctx-static-go/server" .)
printf '#include <stdio.h>\nint main(void) { puts("static-c ok"); return 0; }\n' >"$W/hello.c"
gcc -static -O2 -o "$W/ctx-static-c/hello" "$W/hello.c"
cat >"$W/app.c" <<'EOF'
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    double x = argc > 1 ? strtod(argv[1], NULL) : 0.0;
    printf("dyn-c ok: cos(%g) = %.3f\n", x, cos(x));
    return 0;
}
EOF
gcc -O2 -o "$W/ctx-dyn-c/app" "$W/app.c" -lm
cp /usr/bin/curl "$W/ctx-curl-copy/curl"

cat >"$W/ctx-static-c/Containerfile" <<'EOF'
FROM scratch
COPY hello /hello
ENTRYPOINT ["/hello"]
EOF
cat >"$W/ctx-static-go/Containerfile" <<'EOF'
FROM scratch
COPY server /server
ENTRYPOINT ["/server"]
EOF
cat >"$W/ctx-dyn-c/Containerfile" <<EOF
FROM $BENCH_BASE_IMAGE
COPY app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
EOF
cat >"$W/ctx-curl/Containerfile" <<EOF
FROM $BENCH_BASE_IMAGE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends curl ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["curl"]
EOF
cat >"$W/ctx-curl-copy/Containerfile" <<EOF
FROM $BENCH_BASE_IMAGE
COPY curl /usr/bin/curl
ENTRYPOINT ["/usr/bin/curl"]
EOF

# case | pinnace --binary | podman build context | extra podman build flags | program arguments | expected output (grep -F)
ALL_CASES=(
  "static-c|$W/ctx-static-c/hello|$W/ctx-static-c|||static-c ok"
  "static-go|$W/ctx-static-go/server|$W/ctx-static-go|||static-go ok"
  "dyn-c|$W/ctx-dyn-c/app|$W/ctx-dyn-c||3.14159265|dyn-c ok: cos(3.14159) = -1.000"
  "curl|/usr/bin/curl|$W/ctx-curl|--network host|--version|Protocols: "
)

run_pinnace() { # BINARY OUT RAW
  rm -f "$2"; sync
  timed "$3" "$PINNACE" build -q --binary "$1" -t "docker-archive:$2:localhost/pinnace-bench-build:1"
  sync
}
run_podman() { # CTX FLAGS OUT RAW_BUILD RAW_SAVE
  local name=localhost/pinnace-bench-peer:1
  rm -f "$3"; podman rmi -f "$name" >/dev/null 2>&1 || true; sync
  # shellcheck disable=SC2086
  timed "$4" podman build -q --no-cache --pull=never $2 -t "$name" "$1"
  timed "$5" podman save -q --format docker-archive -o "$3" "$name"
  sync
}
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
ROWS=()
SIZE_ROWS=()
FAILS=()
for spec in "${ALL_CASES[@]}"; do
  IFS='|' read -r name bin ctx pflags args want <<<"$spec"
  grep -qw -- "$name" <<<"$CASES" || continue
  log "$name: $ROUNDS rounds"
  p_raw="$W/out/$name.pinnace"; b_raw="$W/out/$name.build"; s_raw="$W/out/$name.save"
  : >"$p_raw"; : >"$b_raw"; : >"$s_raw"
  p_out="$W/out/$name-pinnace.tar"; s_out="$W/out/$name-podman.tar"
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="pinnace podman"; else order="podman pinnace"; fi
    for tool in $order; do
      if [ "$tool" = pinnace ]; then run_pinnace "$bin" "$p_out" "$p_raw"
      else run_podman "$ctx" "$pflags" "$s_out" "$b_raw" "$s_raw"; fi
    done
    log "  round $r: pinnace $(tail -n1 "$p_raw") | podman build $(tail -n1 "$b_raw") + save $(tail -n1 "$s_raw")  (s KiB; load $(load1))"
  done

  # Both images run and print what the program prints; sizes as podman sees them.
  peer=localhost/pinnace-bench-peer:1
  # shellcheck disable=SC2086
  s_run=$(podman run --rm --network none "$peer" $args 2>&1 || true)
  s_img=$(podman image inspect --format '{{.Size}}' "$peer")
  podman rmi -f "$peer" >/dev/null
  podman rmi -f localhost/pinnace-bench-build:1 >/dev/null 2>&1 || true
  podman load -q -i "$p_out" >/dev/null
  # shellcheck disable=SC2086
  p_run=$(podman run --rm --network none localhost/pinnace-bench-build:1 $args 2>&1 || true)
  p_img=$(podman image inspect --format '{{.Size}}' localhost/pinnace-bench-build:1)
  podman rmi -f localhost/pinnace-bench-build:1 >/dev/null
  grep -qF -- "$want" <<<"$p_run" || FAILS+=("$name: the pinnace image printed: $(head -c 300 <<<"$p_run")")
  grep -qF -- "$want" <<<"$s_run" || FAILS+=("$name: the podman image printed: $(head -c 300 <<<"$s_run")")
  p_gz=$("$PINNACE" build --json --binary "$bin" -t "oci:$W/out/$name-oci:1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
  rm -rf "$W/out/$name-oci"
  p_tar=$(stat -c %s "$p_out"); s_tar=$(stat -c %s "$s_out")
  bin_bytes=$(stat -L -c %s "$bin")

  p_wall=$(cut -d' ' -f1 "$p_raw" | median)
  b_wall=$(cut -d' ' -f1 "$b_raw" | median)
  # One line per round: build wall, build RSS, save wall, save RSS.
  paste -d' ' <(cut -d' ' -f1,2 "$b_raw") <(cut -d' ' -f1,2 "$s_raw") >"$W/out/$name.podman"
  sv_wall=$(cut -d' ' -f1 "$s_raw" | median)
  t_wall=$(awk '{ print $1 + $3 }' "$W/out/$name.podman" | median)
  p_rss=$(cut -d' ' -f2 "$p_raw" | median)
  p_cpu=$(awk '{ print $3 + $4 }' "$p_raw" | median)
  s_cpu=$(paste -d' ' "$b_raw" "$s_raw" | awk '{ print $3 + $4 + $7 + $8 }' | median)
  s_rss=$(awk '{ print ($2 > $4) ? $2 : $4 }' "$W/out/$name.podman" | median)
  p_min=$(cut -d' ' -f1 "$p_raw" | sort -g | head -n1); p_max=$(cut -d' ' -f1 "$p_raw" | sort -g | tail -n1)
  ratio=$(awk -v s="$t_wall" -v p="$p_wall" 'BEGIN { if (p > 0) printf "%.1f", s / p; else print "inf" }')
  ratio_b=$(awk -v s="$b_wall" -v p="$p_wall" 'BEGIN { if (p > 0) printf "%.1f", s / p; else print "inf" }')
  size_ratio=$(awk -v s="$s_img" -v p="$p_img" 'BEGIN { printf "%.1f", s / p }')
  case $name in
    static-*)
      target="≥ 10x faster"
      met=$(awk -v r="$ratio" 'BEGIN { print (r >= 10) ? "yes" : "no" }') ;;
    *)
      target="image ≤ 1/10, faster"
      met=$(awk -v r="$ratio" -v z="$size_ratio" 'BEGIN { print (r > 1 && z >= 10) ? "yes" : "no" }') ;;
  esac
  ROWS+=("| $name | $p_wall ($p_min–$p_max) | $b_wall + $sv_wall → $t_wall | **${ratio}x** (${ratio_b}x build only) | $p_cpu | $s_cpu | $(kib_mib "$p_rss") | $(kib_mib "$s_rss") | $target | $met |")
  SIZE_ROWS+=("| $name | $(awk -v b="$bin_bytes" 'BEGIN { printf "%.2f", b / 1048576 }') | $(mib "$p_img") | $(mib "$p_gz") | $(mib "$p_tar") | $(mib "$s_img") | $(mib "$s_tar") | ${size_ratio}x |")
done

# FROM base + COPY /usr/bin/curl, once: what the naive Dockerfile gives.
COPY_NOTE=""
if grep -qw curl <<<"$CASES"; then
  podman build -q --pull=never -t localhost/pinnace-bench-copy:1 "$W/ctx-curl-copy" >/dev/null
  COPY_NOTE=$(podman run --rm --network none localhost/pinnace-bench-copy:1 --version 2>&1 | head -n1 || true)
  podman rmi -f localhost/pinnace-bench-copy:1 >/dev/null
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START ))

CMD="ROUNDS=$ROUNDS bench/build.sh"
[ "$CASES" != "static-c static-go dyn-c curl" ] && CMD="CASES=\"$CASES\" $CMD"
SECTION=$(cat <<EOF
<!-- build.sh:begin -->
## build — bench/build.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`$CMD\` (from the repository root, as root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $LOAD_AFTER after (${ELAPSED}s run)
- pinnace: $PINNACE_VERSION (git $GIT_REV, release profile); podman $PODMAN_VERSION (runc, overlay)
- Peers: \`podman build --no-cache\` of the Containerfile a user would write, then
  \`podman save --format docker-archive\` (pinnace writes a docker-archive directly).
  static-c, static-go: \`FROM scratch\` + \`COPY\`; dyn-c: \`FROM $BENCH_BASE_IMAGE\` (debootstrap
  --variant=minbase bookworm, $(mib "$BASE_SIZE") MiB) + \`COPY\`; curl: \`FROM\` that base +
  \`RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates\`
  (\`--network host\`, the Debian mirror over the network: the time includes downloads).
  \`FROM\` base + \`COPY /usr/bin/curl\` alone does not run: \`${COPY_NOTE:-not measured}\`.
- $ROUNDS rounds per case, both tools each round (alternating which goes first), outputs
  removed and \`sync\` between commands (untimed). Wall = median seconds; podman = build +
  save (median of each → median of the per-round sums); RSS = median peak RSS (for podman the
  larger of build and save) from \`/usr/bin/time -f '%e %M %U %S'\`; CPU = median user +
  system seconds (podman: build + save). The machine is shared (see the load average):
  wall times of sub-0.1 s commands are dominated by scheduling, CPU times are steadier.
- Every image was loaded into podman and run; the output was checked.

| case | pinnace s (min–max) | podman build + save s | podman/pinnace | pinnace CPU s | podman CPU s | pinnace RSS MiB | podman RSS MiB | target | met |
|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")

Sizes (MiB): the binary; the image as \`podman image inspect\` reports it after loading
each archive; pinnace's compressed size (gzip layers + config, what a registry push
sends); the docker-archive files (uncompressed layers); the ratio of podman sizes.

| case | binary | pinnace image | pinnace gzip | pinnace archive | podman image | podman archive | podman/pinnace image |
|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${SIZE_ROWS[@]}")

For comparison, the seed articles' figures: a \`FROM scratch\` Go net/http image is
about 7 MB, a distroless/static image about 2 MB (its base alone).
EOF
)
finish_section build.sh "Run check failures:" "some images did not run as expected (see above)"
