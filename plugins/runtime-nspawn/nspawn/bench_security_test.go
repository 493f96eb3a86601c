package nspawn

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
)

// BenchmarkSecurityOverhead measures, in alternating pairs on the same
// rootfs and with Volt's init in both, start to first output of a container
// under the full policy (docker's capability set, no_new_privileges,
// Landlock default, docker's default seccomp profile from
// $VOLT_BENCH_SECCOMP) and of the same container without any (nspawn's
// capability set, no filters). bench/security.sh runs it.
func BenchmarkSecurityOverhead(b *testing.B) {
	needNspawn(b)
	path := os.Getenv("VOLT_BENCH_SECCOMP")
	if path == "" {
		b.Skip("VOLT_BENCH_SECCOMP (docker's resolved seccomp profile) not set: run bench/security.sh")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var scmp sdk.SeccompProfile
	if err := json.Unmarshal(raw, &scmp); err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(b.TempDir(), "rootfs")
	if err := testrootfs.Build(root); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt := New(Options{Init: os.Getenv("VOLT_BENCH_INIT")})
	if rt.voltInitHost() == "" {
		b.Skip("no volt-init: set VOLT_BENCH_INIT")
	}
	none := &sdk.WorkloadSecurity{Capabilities: nspawnDefaultCaps, AllowNewPrivileges: true}
	full := &sdk.WorkloadSecurity{Capabilities: sdk.DefaultCapabilities, Seccomp: &scmp, SeccompName: "default",
		Landlock: &sdk.LandlockPolicy{Execute: []string{"/"}, Write: []string{"/tmp", "/run", "/var/tmp", "/dev/null"}}, LandlockName: "default"}
	var plain, conf, over []float64
	for b.Loop() {
		p, _ := securedStart(b, ctx, rt, root, none)
		f, _ := securedStart(b, ctx, rt, root, full)
		plain, conf, over = append(plain, ms(p)), append(conf, ms(f)), append(over, ms(f-p))
	}
	b.ReportMetric(median(plain), "nopolicy-median-ms")
	b.ReportMetric(median(conf), "policy-median-ms")
	b.ReportMetric(median(over), "overhead-median-ms")
}

func securedStart(b *testing.B, ctx context.Context, rt *Runtime, root string, sec *sdk.WorkloadSecurity) (first, ret time.Duration) {
	b.Helper()
	return voltStartSpec(b, ctx, rt, sdk.WorkloadSpec{Name: uniqueName("sb"), Root: root, StateDir: filepath.Join(b.TempDir(), "state"),
		Command: []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}, Security: sec})
}
