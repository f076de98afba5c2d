// Command bench runs kubecc's benchmarks against the e2e harness and writes their
// results to docs/benchmarks.md (one marked section per benchmark) and stdout.
//
// Benchmarks register themselves in init (see p1.go); each one is a function that
// returns a Markdown section. Environment:
//
//	QUICK=1           fewer runs (N=2)
//	N=7               runs per figure (default 5, QUICK: 2)
//	BENCH_ONLY=P1,P3  run only these benchmarks (the only way to run a Manual one, S1)
//	BENCH_OUT=FILE    the Markdown file to update (default docs/benchmarks.md)
//	KO=PATH           the ko binary (P1), built by e2e/bench.sh
//	REGISTRY=H:P      the harness registry (default 127.0.0.1:5000)
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Benchmark is one registered benchmark.
type Benchmark struct {
	ID    string // P1, P2, ...: also the name of its section markers
	Title string
	// Manual benchmarks run only when BENCH_ONLY names them: the soak (S1) takes the
	// harness for many minutes and breaks it on purpose, which `make bench` must not.
	Manual bool
	Run    func(ctx context.Context, env *Env) (string, error) // returns the section's Markdown body
}

var benchmarks []Benchmark

// register adds b to the list main runs; call it from init.
func register(b Benchmark) { benchmarks = append(benchmarks, b) }

// Env is what every benchmark gets.
type Env struct {
	Root     string // repository root
	N        int    // runs per figure
	Quick    bool
	Registry string
	RunID    string // unique per invocation: fresh repositories, names, namespaces
	Machine  Machine
	Command  string // the command that produced the results
}

// Logf reports progress on stderr.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	root, err := repoRoot()
	if err != nil {
		return err
	}
	env := &Env{Root: root, N: 5, Registry: "127.0.0.1:5000", RunID: strconv.FormatInt(time.Now().Unix(), 36)}
	if v := os.Getenv("QUICK"); v != "" && v != "0" {
		env.Quick, env.N = true, 2
	}
	if v := os.Getenv("N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("environment variable N=%q: want a positive number of runs", v)
		}
		env.N = n
	}
	if v := os.Getenv("REGISTRY"); v != "" {
		env.Registry = v
	}
	env.Machine = machine(ctx)
	env.Command = command()
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = filepath.Join(root, "docs", "benchmarks.md")
	}

	selected, err := selectBenchmarks(os.Getenv("BENCH_ONLY"))
	if err != nil {
		return err
	}
	for _, b := range selected {
		env.Logf("%s: %s (N=%d)", b.ID, b.Title, env.N)
		body, err := b.Run(ctx, env)
		if err != nil {
			return fmt.Errorf("%s: %w", b.ID, err)
		}
		section := fmt.Sprintf("## %s: %s\n\n%s", b.ID, b.Title, strings.TrimRight(body, "\n")+"\n")
		if err := updateSection(out, b.ID, section); err != nil {
			return err
		}
		fmt.Println(section)
	}
	env.Logf("wrote %s", out)
	return nil
}

func selectBenchmarks(only string) ([]Benchmark, error) {
	all := append([]Benchmark(nil), benchmarks...)
	sort.SliceStable(all, func(i, j int) bool { return idLess(all[i].ID, all[j].ID) })
	if strings.TrimSpace(only) == "" {
		var out []Benchmark
		for _, b := range all {
			if !b.Manual {
				out = append(out, b)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, id := range strings.Split(only, ",") {
		if id = strings.ToUpper(strings.TrimSpace(id)); id != "" {
			want[id] = true
		}
	}
	var out []Benchmark
	for _, b := range all {
		if want[b.ID] {
			out = append(out, b)
			delete(want, b.ID)
		}
	}
	if len(want) > 0 {
		var ids []string
		for _, b := range all {
			ids = append(ids, b.ID)
		}
		var unknown []string
		for id := range want {
			unknown = append(unknown, id)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("BENCH_ONLY: unknown benchmark %s (have %s)", strings.Join(unknown, ", "), strings.Join(ids, ", "))
	}
	return out, nil
}

// idLess orders P2 before P10.
func idLess(a, b string) bool {
	na, ea := strconv.Atoi(strings.TrimLeft(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
	nb, eb := strconv.Atoi(strings.TrimLeft(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
	if ea == nil && eb == nil && na != nb {
		return na < nb
	}
	return a < b
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "e2e", "bench")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run from inside the kubecc checkout (no go.mod with e2e/bench above %s)", dir)
		}
	}
}

// command reconstructs how the benchmarks were started, for the report. BENCH_MAKE
// is the make target that set BENCH_ONLY itself (soak), when not bench.
func command() string {
	target := os.Getenv("BENCH_MAKE")
	var vars []string
	for _, k := range []string{"QUICK", "N", "BENCH_ONLY", "SOAK_DURATION", "SOAK_SEED", "SOAK_FAULT_EVERY"} {
		if v := os.Getenv(k); v != "" && (k != "BENCH_ONLY" || target == "") {
			vars = append(vars, k+"="+v)
		}
	}
	if os.Getenv("MAKELEVEL") != "" {
		return strings.Join(append([]string{"make " + cmp.Or(target, "bench")}, vars...), " ")
	}
	return strings.Join(append(vars, "bash e2e/bench.sh"), " ")
}
