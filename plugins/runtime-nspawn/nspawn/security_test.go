package nspawn

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/volt-cli/volt/sdk"
)

var (
	voltInitOnce sync.Once
	voltInitBin  string
	voltInitErr  error
)

// voltInit builds cmd/volt-init (static) once per test run.
func voltInit(t *testing.T) string {
	t.Helper()
	voltInitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "volt-init-test-")
		if err != nil {
			voltInitErr = err
			return
		}
		voltInitBin = filepath.Join(dir, "volt-init")
		cmd := exec.Command("go", "build", "-o", voltInitBin, "github.com/volt-cli/volt/cmd/volt-init")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			voltInitErr = &buildError{out: string(out), err: err}
		}
	})
	if voltInitErr != nil {
		t.Fatalf("build volt-init: %v", voltInitErr)
	}
	return voltInitBin
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// secFixture is a fixture whose runtime uses Volt's init.
func secFixture(t *testing.T, prefix, script string, sec *sdk.WorkloadSecurity) *fixture {
	t.Helper()
	f := newFixture(t, prefix, "/bin/sh", "-c", script+"; echo DONE; exec sleep 60")
	f.rt = New(Options{Init: voltInit(t)})
	f.spec.Security = sec
	return f
}

// outcome runs script in a container and returns its log once it printed DONE.
func outcome(t *testing.T, prefix, script string, sec *sdk.WorkloadSecurity) (*fixture, sdk.Handle, string) {
	t.Helper()
	f := secFixture(t, prefix, script, sec)
	h := f.start(t)
	return f, h, f.waitLog(t, h, "DONE")
}

const probe = `try() { if "$@" >/dev/null 2>&1; then echo "$1:ok"; else echo "$1:denied"; fi; }`

func TestSecurityDefaultsForbidMount(t *testing.T) {
	_, _, log := outcome(t, "sec-mount", probe+`; try mount -t tmpfs none /mnt`, nil)
	if !strings.Contains(log, "mount:denied") {
		t.Fatalf("mount inside a default container was not refused:\n%s", log)
	}
}

func TestSecurityCapDropNetRaw(t *testing.T) {
	ping := probe + `; try ping -c 1 -W 2 127.0.0.1`
	_, _, dfl := outcome(t, "sec-ping", ping, &sdk.WorkloadSecurity{Capabilities: sdk.DefaultCapabilities})
	if !strings.Contains(dfl, "ping:ok") {
		t.Fatalf("ping with docker's default capabilities failed:\n%s", dfl)
	}
	var noRaw []string
	for _, c := range sdk.DefaultCapabilities {
		if c != "CAP_NET_RAW" {
			noRaw = append(noRaw, c)
		}
	}
	_, _, dropped := outcome(t, "sec-noraw", ping, &sdk.WorkloadSecurity{Capabilities: noRaw})
	if !strings.Contains(dropped, "ping:denied") {
		t.Fatalf("ping without CAP_NET_RAW worked:\n%s", dropped)
	}
}

func TestSecurityReadOnlyRootWithTmpfs(t *testing.T) {
	_, _, log := outcome(t, "sec-ro", probe+`; try touch /etc/x; try mkdir /scratch/d`,
		&sdk.WorkloadSecurity{ReadOnlyRoot: true, Tmpfs: []string{"/scratch"}})
	if !strings.Contains(log, "touch:denied") || !strings.Contains(log, "mkdir:ok") {
		t.Fatalf("read_only root: want /etc read-only and /scratch writable:\n%s", log)
	}
}

// landlockDefault is the default profile as engine/security builds it,
// with one volume.
func landlockDefault(vol string) *sdk.LandlockPolicy {
	return &sdk.LandlockPolicy{Execute: []string{"/"}, Write: []string{"/tmp", "/run", "/var/tmp", "/dev/null", vol}}
}

func TestSecurityLandlock(t *testing.T) {
	if sdk.LandlockABI() == 0 {
		t.Skip("kernel without Landlock")
	}
	vol := t.TempDir()
	script := probe + `; try touch /etc/x; try touch /tmp/x; try touch /data/x`
	f := secFixture(t, "sec-ll", script, &sdk.WorkloadSecurity{Landlock: landlockDefault("/data"), LandlockName: "default"})
	f.spec.Mounts = []sdk.Mount{{Source: vol, Target: "/data"}}
	h := f.start(t)
	log := f.waitLog(t, h, "DONE")
	// touch reports its own name for each probe: check them in order.
	if got := probeResults(log); got != "touch:denied touch:ok touch:ok" {
		t.Fatalf("landlock default: want /etc denied, /tmp and the volume writable, got %q:\n%s", got, log)
	}
	if _, err := os.Stat(filepath.Join(vol, "x")); err != nil {
		t.Errorf("the volume write did not reach the host: %v", err)
	}
	// exec enters under the same policy.
	var out strings.Builder
	code, err := f.rt.Exec(f.ctx, h, sdk.ExecRequest{Command: []string{"/bin/sh", "-c", "touch /etc/y || echo EXEC-DENIED; touch /tmp/y && echo EXEC-TMP"}, Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "EXEC-DENIED") || !strings.Contains(out.String(), "EXEC-TMP") {
		t.Errorf("exec was not confined like the workload:\n%s", out.String())
	}
	out.Reset()
	if code, err := f.rt.Exec(f.ctx, h, sdk.ExecRequest{Command: []string{"mount", "-t", "tmpfs", "none", "/mnt"}, Stdout: &out, Stderr: &out}); err != nil || code == 0 {
		t.Errorf("mount in exec: code %d, %v (want a failure)\n%s", code, err, out.String())
	}
	st, err := f.rt.Inspect(f.ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var rep sdk.InitReport
	if err := json.Unmarshal([]byte(st.Detail["security.enforced"]), &rep); err != nil {
		t.Fatalf("security.enforced = %q: %v", st.Detail["security.enforced"], err)
	}
	if rep.Landlock == nil || !rep.Landlock.Enforced || rep.Landlock.ABI < 1 || !rep.NoNewPrivileges || strings.Contains(strings.Join(rep.Capabilities, ","), "SYS_ADMIN") {
		t.Errorf("enforced report = %+v", rep)
	}
	if st.Detail["security.landlock"] != "default" {
		t.Errorf("security.landlock = %q", st.Detail["security.landlock"])
	}
}

func TestSecurityLandlockNone(t *testing.T) {
	_, _, log := outcome(t, "sec-none", probe+`; try touch /etc/x`, &sdk.WorkloadSecurity{LandlockName: "none"})
	if !strings.Contains(log, "touch:ok") {
		t.Fatalf("without Landlock writing /etc failed:\n%s", log)
	}
}

func TestSecuritySeccompFilter(t *testing.T) {
	deny := &sdk.SeccompProfile{DefaultAction: "SCMP_ACT_ALLOW", Syscalls: []sdk.SeccompRule{{Names: []string{"mkdir", "mkdirat"}, Action: "SCMP_ACT_ERRNO"}}}
	_, h, log := outcome(t, "sec-scmp", probe+`; try mkdir /tmp/d; try touch /tmp/f`, &sdk.WorkloadSecurity{Seccomp: deny, SeccompName: "test"})
	if got := probeResults(log); got != "mkdir:denied touch:ok" {
		t.Fatalf("seccomp: want mkdir denied and touch allowed, got %q:\n%s", got, log)
	}
	_ = h
}

// probeResults lists the "name:ok|denied" lines of a log in order.
func probeResults(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, ":ok") || strings.HasSuffix(l, ":denied") {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

func TestSecurityLandlockStrictTCP(t *testing.T) {
	if sdk.LandlockABI() < sdk.LandlockMinNetABI {
		t.Skip("kernel without Landlock TCP rules")
	}
	// A bind that is allowed blocks in listen until timeout kills it (143);
	// a refused one fails at once.
	script := `timeout 1 nc -l -p 47311 127.0.0.1; echo allowed-bind:$?; timeout 1 nc -l -p 47312 127.0.0.1; echo other-bind:$?`
	pol := landlockDefault("/data")
	pol.RestrictNet, pol.NetBind = true, []uint16{47311}
	_, _, log := outcome(t, "sec-tcp", script, &sdk.WorkloadSecurity{Landlock: pol, LandlockName: "strict"})
	if !strings.Contains(log, "allowed-bind:143") || strings.Contains(log, "other-bind:143") || !strings.Contains(log, "other-bind:") {
		t.Fatalf("strict: want port 47311 bindable and 47312 refused:\n%s", log)
	}
}
