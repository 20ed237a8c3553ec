#!/usr/bin/env bash
# pinnace's main job, end to end: build pinnace, package the jibber service with
# `pinnace build --cargo jibber`, and, when podman is available, load it, run it, fetch a
# verse and compare it with the seed lab's image ladder.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
calc() { awk "BEGIN { print $* }"; }

if [ -n "${PINNACE:-}" ]; then
  pinnace=$PINNACE # the test suite passes the binary it built
else
  echo "==> building pinnace (release)"
  cargo build --release -p pinnace --quiet
  pinnace=$PWD/target/release/pinnace
fi
echo "    $(du -h "$pinnace" | cut -f1) $pinnace"

echo "==> pinnace build --cargo jibber -t oci-archive:$out/jibber.tar -t oci:$out/jibber:latest"
start=$(date +%s.%N)
"$pinnace" build --cargo jibber -t "oci-archive:$out/jibber.tar" -t "oci:$out/jibber:latest" --json >"$out/build.json"
end=$(date +%s.%N)
read -r digest size usize layers < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print(r["digest"], r["size"], r["uncompressed_size"], len(r["layers"]))' "$out/build.json")
printf '    %s, %s layers, %.0f KB compressed, %.0f KB uncompressed, built in %.1f s (cargo included)\n' \
  "$digest" "$layers" "$(calc "$size/1000")" "$(calc "$usize/1000")" "$(calc "$end-$start")"

if ! command -v podman >/dev/null 2>&1; then
  cat <<MSG
==> podman is not installed, so the image was built but not run. To run it:
    podman load -i $out/jibber.tar   (or: docker load after pinnace copy oci-archive:$out/jibber.tar docker-daemon:jibber:latest)
    podman run --rm -p 8080:8080 localhost/jibber:latest
    curl http://127.0.0.1:8080/jibber
MSG
  exit 0
fi

name=localhost/pinnace-demo-jibber:latest
echo "==> pinnace copy oci-archive:$out/jibber.tar containers-storage:$name"
"$pinnace" copy -q "oci-archive:$out/jibber.tar" "containers-storage:$name"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cname=pinnace-demo-$$
cleanup() { podman rm -f "$cname" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "==> podman run -p 127.0.0.1:$port:8080 $name"
t0=$(date +%s.%N)
podman run -d --name "$cname" -p "127.0.0.1:$port:8080" "$name" >/dev/null
verse=""
for _ in $(seq 1 200); do
  if verse=$(curl -sf --max-time 1 "http://127.0.0.1:$port/jibber?seed=42"); then break; fi
  sleep 0.02
done
t1=$(date +%s.%N)
[ -n "$verse" ] || { echo "jibber did not answer; its log:"; podman logs "$cname"; exit 1; }
echo "$verse" | sed 's/^/    /'
started=$(podman logs "$cname" 2>&1 | sed -n 's/.*Started jibber in \([0-9.]*\) seconds.*/\1/p' | head -1)
run_to_http=$(calc "$t1-$t0")
podman stop -t 5 "$cname" >/dev/null
code=$(podman inspect "$cname" --format '{{.State.ExitCode}}')

printf '\n%-38s %12s %10s %14s\n' "image" "size" "layers" "start-up"
printf '%-38s %12s %10s %14s\n' "seed lab: Spring on a JDK" "569 MB" "-" "3.9 s"
printf '%-38s %12s %10s %14s\n' "seed lab: GraalVM native image" "171 MB" "-" "0.074 s"
printf '%-38s %12s %10s %14s\n' "seed lab: native image on distroless" "82 MB" "-" "-"
printf '%-38s %9.2f MB %10s %12s s\n' "pinnace build --cargo jibber" "$(calc "$usize/1000000")" "$layers" "$started"
printf '\n(size is uncompressed; compressed: %.0f KB. podman run -> first HTTP answer: %.2f s, most of it podman. SIGTERM -> exit %s)\n' \
  "$(calc "$size/1000")" "$run_to_http" "$code"
