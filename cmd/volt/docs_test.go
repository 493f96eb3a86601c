package main

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md")

// TestCLIDocs fails when docs/cli.md no longer matches the commands' help.
func TestCLIDocs(t *testing.T) {
	var buf bytes.Buffer
	writeCLIDocs(&buf, rootCommand())
	const path = "../../docs/cli.md"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, buf.Bytes()) {
		t.Fatalf("docs/cli.md is stale: run go test ./cmd/volt -run TestCLIDocs -update")
	}
}
