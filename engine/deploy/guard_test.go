package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/sdk"
)

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"/r/containers/a/rootfs", true},
		{"/r/x", true},
		{"/r", false},
		{"/r/", false},
		{"/r/../etc", false},
		{"/r/a/../../etc", false},
		{"/rx/a", false},
		{"relative/a", false},
		{"", false},
		{"/", false},
	} {
		if got := within("/r", tc.p); got != tc.want {
			t.Errorf("within(/r, %q) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// goodStack is what plan and keepHooks would write for stack s under root.
func goodStack(root string) *Stack {
	c := filepath.Join(root, "containers", "s-web")
	v := filepath.Join(root, "vms", "s-vm")
	return &Stack{Name: "s", Workloads: []Workload{
		{Name: "s-web", Type: bundle.TypeContainer, Spec: sdk.WorkloadSpec{Root: filepath.Join(c, "rootfs"), StateDir: filepath.Join(c, "run")}},
		{Name: "s-vm", Type: bundle.TypeVM, Spec: sdk.WorkloadSpec{Root: filepath.Join(v, "disk"), StateDir: filepath.Join(v, "run"), Image: filepath.Join(v, "disk", "disk.qcow2")}},
	}, Hooks: map[string]string{"post-destroy": filepath.Join(root, "stacks", "s", "hooks", "post-destroy.sh")}}
}

func TestStackCheck(t *testing.T) {
	root := "/var/lib/volt"
	if err := goodStack(root).check(root, "s"); err != nil {
		t.Fatalf("a stack Volt wrote fails its check: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Stack)
		want   string
	}{
		{"other name", func(s *Stack) { s.Name = "t" }, "directory of"},
		{"root outside", func(s *Stack) { s.Workloads[0].Spec.Root = "/etc" }, "root"},
		{"root up and out", func(s *Stack) { s.Workloads[0].Spec.Root = root + "/containers/s-web/../../../../etc/rootfs" }, "root"},
		{"other workload's root", func(s *Stack) { s.Workloads[0].Spec.Root = root + "/containers/other/rootfs" }, "root"},
		{"state dir outside", func(s *Stack) { s.Workloads[0].Spec.StateDir = "/tmp/run" }, "state dir"},
		{"name with slash", func(s *Stack) { s.Workloads[0].Name = "../x" }, "workload name"},
		{"name dot-dot", func(s *Stack) { s.Workloads[0].Name = ".." }, "workload name"},
		{"repeated name", func(s *Stack) { s.Workloads[1] = s.Workloads[0] }, "repeated"},
		{"unknown type", func(s *Stack) { s.Workloads[0].Type = "host" }, "type"},
		{"vm image outside", func(s *Stack) { s.Workloads[1].Spec.Image = "/dev/sda" }, "outside"},
		{"hook outside", func(s *Stack) { s.Hooks["post-destroy"] = "/tmp/evil.sh" }, "hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := goodStack(root)
			tc.mutate(s)
			if err := s.check(root, "s"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("check: err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStateFilesPrivate: stack.json and the workload records are 0600,
// and a stack.json that fails its checks is listed as corrupt.
func TestStateFilesPrivate(t *testing.T) {
	root := t.TempDir()
	s := goodStack(root)
	h := sdk.Handle{Name: "s-web", Data: []byte(`{}`)}
	s.Workloads[0].Handle = &h
	s.Workloads[0].Service = "web"
	s.Vars = map[string]string{"PASSWORD": "hunter2"}
	if err := os.MkdirAll(s.Workloads[0].Spec.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stackFile(root, "s"), filepath.Join(root, "containers", "s-web", recordName)} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", p, fi.Mode(), err)
		}
	}
	if rs := records(root, "s"); len(rs) != 1 || rs[0].Name != "s-web" || rs[0].Handle.Name != "s-web" {
		t.Errorf("records = %+v", rs)
	}
	if _, err := LoadStack(root, "s"); err != nil {
		t.Fatalf("LoadStack: %v", err)
	}
	s.Workloads[0].Spec.Root = "/"
	s.Save(root)
	st, errs := ListStacks(root)
	if len(errs) != 0 || len(st) != 1 || st[0].Phase != PhaseCorrupt || !strings.Contains(st[0].Problem, "root") {
		t.Errorf("ListStacks of a crafted stack = %+v, %v; want it listed as corrupt", st, errs)
	}
	if err := removeUnder(root, "/"); err == nil {
		t.Errorf("removeUnder(root, /) did not refuse")
	}
}
