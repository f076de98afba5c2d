package launch

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Log is run's stderr, which the peer logs: run's own lines and the chaincode's,
// from several goroutines, one whole line at a time, with phase times.
type Log struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	start  time.Time
}

// NewLog writes run's lines to w; phase times count from now.
func NewLog(w io.Writer) *Log { return NewNamedLog(w, "kubecc run: ") }

// NewNamedLog writes lines that start with prefix to w.
func NewNamedLog(w io.Writer, prefix string) *Log {
	return &Log{w: w, prefix: prefix, start: time.Now()}
}

// Printf writes one line of kubecc's own.
func (l *Log) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.w, l.prefix+format+"\n", args...)
}

// Chaincode writes one line of the chaincode's log.
func (l *Log) Chaincode(name, line string) { l.Raw("chaincode " + name + ": " + line) }

// Raw writes one line as it is.
func (l *Log) Raw(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintln(l.w, line)
}

// Restart makes phase times count from now (a new instance of a serverless launch).
func (l *Log) Restart() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start = time.Now()
}

// Elapsed is the time since the phase clock started.
func (l *Log) Elapsed() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.start).Round(time.Millisecond).String()
}
