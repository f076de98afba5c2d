package tail

import (
	"fmt"
	"strings"
	"testing"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := &Buffer{Max: 64}
	for i := 0; i < 100; i++ {
		_, _ = fmt.Fprintf(b, "line %d\n", i)
	}
	if len(b.Bytes()) != 64 || !strings.HasSuffix(string(b.Bytes()), "line 99\n") {
		t.Fatalf("kept %q", b.Bytes())
	}
	if got := b.LastLine(); got != "line 99" {
		t.Fatalf("last line %q", got)
	}
	if got := (&Buffer{Max: 8}).LastLine(); got != "" {
		t.Fatalf("empty buffer: %q", got)
	}
}
