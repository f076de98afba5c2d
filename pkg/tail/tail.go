// Package tail keeps the end of a command's output, so that an error can quote the
// lines that name the failure without holding all of it.
package tail

import (
	"bytes"
	"strings"
)

// Buffer is an io.Writer that keeps the last Max bytes written.
type Buffer struct {
	Max int
	b   []byte
}

func (t *Buffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// Bytes is what is kept.
func (t *Buffer) Bytes() []byte { return t.b }

// LastLine is the last line that is not blank.
func (t *Buffer) LastLine() string {
	lines := bytes.Split(bytes.TrimSpace(t.b), []byte("\n"))
	return strings.TrimSpace(string(lines[len(lines)-1]))
}
