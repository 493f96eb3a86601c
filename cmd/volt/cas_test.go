package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCASBundles builds a --cas bundle, checks it deeply, then imports it on
// another state root that fetches the object from `volt cas serve`.
func TestCASBundles(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	full := filepath.Join(e.dir, "full.vbundle")
	small := filepath.Join(e.dir, "small.vbundle")
	e.must("bundle", "create", stack, "-o", full)
	e.must("bundle", "create", stack, "--cas", "-o", small)
	fi, _ := os.Stat(full)
	si, _ := os.Stat(small)
	if si.Size() >= fi.Size() {
		t.Errorf("--cas bundle (%d bytes) is not smaller than the full one (%d)", si.Size(), fi.Size())
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("bundle mode = %v, want 0644", fi.Mode().Perm())
	}
	r := e.must("bundle", "verify", "--deep", small)
	if !strings.Contains(r.stdout, "CAS objects present and whole") {
		t.Errorf("verify --deep:\n%s", r.stdout)
	}
	var objs []struct{ Ref string }
	json.Unmarshal([]byte(e.must("cas", "ls", "-o", "json").stdout), &objs)
	if len(objs) != 1 || !strings.HasPrefix(objs[0].Ref, "stellarium://") {
		t.Fatalf("cas ls = %+v", objs)
	}

	// A second host: the object is missing, verify --deep says which.
	e2 := newEnv(t)
	if r := e2.run("bundle", "verify", "--deep", small); r.code != exitVerify || !strings.Contains(r.stdout, "object") {
		t.Errorf("verify --deep without the object: exit %d\n%s", r.code, r.stdout)
	}
	// Serve the first store and fetch from it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(voltBin, "cas", "serve", "--listen", addr)
	srv.Env = append(os.Environ(), e.vars...)
	stderr, _ := srv.StderrPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	sc := bufio.NewScanner(stderr)
	ready := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Serving") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("cas serve did not start")
	}
	e2.must("config", "set", "cas.remotes", "+=", "http://"+addr)
	out := filepath.Join(e2.dir, "image.tar.gz")
	e2.must("cas", "get", objs[0].Ref, "-o", out)
	want, _ := os.ReadFile(filepath.Join(stack, "images/web.tar.gz"))
	got, _ := os.ReadFile(out)
	if string(want) != string(got) {
		t.Errorf("cas get returned %d bytes, want the %d-byte image", len(got), len(want))
	}
	e2.must("bundle", "verify", "--deep", small)

	// gc keeps what the cached bundle references and frees the rest.
	e.must("bundle", "create", stack, "--cas") // into $VOLT_ROOT/bundles
	r = e.must("cas", "gc", "--dry-run", "-o", "json")
	var gc struct{ ObjectsKept int }
	json.Unmarshal([]byte(r.stdout), &gc)
	if gc.ObjectsKept != 1 {
		t.Errorf("gc would not keep the object a cached bundle references: %s", r.stdout)
	}
	// Images of --cas bundles are pinned, so a bundle kept anywhere stays
	// deployable; once the pin and the cached bundle go, gc frees them.
	os.RemoveAll(filepath.Join(e.dir, "root", "bundles"))
	r = e.must("cas", "gc", "--dry-run", "-o", "json")
	json.Unmarshal([]byte(r.stdout), &gc)
	if gc.ObjectsKept != 1 {
		t.Errorf("gc would drop a pinned object: %s", r.stdout)
	}
	var info struct{ Pins []string }
	json.Unmarshal([]byte(e.must("cas", "stat", objs[0].Ref, "-o", "json").stdout), &info)
	if len(info.Pins) != 1 || !strings.HasPrefix(info.Pins[0], "bundle-demo-") {
		t.Fatalf("pins = %v", info.Pins)
	}
	e.must("cas", "pin", info.Pins[0], "--remove")
	e.must("cas", "gc")
	json.Unmarshal([]byte(e.must("cas", "ls", "-o", "json").stdout), &objs)
	if len(objs) != 0 {
		t.Errorf("gc left unreferenced objects: %+v", objs)
	}
	if r := e.run("cas", "get", "stellarium://"+strings.Repeat("0", 64), "-o", filepath.Join(e.dir, "x")); r.code != exitNotFound {
		t.Errorf("cas get of a missing object: exit %d %s", r.code, r.stderr)
	}
}

// TestCASGetToStdout: -o - streams the object to standard output; a store
// whose chunk was altered makes the stream end with a verification failure.
func TestCASGetToStdout(t *testing.T) {
	e := newEnv(t)
	data := strings.Repeat("stellarium stdout test line\n", 40000) // about 1.1 MB, several chunks
	in := filepath.Join(e.dir, "in.txt")
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var put []struct{ Ref string }
	if err := json.Unmarshal([]byte(e.must("cas", "put", in, "-o", "json").stdout), &put); err != nil || len(put) != 1 {
		t.Fatalf("cas put -o json: %v %+v", err, put)
	}
	if r := e.must("cas", "get", put[0].Ref, "-o", "-"); r.stdout != data {
		t.Errorf("cas get -o - wrote %d bytes, want the %d put", len(r.stdout), len(data))
	}
	if r := e.run("cas", "get", put[0].Ref); r.code != exitUsage || !strings.Contains(r.stderr, "-o -") {
		t.Errorf("cas get without -o: exit %d\n%s", r.code, r.stderr)
	}
	// Alter one chunk in place (same size): the stream fails the check.
	packs, _ := filepath.Glob(filepath.Join(e.dir, "root", "cas", "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("want one pack file, found %v", packs)
	}
	b, _ := os.ReadFile(packs[0])
	b[0] ^= 0xff
	os.WriteFile(packs[0], b, 0o644)
	if r := e.run("cas", "get", put[0].Ref, "-o", "-"); r.code != exitVerify {
		t.Errorf("cas get -o - of a corrupted object: exit %d, want %d\n%s", r.code, exitVerify, r.stderr)
	}
}

// TestCASDamagedIndex: with an object's index emptied, `cas ls` says what
// it skipped, `cas verify` still checks (and counts) the stored chunks, and
// putting the file again rewrites the index. gc's JSON lists are [] when
// empty.
func TestCASDamagedIndex(t *testing.T) {
	e := newEnv(t)
	in := filepath.Join(e.dir, "in.bin")
	if err := os.WriteFile(in, []byte(strings.Repeat("volt cas damaged index test\n", 80000)), 0o644); err != nil {
		t.Fatal(err)
	}
	var put []struct {
		Ref    string
		Chunks int
	}
	json.Unmarshal([]byte(e.must("cas", "put", in, "-o", "json").stdout), &put)
	if len(put) != 1 || put[0].Chunks < 2 {
		t.Fatalf("cas put: %+v", put)
	}
	var gc struct{ ObjectsRemoved []string }
	r := e.must("cas", "gc", "--dry-run", "-o", "json")
	if json.Unmarshal([]byte(r.stdout), &gc); len(gc.ObjectsRemoved) != 1 {
		t.Fatalf("gc --dry-run: %s", r.stdout)
	}
	e.must("cas", "pin", "keep", put[0].Ref)
	if r := e.must("cas", "gc", "-o", "json"); !strings.Contains(r.stdout, `"objectsRemoved": []`) {
		t.Errorf("gc JSON with nothing removed:\n%s", r.stdout)
	}

	hex := strings.TrimPrefix(put[0].Ref, "stellarium://")
	idx := filepath.Join(e.dir, "root", "cas", "objects", hex[:2], hex+".idx")
	if err := os.WriteFile(idx, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.must("cas", "ls")
	if !strings.Contains(r.stderr, "skipping object "+put[0].Ref) || !strings.Contains(r.stderr, "invalid object index") || strings.Contains(r.stdout, put[0].Ref) {
		t.Errorf("cas ls with an empty index:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	// The data repeats, so the store holds fewer distinct chunks than the
	// index lists; a good verify after the re-put says how many.
	r = e.run("cas", "verify")
	m := regexp.MustCompile(`0 objects, ([1-9][0-9]*) chunks`).FindStringSubmatch(r.stdout)
	if r.code != exitVerify || m == nil {
		t.Errorf("cas verify with an empty index: exit %d\n%s", r.code, r.stdout)
	}
	r = e.must("cas", "put", in)
	if !strings.Contains(r.stderr, "Rewrote the damaged index of "+put[0].Ref) {
		t.Errorf("re-put did not say it rewrote the index: %s", r.stderr)
	}
	var objs []struct{ Ref string }
	json.Unmarshal([]byte(e.must("cas", "ls", "-o", "json").stdout), &objs)
	if len(objs) != 1 || objs[0].Ref != put[0].Ref {
		t.Fatalf("cas ls after re-put: %+v", objs)
	}
	r = e.must("cas", "verify", "--deep")
	if m == nil || !strings.Contains(r.stdout, fmt.Sprintf("1 objects, %s chunks", m[1])) {
		t.Errorf("cas verify after re-put:\n%s", r.stdout)
	}
}
