package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVMBesideContainer deploys the lab example — a VM booting a kernel
// directly (TCG) and a container that depends on it — and drives the VM
// through the CLI: serial log, console, graceful stop, start again.
func TestVMBesideContainer(t *testing.T) {
	needDeploy(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("boots a VM under TCG (slow); run without -short")
	}
	e := newEnv(t)
	stack := filepath.Join(e.dir, "lab")
	os.MkdirAll(stack, 0o755)
	compose, err := os.ReadFile("../../examples/vm/volt-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stack, "volt-compose.yaml"), compose, 0o644)
	// The VM image: kernel from Debian's package (cached), busybox initramfs.
	build := exec.Command("sh", "../../examples/vm/build-test-image.sh", filepath.Join(stack, "out"))
	if os.Getenv("VOLT_VM_CACHE") == "" {
		build.Env = append(os.Environ(), "VOLT_VM_CACHE=/var/cache/volt-test/kernel")
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build VM test image: %v\n%s", err, out)
	}
	if out, err := exec.Command("../../examples/busybox-rootfs.sh", filepath.Join(stack, "out/web.tar.gz")).CombinedOutput(); err != nil {
		t.Fatalf("busybox rootfs: %v\n%s", err, out)
	}

	b := filepath.Join(e.dir, "lab.vbundle")
	e.must("bundle", "create", stack, "-o", b)
	defer e.run("stack", "destroy", "lab")
	e.must("bundle", "import", b)

	var rows []struct{ Service, Type, Status, Reason string }
	json.Unmarshal([]byte(e.must("ps", "-a", "-o", "json").stdout), &rows)
	if len(rows) != 2 || rows[0].Service != "vm" || rows[0].Type != "vm" || rows[1].Service != "web" {
		t.Fatalf("ps = %+v, want vm (type vm) then web", rows)
	}
	waitLong(t, func() bool { return strings.Contains(e.run("logs", "lab/vm").stdout, "VOLT-VM-READY") }, "the guest's marker in volt logs")

	// The console: a command typed in reaches the guest's shell.
	con := exec.Command(voltBin, "vm", "console", "lab/vm")
	con.Env = append(os.Environ(), e.vars...)
	in, typed := io.Pipe()
	con.Stdin = in
	done := make(chan error, 1)
	go func() { done <- con.Run() }()
	typed.Write([]byte("echo console-$((40+2))\n"))
	waitLong(t, func() bool { return strings.Contains(e.run("logs", "lab/vm").stdout, "console-42") }, "console input echoed by the guest")
	typed.Close() // end of input detaches
	if err := <-done; err != nil {
		t.Errorf("vm console: %v", err)
	}

	// Graceful stop: the guest handles the ACPI power button.
	e.must("vm", "stop", "lab/vm")
	if r := e.must("vm", "list", "-a"); !strings.Contains(r.stdout, "stopped") {
		t.Errorf("after stop:\n%s", r.stdout)
	}
	if !strings.Contains(e.run("logs", "lab/vm").stdout, "VOLT-VM-POWEROFF") {
		t.Errorf("the guest did not power itself off (stop was not graceful)")
	}
	e.must("vm", "start", "lab/vm")
	waitLong(t, func() bool {
		json.Unmarshal([]byte(e.must("vm", "list", "-o", "json").stdout), &rows)
		return len(rows) == 1 && rows[0].Status == "running"
	}, "the VM running again")
	e.must("stack", "destroy", "lab")
}

// waitLong is waitFor with room for a TCG boot on a loaded machine.
func waitLong(t *testing.T, cond func() bool, what string) {
	t.Helper()
	waitWithin(t, 3*time.Minute, 250*time.Millisecond, cond, what)
}
