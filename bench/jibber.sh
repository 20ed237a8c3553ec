#!/usr/bin/env bash
# jibber (Rust, std-only HTTP, packaged by `pinnace build --cargo jibber`) against its Go
# net/http equivalent (bench/go-jibber) packaged on scratch the way seed 001 does it,
# side by side in one run. Replaces the "jibber" section of bench/RESULTS.md.
#
#   image size   pinnace's image vs `podman build` of FROM scratch + COPY (CGO_ENABLED=0,
#                -ldflags="-s -w"): uncompressed (sum of layer tars, from `podman save
#                --format docker-archive`), compressed (gzip layers + config after
#                `pinnace copy docker-archive:… oci:…`, what a registry push sends),
#                `podman image inspect` Size; next to the seed lab's figures.
#   start-up     (a) exec -> listening socket of the bare binaries: a C harness
#                posix_spawn()s the binary and connect()s to 127.0.0.1:PORT every 0.2 ms
#                until it succeeds (a static C program that only listen()s is the floor);
#                run as is and again under SCHED_FIFO (chrt -f 10);
#                (b) `podman run -d -p …` -> first 200 from GET /jibber?seed=42 (polled
#                every 1 ms); every container is removed. Median of RUNS runs, the
#                programs interleaved, a fresh port each run.
#   RSS          VmRSS / VmHWM of the bare binary at idle and after 1,000 sequential
#                GET /jibber (a new connection each, 5 s timeout per request); median of 3.
#   throughput   wrk -t2 -c16 -d${WRK_SECONDS}s --timeout 2s on 127.0.0.1 against the bare
#                binaries, /jibber and /healthz; median of 3 rounds (alternating order).
#   check        the two services answer the same requests with the same status, and
#                GET /jibber?seed=N with byte-identical verse; 1,001 requests on one
#                kept-alive connection (reported, not fatal).
#
#   RUNS=30           start-up runs per program (>= 20)
#   WRK_SECONDS=5     wrk duration
#   BENCH_DIR=/var/tmp/pinnace-bench
#   PINNACE_BIN=path  use this pinnace instead of `cargo build --release -p pinnace`
#   NO_RESULTS=1      do not touch bench/RESULTS.md
#   WAIT_LOAD=1.5     before each timed part, wait (at most 15 min) until the 1-minute load
#                     average is at most this (the machine is shared; noisy otherwise)
#   STACKS=1          also build jibber's chain behind tiny_http 0.12 and behind hyper 1 +
#                     tokio (current-thread runtime), minimal servers (no limits, no graceful
#                     shutdown), same release profile and static linking, and report their
#                     binary and image sizes and exec -> listening (fetches crates from
#                     crates.io; cached in $BENCH_DIR/stacks-target)
#
# Needs root (podman, chrt), podman, go, gcc, python3, curl, chrt, and wrk (installed here with
# apt-get when missing: BENCH_APT_PACKAGES below).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

RUNS="${RUNS:-30}"
WRK_SECONDS="${WRK_SECONDS:-5}"
[ "$RUNS" -ge 20 ] || die "RUNS must be at least 20"
[ "$(id -u)" = 0 ] || die "run as root (podman)"
# Bench-only tools (not part of scripts/setup-test-tools.sh).
BENCH_APT_PACKAGES="wrk"
if ! command -v wrk >/dev/null; then
  log "apt-get install -y $BENCH_APT_PACKAGES"
  DEBIAN_FRONTEND=noninteractive apt-get install -y $BENCH_APT_PACKAGES >&2 \
    || die "could not install $BENCH_APT_PACKAGES"
fi
for t in podman go gcc python3 curl wrk chrt; do command -v "$t" >/dev/null || die "$t missing: run scripts/setup-test-tools.sh"; done

W="$BENCH_DIR/jibber"
rm -rf "$W"; mkdir -p "$W/go-src" "$W/go-ctx" "$W/bin"
PREFIX="pinnace-bench-jibber-$$"
JIMG=localhost/pinnace-bench-jibber:latest
GIMG=localhost/pinnace-bench-go-jibber:latest
SERVER_PID=""  # the bare server wrk is running against, if any
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  podman ps -aq --filter "name=^$PREFIX-" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  podman rmi -f "$JIMG" "$GIMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)

# 1. pinnace (copied aside so concurrent rebuilds cannot swap it mid-run).
bench_pinnace pinnace-jibber-bench
PINNACE_VERSION=$("$PINNACE" --version)
GIT_REV=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$BENCH_ROOT" diff --quiet HEAD -- pinnace jibber 2>/dev/null || GIT_REV="$GIT_REV+dirty"
PODMAN_VERSION=$(podman --version | awk '{ print $3 }')
GO_VERSION=$(go env GOVERSION)
RUNTIME=$(podman info --format '{{.Host.OCIRuntime.Name}}, {{.Host.NetworkBackend}}, {{.Store.GraphDriverName}}')
unset SOURCE_DATE_EPOCH

# 2. The two images.
log "pinnace build --cargo jibber"
"$PINNACE" build --cargo jibber -t "oci-archive:$W/jibber-oci.tar" -t "oci:$W/jibber-oci:latest" --json >"$W/build.json"
"$PINNACE" copy -q "oci-archive:$W/jibber-oci.tar" "containers-storage:$JIMG"
# The bare binary is the one in the image (its application layer).
read -r app_layer entry < <(python3 - "$W/build.json" "$W/jibber-oci" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
layer = [l for l in b["layers"] if l["role"] == "application"][0]["digest"].split(":")[1]
cfg = json.load(open(f'{sys.argv[2]}/blobs/sha256/{b["config_digest"].split(":")[1]}'))
print(layer, cfg["config"]["Entrypoint"][0])
PY
)
tar -xzf "$W/jibber-oci/blobs/sha256/$app_layer" -C "$W/bin" "${entry#/}"
JBIN="$W/bin/${entry#/}"
JFILE=$(file -b "$JBIN" | cut -d, -f1-4)

log "go build (CGO_ENABLED=0, -ldflags=\"-s -w\") and podman build FROM scratch"
cp bench/go-jibber/main.go jibber/src/jabberwocky.txt "$W/go-src/"
printf 'module pinnace.bench/go-jibber\n\ngo 1.19\n' >"$W/go-src/go.mod"
(cd "$W/go-src" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE="$W/go-cache" GOPATH="$W/go-path" \
  go build -ldflags="-s -w" -o "$W/go-ctx/jibber" .)
GBIN="$W/go-ctx/jibber"
cat >"$W/go-ctx/Containerfile" <<'EOF'
FROM scratch
COPY jibber /jibber
EXPOSE 8080
ENTRYPOINT ["/jibber"]
EOF
podman build -q --no-cache --pull=never -t "$GIMG" "$W/go-ctx" >/dev/null

# Optional: the same chain behind tiny_http and behind hyper, for the binary size.
STACK_BINS=()
STACK_NAMES=()
if [ -n "${STACKS:-}" ]; then
  HOST=$(rustc -vV | sed -n 's/^host: //p')
  for stack in tiny_http hyper; do
    d="$W/stack-$stack"
    mkdir -p "$d/src"
    cp jibber/src/chain.rs jibber/src/jabberwocky.txt "$d/src/"
    case $stack in
      tiny_http) deps='tiny_http = "0.12"' ;;
      hyper) deps='hyper = { version = "1", features = ["server", "http1"] }
hyper-util = { version = "0.1", features = ["tokio"] }
http-body-util = "0.1"
tokio = { version = "1", features = ["rt", "net", "macros"] }' ;;
    esac
    cat >"$d/Cargo.toml" <<EOF
[package]
name = "jibber-$stack"
version = "0.1.0"
edition = "2021"
[workspace]
[dependencies]
$deps
[profile.release]
# jibber's (the workspace's) release profile
opt-level = 3
lto = "fat"
codegen-units = 1
panic = "abort"
strip = "symbols"
EOF
    if [ "$stack" = tiny_http ]; then
      cat >"$d/src/main.rs" <<'EOF'
#[allow(dead_code)]
mod chain;
fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let c = chain::Chain::jabberwocky();
    let server = tiny_http::Server::http(format!("0.0.0.0:{port}")).expect("listen");
    eprintln!("listening on {port}");
    for req in server.incoming_requests() {
        let url = req.url().to_string();
        let (path, q) = url.split_once('?').unwrap_or((&url, ""));
        let resp = match path {
            "/healthz" => tiny_http::Response::from_string("ok"),
            "/jibber" => {
                let seed = q.strip_prefix("seed=").and_then(|s| s.parse().ok()).unwrap_or(1);
                tiny_http::Response::from_string(c.verse_html(seed))
            }
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        let _ = req.respond(resp);
    }
}
EOF
    else
      cat >"$d/src/main.rs" <<'EOF'
#[allow(dead_code)]
mod chain;
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response};
use std::convert::Infallible;
static CHAIN: std::sync::OnceLock<chain::Chain> = std::sync::OnceLock::new();
async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let c = CHAIN.get().expect("chain");
    let body = match req.uri().path() {
        "/healthz" => "ok".to_string(),
        "/jibber" => {
            let q = req.uri().query().and_then(|q| q.strip_prefix("seed="));
            c.verse_html(q.and_then(|s| s.parse().ok()).unwrap_or(1))
        }
        _ => return Ok(Response::builder().status(404).body(Full::new(Bytes::from("not found\n"))).expect("response")),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}
#[tokio::main(flavor = "current_thread")]
async fn main() {
    CHAIN.set(chain::Chain::jabberwocky()).ok();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let l = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await.expect("listen");
    eprintln!("listening on {port}");
    loop {
        let Ok((s, _)) = l.accept().await else { continue };
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(s);
            let _ = http1::Builder::new().serve_connection(io, service_fn(handle)).await;
        });
    }
}
EOF
    fi
    log "cargo build --release: jibber's chain behind $stack"
    (cd "$d" && CARGO_TARGET_DIR="$BENCH_DIR/stacks-target" RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --quiet --target "$HOST" >&2)
    cp "$BENCH_DIR/stacks-target/$HOST/release/jibber-$stack" "$W/bin/jibber-$stack"
    STACK_BINS+=("$W/bin/jibber-$stack")
    STACK_NAMES+=("$stack")
  done
fi

# The floor for exec -> listening: a static C program that listen()s and waits.
cat >"$W/floor.c" <<'EOF'
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  const char *p = getenv("PORT");
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(p ? atoi(p) : 8080) };
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128)) return 1;
  pause();
  return 0;
}
EOF
gcc -O2 -static -s -o "$W/bin/floor" "$W/floor.c"

# The exec -> listening harness.
cat >"$W/exec2listen.c" <<'EOF'
/* exec2listen RUNS PORT_BASE PROG...: for each run and each PROG (interleaved, rotating
 * the order), posix_spawn PROG with PORT=<fresh port> (stdout/stderr to /dev/null), then
 * connect() to 127.0.0.1:PORT every 0.2 ms; prints "PROG_INDEX MILLISECONDS" from just
 * before posix_spawn to the first successful connect. Then SIGTERM and wait. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now_ms(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: exec2listen RUNS PORT_BASE PROG...\n"); return 2; }
  int runs = atoi(argv[1]), port = atoi(argv[2]), n = argc - 3;
  int nenv = 0; while (environ[nenv]) nenv++;
  char **envp = calloc(nenv + 2, sizeof *envp), portvar[32];
  int k = 0;
  for (int i = 0; i < nenv; i++) if (strncmp(environ[i], "PORT=", 5)) envp[k++] = environ[i];
  envp[k++] = portvar;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  struct timespec gap = { 0, 200000 };
  for (int r = 0; r < runs; r++) {
    for (int j = 0; j < n; j++) {
      int p = (r + j) % n;
      port++;
      snprintf(portvar, sizeof portvar, "PORT=%d", port);
      struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      char *args[] = { argv[3 + p], NULL };
      int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int taken = connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
      close(probe);
      if (taken) { j--; continue; } /* someone else listens there: next port */
      pid_t pid;
      double t0 = now_ms(), t1 = -1;
      if (posix_spawn(&pid, argv[3 + p], &fa, NULL, args, envp)) { perror("posix_spawn"); return 1; }
      while (now_ms() - t0 < 5000) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) { t1 = now_ms(); break; }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) { fprintf(stderr, "%s exited before listening\n", argv[3 + p]); return 1; }
        nanosleep(&gap, NULL);
      }
      kill(pid, SIGTERM);
      for (int w = 0; w < 200 && waitpid(pid, NULL, WNOHANG) == 0; w++) nanosleep(&gap, NULL), nanosleep(&gap, NULL);
      if (waitpid(pid, NULL, WNOHANG) == 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
      if (t1 < 0) { fprintf(stderr, "%s did not listen within 5 s\n", argv[3 + p]); return 1; }
      printf("%d %.3f\n", p, t1 - t0);
      fflush(stdout);
    }
  }
  return 0;
}
EOF
gcc -O2 -Wall -o "$W/exec2listen" "$W/exec2listen.c"

# Python helpers: sizes, a server launcher, RSS, podman start-up.
cat >"$W/jb.py" <<'PY'
import http.client, json, os, signal, socket, statistics, subprocess, sys, tarfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_listening(port, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close(); return
        except OSError:
            time.sleep(0.001)
    raise SystemExit(f"nothing listens on {port}")

def get(port, path, method="GET", timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path); r = c.getresponse(); return r.status, r.read()
    finally:
        c.close()

def start(binary):
    port = free_port()
    p = subprocess.Popen([binary], env=dict(os.environ, PORT=str(port)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return p, port

def stop(p):
    p.send_signal(signal.SIGTERM)
    try: p.wait(5)
    except subprocess.TimeoutExpired: p.kill(); p.wait()

def status_kb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"): return int(line.split()[1])

def cmd_sizes(docker_archive, oci_dir):
    """uncompressed (layer tars + config) from a docker-archive; compressed (gzip layers +
    config) and layer count from an OCI layout."""
    with tarfile.open(docker_archive) as t:
        m = json.load(t.extractfile("manifest.json"))[0]
        unc = sum(t.getmember(l).size for l in m["Layers"]) + t.getmember(m["Config"]).size
    idx = json.load(open(f"{oci_dir}/index.json"))
    d = idx["manifests"][0]["digest"].split(":")[1]
    man = json.load(open(f"{oci_dir}/blobs/sha256/{d}"))
    comp = man["config"]["size"] + sum(l["size"] for l in man["layers"])
    print(unc, comp, len(man["layers"]))

def cmd_check(jbin, gbin):
    """Same status for the same requests; byte-identical verse for the same seed."""
    (jp, jport), (gp, gport) = start(jbin), start(gbin)
    bad = []
    try:
        reqs = [("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/jibber"), ("HEAD", "/jibber"),
                ("GET", "/nope"), ("GET", "//jibber"), ("GET", "/jibber/"), ("POST", "/jibber"),
                ("DELETE", "/healthz"), ("GET", "/jibber?seed=x"), ("GET", "/jibber?seed="),
                ("GET", "/jibber?seed=-1"), ("GET", "/jibber?seed=1&seed=2"),
                ("GET", "/jibber?seed=18446744073709551616")]
        for m, path in reqs:
            a, b = get(jport, path, m)[0], get(gport, path, m)[0]
            if a != b: bad.append(f"{m} {path}: jibber {a}, go {b}")
        for seed in list(range(50)) + [2**64 - 1, 42424242]:
            a, b = get(jport, f"/jibber?a=1&seed={seed}"), get(gport, f"/jibber?seed={seed}")
            if a != b or a[0] != 200 or a[1].count(b"<br/>\n") != 10:
                bad.append(f"seed {seed}: the verses differ or are not 10 lines")
    finally:
        stop(jp); stop(gp)
    if bad: raise SystemExit("go-jibber is not equivalent to jibber:\n  " + "\n  ".join(bad))
    print("ok")

def cmd_rss(binary, requests="1000", rounds="3"):
    """idle VmRSS, VmRSS and VmHWM after N sequential requests (kB, medians of rounds),
    and the seconds the N requests took."""
    out = []
    for _ in range(int(rounds)):
        p, port = start(binary)
        try:
            time.sleep(0.2)
            idle = status_kb(p.pid, "VmRSS")
            t0 = time.monotonic()
            for i in range(int(requests)):
                s, body = get(port, "/jibber")
                if s != 200 or not body: raise SystemExit(f"request {i}: status {s}")
            secs = time.monotonic() - t0
            out.append((idle, status_kb(p.pid, "VmRSS"), status_kb(p.pid, "VmHWM"), secs))
        finally:
            stop(p)
    med = [statistics.median(x[i] for x in out) for i in range(4)]
    print(*[round(v) for v in med[:3]], f"{med[3]:.2f}")

def cmd_keepalive(binary, n="1001"):
    """n requests on one kept-alive connection: did every answer arrive, and did the
    server announce each close with Connection: close?"""
    p, port = start(binary)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(1, int(n) + 1):
            try:
                c.request("GET", "/healthz"); r = c.getresponse(); r.read()
            except (http.client.RemoteDisconnected, ConnectionError) as e:
                print(f"request {i} failed ({type(e).__name__}): the server closed the connection "
                      f"after answering {i - 1} requests with Connection: keep-alive"); return
            if r.getheader("Connection", "").lower() == "close":
                c.close()  # announced: reconnect, as clients do
        print(f"all {n} answered")
    finally:
        stop(p)

def cmd_podman(runs, prefix, *images):
    """podman run -d -p 127.0.0.1:PORT:8080 IMAGE -> first 200 from /jibber?seed=42.
    Prints "INDEX TOTAL_MS PODMAN_RUN_MS SELF_REPORTED_S" per run."""
    for r in range(int(runs)):
        for j in range(len(images)):
            i = (r + j) % len(images)
            port, name = free_port(), f"{prefix}-{r}-{i}"
            try:
                t0 = time.monotonic()
                subprocess.run(["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                                images[i]], check=True, stdout=subprocess.DEVNULL)
                t1 = time.monotonic()
                while True:
                    try:
                        s, body = get(port, "/jibber?seed=42", timeout=1.0)
                        if s == 200 and body.count(b"<br/>") == 10: break
                    except OSError:
                        pass
                    if time.monotonic() - t0 > 20: raise SystemExit(f"{images[i]}: no answer in 20 s")
                    time.sleep(0.001)
                t2 = time.monotonic()
                lg = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
                logs = lg.stdout + lg.stderr
                started = next((f"{float(l.split()[3]) * 1e3:.3f}" for l in logs.splitlines()
                                if l.startswith("Started jibber in ")), "nan")
            finally:
                subprocess.run(["podman", "rm", "-f", "-t", "0", name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            print(i, f"{(t2 - t0) * 1e3:.1f}", f"{(t1 - t0) * 1e3:.1f}", started, flush=True)

if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PY
JB="python3 $W/jb.py"

log "check: go-jibber answers like jibber"
$JB check "$JBIN" "$GBIN" >/dev/null
J_KA=$($JB keepalive "$JBIN"); G_KA=$($JB keepalive "$GBIN")

# 3. Sizes.
podman save -q --format docker-archive -o "$W/jibber-docker.tar" "$JIMG"
podman save -q --format docker-archive -o "$W/go-docker.tar" "$GIMG"
"$PINNACE" copy -q "docker-archive:$W/jibber-docker.tar" "oci:$W/jibber-rt:latest"
"$PINNACE" copy -q "docker-archive:$W/go-docker.tar" "oci:$W/go-oci:latest"
read -r J_UNC J_GZ J_LAYERS < <($JB sizes "$W/jibber-docker.tar" "$W/jibber-rt")
read -r G_UNC G_GZ G_LAYERS < <($JB sizes "$W/go-docker.tar" "$W/go-oci")
read -r J_BUILD_GZ J_BUILD_UNC < <(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b["size"], b["uncompressed_size"])' "$W/build.json")
J_PODMAN=$(podman image inspect --format '{{.Size}}' "$JIMG")
G_PODMAN=$(podman image inspect --format '{{.Size}}' "$GIMG")
J_BIN=$(stat -c %s "$JBIN"); G_BIN=$(stat -c %s "$GBIN")
J_OCIAR=$(stat -c %s "$W/jibber-oci.tar")

wait_quiet() {
  [ -n "${WAIT_LOAD:-}" ] || return 0
  local waited=0
  while awk -v l="$(load1)" -v m="$WAIT_LOAD" 'BEGIN { exit !(l > m) }'; do
    if [ "$waited" -ge 900 ]; then log "load still $(load1) after 15 min; going on"; return 0; fi
    [ "$waited" = 0 ] && log "waiting for the load average ($(load1)) to fall to $WAIT_LOAD"
    sleep 10; waited=$((waited + 10))
  done
}

# 4. exec -> listening.
wait_quiet
L_EXEC=$(load1)
log "exec -> listening: $RUNS runs each (load $L_EXEC)"
NPROGS=$((3 + ${#STACK_BINS[@]}))
"$W/exec2listen" "$RUNS" 20000 "$JBIN" "$GBIN" "$W/bin/floor" "${STACK_BINS[@]}" >"$W/exec.raw"
# Again under SCHED_FIFO (chrt -f 10, inherited by the spawned programs): the programs' own
# cost, without waiting behind the other tenants of a shared machine for a time slice.
chrt -f 10 "$W/exec2listen" "$RUNS" 30000 "$JBIN" "$GBIN" "$W/bin/floor" "${STACK_BINS[@]}" >"$W/exec-rt.raw"
for i in $(seq 0 $((NPROGS - 1))); do
  awk -v i="$i" '$1 == i { print $2 }' "$W/exec.raw" >"$W/exec.$i"
  awk -v i="$i" '$1 == i { print $2 }' "$W/exec-rt.raw" >"$W/exec-rt.$i"
done

# 5. podman run -> first HTTP answer.
wait_quiet
L_PODMAN=$(load1)
log "podman run -d -> first 200: $RUNS runs each (load $L_PODMAN)"
$JB podman "$RUNS" "$PREFIX" "$JIMG" "$GIMG" >"$W/podman.raw"
for i in 0 1; do awk -v i=$i '$1 == i' "$W/podman.raw" >"$W/podman.$i"; done
left=$(podman ps -aq --filter "name=^$PREFIX-" | wc -l)
[ "$left" = 0 ] || die "$left containers were left behind"

# 6. RSS after 1,000 requests.
wait_quiet
L_RSS=$(load1)
log "RSS after 1,000 requests (load $L_RSS)"
read -r J_IDLE J_RSS J_HWM J_SECS < <($JB rss "$JBIN" 1000 3)
read -r G_IDLE G_RSS G_HWM G_SECS < <($JB rss "$GBIN" 1000 3)

# 7. Throughput: wrk against the bare binaries.
wait_quiet
L_WRK=$(load1)
log "wrk -t2 -c16 -d${WRK_SECONDS}s, 3 rounds (load $L_WRK)"
run_wrk() { # BINARY PATH OUT SUMMARY (appends "rps p50_ms p99_ms requests socket_errors non_2xx")
  local port pid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  PORT=$port "$1" >/dev/null 2>&1 &
  pid=$!; SERVER_PID=$pid
  python3 -c "import sys; sys.path.insert(0, '$W'); import jb; jb.wait_listening($port)"
  wrk -t2 -c16 -d"${WRK_SECONDS}s" --timeout 2s --latency "http://127.0.0.1:$port$2" >"$3"
  kill -TERM "$pid"; wait "$pid" || true
  SERVER_PID=""
  # wrk: "Requests/sec: N", " 50% X", " 99% Y", errors, non-2xx; all are checked below.
  python3 - "$3" <<'PY' >>"$4"
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
p50 = ms(re.search(r"\n\s+50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\n\s+99%\s+(\S+)", t).group(1))
errs = re.search(r"Socket errors: (.*)", t)
errs = sum(int(n) for n in re.findall(r"\d+", errs.group(1))) if errs else 0
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {total} {errs} {non2xx.group(1) if non2xx else 0}")
PY
}
for path in /jibber /healthz; do
  tag=${path#/}
  : >"$W/wrk.j.$tag.sum"; : >"$W/wrk.g.$tag.sum"
  for r in 1 2 3; do
    if [ $((r % 2)) = 1 ]; then order="j g"; else order="g j"; fi
    for who in $order; do
      if [ "$who" = j ]; then bin=$JBIN; else bin=$GBIN; fi
      run_wrk "$bin" "$path" "$W/wrk.$who.$tag.$r" "$W/wrk.$who.$tag.sum"
    done
    log "  $path round $r: jibber $(tail -n1 "$W/wrk.j.$tag.sum") | go $(tail -n1 "$W/wrk.g.$tag.sum") (rps p50ms p99ms requests socket-errors non-2xx; load $(load1))"
  done
done
wrk_med() { cut -d' ' -f"$2" "$1" | median; }
wrk_err() { awk '{ e += $5; n += $6; r += $4 } END { printf "%d / %d of %d", e, n, r }' "$1"; }
wrk_row() { # SUMMARY
  printf '%s (%s / %s)' "$(wrk_med "$1" 1)" "$(wrk_med "$1" 2)" "$(wrk_med "$1" 3)"
}
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START ))

# 8. The table.
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
kb_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
minmax() { sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
E_J=$(median <"$W/exec.0"); E_G=$(median <"$W/exec.1"); E_F=$(median <"$W/exec.2")
R_J=$(median <"$W/exec-rt.0"); R_G=$(median <"$W/exec-rt.1"); R_F=$(median <"$W/exec-rt.2")
P_J=$(cut -d' ' -f2 "$W/podman.0" | median); P_G=$(cut -d' ' -f2 "$W/podman.1" | median)
PR_J=$(cut -d' ' -f3 "$W/podman.0" | median); PR_G=$(cut -d' ' -f3 "$W/podman.1" | median)
S_J=$(cut -d' ' -f4 "$W/podman.0" | median); S_G=$(cut -d' ' -f4 "$W/podman.1" | median)
cut -d' ' -f2 "$W/podman.0" >"$W/podman.0.total"; cut -d' ' -f2 "$W/podman.1" >"$W/podman.1.total"
# paired RAW N COL: rounds of N lines ("INDEX VALUE…"); per round, Go (index 1) minus
# jibber (index 0) from column COL -> "MEDIAN_DIFFERENCE ROUNDS_JIBBER_WAS_FASTER ROUNDS".
paired() {
  awk -v n="$2" -v c="$3" '{ r = int((NR - 1) / n); v[r, $1] = $c }
    END { for (i = 0; i <= r; i++) { d = v[i, 1] - v[i, 0]; print d; if (d > 0) w++ }
          print "W", w + 0, r + 1 }' "$1" >"$1.paired"
  printf '%s %s\n' "$(grep -v '^W' "$1.paired" | median)" "$(grep '^W' "$1.paired" | cut -d' ' -f2-)"
}
read -r D_EXEC W_EXEC N_EXEC < <(paired "$W/exec.raw" "$NPROGS" 2)
read -r D_POD W_POD N_POD < <(paired "$W/podman.raw" 2 2)
yes_no() { awk "BEGIN { print ($1) ? \"**yes**\" : \"**no**\" }"; }
MET_SIZE=$(yes_no "$J_UNC <= 1500000")
MET_EXEC=$(yes_no "$E_J <= 5")
MET_SMALLER=$(yes_no "$J_UNC < $G_UNC && $J_GZ < $G_GZ")
MET_FASTER_EXEC=$(yes_no "$E_J < $E_G && $R_J < $R_G && $D_EXEC > 0")
# podman: a sign test on the paired rounds (jibber faster in >= N/2 + sqrt(N) rounds, about
# two standard deviations) or the difference is lost in podman's own variation.
MET_FASTER_PODMAN=$(awk -v w="$W_POD" -v n="$N_POD" 'BEGIN {
  if (w >= n / 2 + sqrt(n)) print "**yes**"
  else if (n - w >= n / 2 + sqrt(n)) print "**no** (Go faster)"
  else print "**no**: no measurable difference (podman, runc and CNI vary by more than the programs differ)" }')

KA_NOTE=""
case $J_KA in
  "request 1001 failed"*) KA_NOTE=$'\n'"  wrk counts each such close as a socket (read) error and reconnects: about one error
  per 1,000 requests for jibber in the throughput rows." ;;
esac
STACK_TEXT=$'\n'"tiny_http and hyper versions: not built in this run (\`STACKS=1\` builds and measures them)."
if [ "${#STACK_BINS[@]}" -gt 0 ]; then
  STACK_TEXT=$'\n'"Other HTTP stacks (\`STACKS=1\`): jibber's chain behind a minimal server (no connection limit,
no timeouts, no graceful shutdown), the same release profile, static; image = \`pinnace build --binary\`.

| HTTP stack | static binary MB | vs jibber | image, uncompressed MB | image ≤ 1.5 MB | exec -> listening, ms (median of $RUNS) | same, SCHED_FIFO |
|---|---|---|---|---|---|---|
| std only (jibber) | $(mb "$J_BIN") | | $(mb "$J_UNC") | $(yes_no "$J_UNC <= 1500000") | $E_J | $R_J |"
  for k in "${!STACK_BINS[@]}"; do
    b=${STACK_BINS[$k]}
    "$PINNACE" build -q --binary "$b" -t "oci:$W/stack-img-$k:latest" --json >"$W/stack-img-$k.json"
    img=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uncompressed_size"])' "$W/stack-img-$k.json")
    sz=$(stat -c %s "$b")
    case ${STACK_NAMES[$k]} in hyper) label="hyper 1 + tokio (current-thread)" ;; *) label="tiny_http 0.12" ;; esac
    STACK_TEXT+=$'\n'"| $label | $(mb "$sz") | +$(mb $((sz - J_BIN))) MB | $(mb "$img") | $(yes_no "$img <= 1500000") | $(median <"$W/exec.$((3 + k))") | $(median <"$W/exec-rt.$((3 + k))") |"
  done
fi

SECTION=$(cat <<EOF
<!-- jibber.sh:begin -->
## jibber — bench/jibber.sh, $(date -u +'%Y-%m-%d %H:%M UTC')

- Command: \`$([ -n "${WAIT_LOAD:-}" ] && echo "WAIT_LOAD=$WAIT_LOAD ")$([ -n "${STACKS:-}" ] && echo "STACKS=1 ")$([ -n "${PINNACE_BIN:-}" ] && echo "PINNACE_BIN=$PINNACE_BIN ")RUNS=$RUNS WRK_SECONDS=$WRK_SECONDS bench/jibber.sh\` (from the repository root, as root)
- Machine: $(machine_summary); load average $LOAD_BEFORE before, $LOAD_AFTER after (${ELAPSED}s run);
  1-min load at the start of each part: exec $L_EXEC, podman $L_PODMAN, RSS $L_RSS, wrk $L_WRK
- pinnace $PINNACE_VERSION ($([ -n "${PINNACE_BIN:-}" ] && echo "the PINNACE_BIN binary, not built by this run; ")tree at git $GIT_REV); podman $PODMAN_VERSION ($RUNTIME); $GO_VERSION; $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)
- jibber: \`pinnace build --cargo jibber\` (std-only HTTP/1.1, thread per connection, at most 64);
  the binary is taken from the image: $JFILE, **$(mb "$J_BIN") MB ($J_BIN bytes)**.
  Go: \`bench/go-jibber/main.go\` (net/http, same routes, same chain and generator: the script
  checks that both answer 14 requests with the same status and 52 seeds with byte-identical
  verse), \`CGO_ENABLED=0 go build -ldflags="-s -w"\` ($(mb "$G_BIN") MB), \`FROM scratch\` +
  \`COPY\` + \`podman build\`, as seed 001 does it.

| | Spring on JDK (seed) | GraalVM native (seed) | native on distroless (seed) | Go on scratch (seed) | **Go on scratch (measured)** | **pinnace jibber** | Go / jibber |
|---|---|---|---|---|---|---|---|
| image, uncompressed MB | 569 | 171 | 82 | 7 | $(mb "$G_UNC") | **$(mb "$J_UNC")** | $(ratio "$G_UNC" "$J_UNC")x |
| image, compressed MB (gzip layers + config) | – | – | – | – | $(mb "$G_GZ") | **$(mb "$J_GZ")** | $(ratio "$G_GZ" "$J_GZ")x |
| \`podman image inspect\` Size MB | – | – | – | – | $(mb "$G_PODMAN") | $(mb "$J_PODMAN") | |
| layers | – | – | – | – | $G_LAYERS | $J_LAYERS | |
| static binary MB | – | – | – | – | $(mb "$G_BIN") | $(mb "$J_BIN") | $(ratio "$G_BIN" "$J_BIN")x |
| exec -> listening, ms (median of $RUNS; min–max) | – | – | – | – | $E_G ($(minmax "$W/exec.1")) | **$E_J** ($(minmax "$W/exec.0")) | $(ratio "$E_G" "$E_J")x |
| exec -> listening under SCHED_FIFO, ms (median of $RUNS; min–max) | – | – | – | – | $R_G ($(minmax "$W/exec-rt.1")) | **$R_J** ($(minmax "$W/exec-rt.0")) | $(ratio "$R_G" "$R_J")x |
| \`podman run -d\` -> first HTTP 200, ms (median of $RUNS; min–max) | – | – | – | – | $P_G ($(minmax "$W/podman.1.total")) | **$P_J** ($(minmax "$W/podman.0.total")) | $(ratio "$P_G" "$P_J")x |
| … of which \`podman run -d\` returning, ms | – | – | – | – | $PR_G | $PR_J | |
| paired (same round): Go minus jibber, median ms; rounds jibber was faster | – | – | – | – | | exec: $D_EXEC ms, $W_EXEC of $N_EXEC; podman: $D_POD ms, $W_POD of $N_POD | |
| self-reported "Started … in", ms (median, in the container; Go: from package init) | 3,900 | 74 | – | – | $S_G | $S_J | |
| VmRSS idle / after 1,000 requests, MB | – | – | – | – | $(kb_mb "$G_IDLE") / $(kb_mb "$G_RSS") | **$(kb_mb "$J_IDLE") / $(kb_mb "$J_RSS")** | $(ratio "$G_RSS" "$J_RSS")x |
| VmHWM after 1,000 requests, MB | – | – | – | – | $(kb_mb "$G_HWM") | $(kb_mb "$J_HWM") | |
| 1,000 sequential requests (new connection each), s | – | – | – | – | $G_SECS | $J_SECS | |
| wrk /jibber, requests/s (p50 / p99 ms) | – | – | – | – | $(wrk_row "$W/wrk.g.jibber.sum") | **$(wrk_row "$W/wrk.j.jibber.sum")** | $(ratio "$(wrk_med "$W/wrk.g.jibber.sum" 1)" "$(wrk_med "$W/wrk.j.jibber.sum" 1)")x |
| wrk /healthz, requests/s (p50 / p99 ms) | – | – | – | – | $(wrk_row "$W/wrk.g.healthz.sum") | **$(wrk_row "$W/wrk.j.healthz.sum")** | $(ratio "$(wrk_med "$W/wrk.g.healthz.sum" 1)" "$(wrk_med "$W/wrk.j.healthz.sum" 1)")x |
| wrk socket errors / non-2xx of all requests, 3 rounds × 2 paths | – | – | – | – | $(cat "$W"/wrk.g.*.sum | wrk_err /dev/stdin) | $(cat "$W"/wrk.j.*.sum | wrk_err /dev/stdin) | |

Floor for exec -> listening on this machine: a static C program that only \`listen()\`s,
median **$E_F ms** ($(minmax "$W/exec.2")), under SCHED_FIFO **$R_F ms** ($(minmax "$W/exec-rt.2")),
measured in the same interleaved runs: posix_spawn, exec of a static binary and the 0.2 ms
polling cost that much before any program code runs.
$STACK_TEXT

| target | measured | met |
|---|---|---|
| image ≤ 1.5 MB uncompressed | $(mb "$J_UNC") MB | $MET_SIZE |
| exec -> listening ≤ 5 ms | $E_J ms | $MET_EXEC |
| smaller than Go on scratch (uncompressed and compressed) | $(mb "$J_UNC") vs $(mb "$G_UNC") MB; $(mb "$J_GZ") vs $(mb "$G_GZ") MB | $MET_SMALLER |
| faster to start than Go on scratch: exec -> listening | $E_J vs $E_G ms (SCHED_FIFO $R_J vs $R_G); jibber faster in $W_EXEC of $N_EXEC paired rounds | $MET_FASTER_EXEC |
| faster to start than Go on scratch: \`podman run -d\` -> HTTP 200 | $P_J vs $P_G ms; jibber faster in $W_POD of $N_POD paired rounds | $MET_FASTER_PODMAN |

How it was measured:
- Sizes: both images \`podman save --format docker-archive\`; uncompressed = layer tars +
  config in that archive; compressed = gzip layers + config after \`pinnace copy
  docker-archive:… oci:…\` (the same compressor for both). pinnace's own build reports
  $(mb "$J_BUILD_UNC") MB uncompressed / $(mb "$J_BUILD_GZ") MB compressed; its oci-archive file is $(mb "$J_OCIAR") MB.
  The seed's figures are the lab's, not measured here.
- exec -> listening: a C harness (in the script) takes CLOCK_MONOTONIC, \`posix_spawn\`s the
  binary with a fresh PORT and stdout/stderr on /dev/null, and \`connect()\`s to
  127.0.0.1:PORT every 0.2 ms until one succeeds; then SIGTERM. Programs interleaved. Run
  twice: as is (what a user sees on this shared machine) and under \`chrt -f 10\`.
- podman: \`podman run -d --name … -p 127.0.0.1:PORT:8080 IMAGE\`, then GET /jibber?seed=42
  every 1 ms until a 200 with 10 lines; \`podman rm -f -t 0\` after each run (untimed); the
  script checks that no container is left. Most of this time is podman, runc and CNI.
- RSS: the bare binary, 1,000 sequential GET /jibber from Python's http.client (a new
  connection each, 5 s timeout), then VmRSS/VmHWM from /proc/PID/status; median of 3.
- Throughput: \`wrk -t2 -c16 -d${WRK_SECONDS}s --timeout 2s --latency\`, keep-alive, on 127.0.0.1;
  wrk shares the 2 cores with the server; median of 3 rounds (alternating order).
- Keep-alive check (1,001 requests on one connection): jibber: $J_KA; Go: $G_KA.$KA_NOTE
<!-- jibber.sh:end -->
EOF
)
printf '%s\n' "$SECTION"

write_section jibber.sh
