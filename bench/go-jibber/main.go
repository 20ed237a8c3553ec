// go-jibber: the Go net/http equivalent of jibber/ (the Rust service), for bench/jibber.sh.
//
// Same routes and answers: GET|HEAD /jibber[?seed=N] -> ten lines of verse from an
// order-3 word-level Markov chain trained on "Jabberwocky", each line HTML-escaped and
// followed by "<br/>\n"; GET|HEAD /healthz -> "ok"; 404 for other paths, 405 (Allow: GET,
// HEAD) for other methods, 400 for a bad seed. The chain, the splitmix64 generator and
// the bounded pick are jibber's, step for step, so a seed gives byte-identical verse
// in both (the bench checks it). Listens on 0.0.0.0:$PORT (default 8080), logs
// "Started jibber in X seconds", and on SIGTERM/SIGINT stops accepting, finishes
// in-flight requests (at most 1 s) and exits 0.
//
// The poem is embedded with go:embed: bench/jibber.sh copies jibber/src/jabberwocky.txt
// next to this file in its build directory (one copy of the text in the repository).
// Built the way seed 001 builds Go: CGO_ENABLED=0 go build -ldflags="-s -w", then
// FROM scratch + COPY.
package main

import (
	"context"
	_ "embed"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// started is set during package initialisation, before main (jibber's Instant::now()
// is its first statement in main).
var started = time.Now()

//go:embed jabberwocky.txt
var poem string

const (
	order      = 3  // previous words in a state
	maxWords   = 12 // longest generated line, in words
	verseLines = 10 // lines per verse
)

// splitMix64 is splitmix64 (Steele, Lea, Flood 2014), as in jibber/src/chain.rs.
type splitMix64 struct{ state uint64 }

func (r *splitMix64) next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	z := r.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// below returns a value in 0..n (Lemire's multiply-shift); 0 when n is 0.
func (r *splitMix64) below(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

type chain struct {
	vocab    []string // distinct words, by id
	stream   []uint16 // the poem as word ids
	endsLine []bool   // the word ended a source line
	starts   []int    // stream positions where a source line starts
}

func newChain(text string) *chain {
	c := &chain{}
	ids := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		c.starts = append(c.starts, len(c.stream))
		for i, w := range words {
			id, ok := ids[w]
			if !ok {
				id = len(c.vocab)
				ids[w] = id
				c.vocab = append(c.vocab, w)
				c.endsLine = append(c.endsLine, false)
			}
			if i == len(words)-1 {
				c.endsLine[id] = true
			}
			c.stream = append(c.stream, uint16(id))
		}
	}
	if len(c.stream) <= order {
		panic("the poem is too short to train an order-3 chain")
	}
	return c
}

func (c *chain) at(pos int) uint16 { return c.stream[pos%len(c.stream)] }

func (c *chain) line(rng *splitMix64) []string {
	start := c.starts[rng.below(len(c.starts))]
	out := make([]string, 0, maxWords)
	for i := 0; i < order; i++ {
		id := c.at(start + i)
		out = append(out, c.vocab[id])
		if c.endsLine[id] {
			return out
		}
	}
	state := start
	var followers []int
	for len(out) < maxWords {
		followers = followers[:0]
		for pos := range c.stream {
			match := true
			for i := 0; i < order; i++ {
				if c.at(pos+i) != c.at(state+i) {
					match = false
					break
				}
			}
			if match {
				followers = append(followers, pos)
			}
		}
		pos := followers[rng.below(len(followers))]
		id := c.at(pos + order)
		out = append(out, c.vocab[id])
		if c.endsLine[id] {
			break
		}
		state = pos + 1
	}
	return out
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func (c *chain) verseHTML(seed uint64) string {
	rng := &splitMix64{state: seed}
	var b strings.Builder
	b.Grow(1024)
	for i := 0; i < verseLines; i++ {
		b.WriteString(htmlEscaper.Replace(strings.Join(c.line(rng), " ")))
		b.WriteString("<br/>\n")
	}
	return b.String()
}

var counter uint64

// freshSeed mixes time, process id and a counter, like jibber's fresh_seed.
func freshSeed() uint64 {
	count := atomic.AddUint64(&counter, 1) - 1
	rng := splitMix64{state: uint64(time.Now().UnixNano()) ^ uint64(os.Getpid())<<32 ^ count}
	return rng.next()
}

// seedParam follows jibber's seed_param: absent -> ok=false; exactly one seed=N with N a
// decimal u64 -> N; anything else naming seed -> bad.
func seedParam(query string) (seed uint64, ok, bad bool) {
	for _, pair := range strings.Split(query, "&") {
		key, value, hasValue := strings.Cut(pair, "=")
		if key != "seed" {
			continue
		}
		if ok || !hasValue || len(value) > 20 { // ParseUint: digits only, no sign, no overflow
			return 0, false, true
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return 0, false, true
		}
		seed, ok = n, true
	}
	return seed, ok, false
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func handler(c *chain) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if path != "/jibber" && path != "/healthz" {
			text(w, http.StatusNotFound, "not found\n")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			text(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		if path == "/healthz" {
			text(w, http.StatusOK, "ok")
			return
		}
		seed, ok, bad := seedParam(r.URL.RawQuery)
		if bad {
			text(w, http.StatusBadRequest, "seed must be an unsigned 64-bit decimal integer\n")
			return
		}
		if !ok {
			seed = freshSeed()
		}
		body := c.verseHTML(seed)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			fmt.Fprint(w, body)
		}
	}
}

func main() {
	port := 8080
	if v, set := os.LookupEnv("PORT"); set {
		p, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			fmt.Fprintf(os.Stderr, "jibber: PORT must be at most 65535, not %q\n", v)
			os.Exit(2)
		}
		port = int(p)
	}
	c := newChain(poem)
	ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "jibber: cannot listen on 0.0.0.0:%d: %v\n", port, err)
		os.Exit(1)
	}
	elapsed := time.Since(started)
	fmt.Fprintf(os.Stderr, "jibber: listening on %s\n", ln.Addr())
	fmt.Fprintf(os.Stderr, "Started jibber in %.6f seconds\n", elapsed.Seconds())

	srv := &http.Server{
		Handler:           handler(c),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-stop
		fmt.Fprintln(os.Stderr, "jibber: shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "jibber: %v\n", err)
		os.Exit(1)
	}
	<-done
}
