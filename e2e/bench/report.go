package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPUs   int
	CPU    string
	Memory string
	Go     string
	Kernel string
	Date   string
}

func machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", kb/1024/1024)
				}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	} else {
		m.Go = runtime.Version()
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// Markdown is the machine line every section starts with.
func (m Machine) Markdown(cmd string) string {
	cpu := ""
	if m.CPU != "" {
		cpu = " (" + m.CPU + ")"
	}
	return fmt.Sprintf("Machine: %d CPUs%s, %s memory, Linux %s · %s · %s · `%s`\n",
		m.CPUs, cpu, m.Memory, m.Kernel, m.Go, m.Date, cmd)
}

// Sample is the values of one figure over N runs.
type Sample []float64

func (s Sample) sorted() []float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c
}

// Median of s (the mean of the middle two for an even count).
func (s Sample) Median() float64 {
	c := s.sorted()
	if len(c) == 0 {
		return math.NaN()
	}
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// Min of s.
func (s Sample) Min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return s.sorted()[0]
}

// Max of s.
func (s Sample) Max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return s.sorted()[len(s)-1]
}

// Format is "median (min–max)" with f formatting each value.
func (s Sample) Format(f func(float64) string) string {
	if len(s) == 0 {
		return "n/a"
	}
	if s.Min() == s.Max() {
		return f(s.Median())
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median()), f(s.Min()), f(s.Max()))
}

func secs(v float64) string { return fmt.Sprintf("%.2f s", v) }

func mib(v float64) string { return fmt.Sprintf("%.2f MiB", v/(1<<20)) }

// passMiss renders a goal check.
func passMiss(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**MISS**"
}

// Line is one line a timed command wrote, with when it arrived.
type Line struct {
	At   time.Duration
	Text string
}

// Timed is one run of a command.
type Timed struct {
	Wall   time.Duration
	Stdout string
	Lines  []Line // stderr, timestamped from the start
}

// First returns when the first stderr line containing sub arrived, and the line.
func (t *Timed) First(sub string) (time.Duration, string, bool) {
	for _, l := range t.Lines {
		if strings.Contains(l.Text, sub) {
			return l.At, l.Text, true
		}
	}
	return 0, "", false
}

// timed runs name args in dir with env and measures its wall time. Stderr lines
// are timestamped as they arrive so that phases can be told apart afterwards.
func timed(ctx context.Context, dir string, env []string, name string, args ...string) (*Timed, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout strings.Builder
	cmd.Stdout = &stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	res := &Timed{}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		res.Lines = append(res.Lines, Line{At: time.Since(start), Text: sc.Text()})
	}
	err = cmd.Wait()
	res.Wall = time.Since(start)
	res.Stdout = stdout.String()
	if err != nil {
		var tail []string
		for i := max(0, len(res.Lines)-15); i < len(res.Lines); i++ {
			tail = append(tail, "  "+res.Lines[i].Text)
		}
		return res, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return res, nil
}

// withEnv returns base with the given KEY=VALUE settings replacing any earlier ones.
func withEnv(base []string, set ...string) []string {
	keys := make([]string, len(set))
	for i, kv := range set {
		keys[i], _, _ = strings.Cut(kv, "=")
	}
	return append(without(base, keys...), set...)
}

// without returns base without the named variables.
func without(base []string, keys ...string) []string {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return out
}

// updateSection replaces the section between <!-- ID start --> and <!-- ID end -->
// in file (appending it when absent; creating the file when missing), atomically.
func updateSection(file, id, section string) error {
	begin, end := "<!-- "+id+" start -->", "<!-- "+id+" end -->"
	block := begin + "\n" + strings.TrimRight(section, "\n") + "\n" + end + "\n"
	// Other benchmarks may update their sections at the same time: hold a lock on
	// the folder for the read-modify-rename.
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(file))
	if err != nil {
		return err
	}
	defer func() { _ = dir.Close() }()
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", filepath.Dir(file), err)
	}
	defer func() { _ = syscall.Flock(int(dir.Fd()), syscall.LOCK_UN) }()
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\nWritten by `make bench` (e2e/bench.sh, e2e/bench/): each benchmark updates only its own\n" +
			"section, between its `<!-- Pn start -->`/`<!-- Pn end -->` markers. Figures are\n" +
			"median (min–max) over N runs on the real e2e harness.\n\n"
	}
	i, j := strings.Index(text, begin), strings.Index(text, end)
	switch {
	case i >= 0 && j > i:
		rest := text[j+len(end):]
		rest = strings.TrimPrefix(rest, "\n")
		text = text[:i] + block + rest
	case i >= 0 || j >= 0:
		return fmt.Errorf("%s: unbalanced %s markers", file, id)
	default:
		if !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		text += block
	}
	return writeAtomic(file, []byte(text))
}

func writeAtomic(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
