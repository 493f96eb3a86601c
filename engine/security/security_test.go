package security

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/sdk"
)

func TestCapSet(t *testing.T) {
	without := func(c string) []string {
		var out []string
		for _, x := range sdk.DefaultCapabilities {
			if x != c {
				out = append(out, x)
			}
		}
		slices.Sort(out)
		return out
	}
	sorted := slices.Sorted(slices.Values(sdk.DefaultCapabilities))
	tests := []struct {
		name      string
		add, drop []string
		want      []string
		err       string
	}{
		{"docker default", nil, nil, sorted, ""},
		{"drop one", nil, []string{"net_raw"}, without("CAP_NET_RAW"), ""},
		{"drop all, add one", []string{"NET_ADMIN"}, []string{"ALL"}, []string{"CAP_NET_ADMIN"}, ""},
		{"CAP_ prefix", []string{"CAP_SYS_PTRACE"}, []string{"all"}, []string{"CAP_SYS_PTRACE"}, ""},
		{"unknown", []string{"NET_ADMN"}, nil, nil, `cap_add: unknown capability "NET_ADMN" (did you mean NET_ADMIN?)`},
		{"unknown drop", nil, []string{"FLY"}, nil, `cap_drop: unknown capability "FLY"`},
	}
	for _, tc := range tests {
		got, err := CapSet(tc.add, tc.drop)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: CapSet = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_WHATEVER"}]}`), 0o644)
	junk := filepath.Join(dir, "junk.json")
	os.WriteFile(junk, []byte(`{defaultAction`), 0o644)
	profiles := filepath.Join(dir, "profiles")
	os.MkdirAll(profiles, 0o755)
	os.WriteFile(filepath.Join(profiles, "web.yaml"), []byte("fs_execute: [/]\nfs_write: [/srv]\nnet_connect: [5432]\n"), 0o644)
	f := false
	tests := []struct {
		name  string
		c     constellation.Container
		opts  Options
		check func(*sdk.WorkloadSecurity) bool
		err   string
		warn  string
	}{
		{"defaults", constellation.Container{}, Options{}, func(s *sdk.WorkloadSecurity) bool {
			return s.Seccomp != nil && s.SeccompName == "default" && s.Landlock == nil && !s.AllowNewPrivileges && len(s.Capabilities) == len(sdk.DefaultCapabilities)
		}, "", ""},
		{"privileged refused", constellation.Container{Privileged: true}, Options{}, nil, "import with --allow-privileged", ""},
		{"privileged allowed", constellation.Container{Privileged: true}, Options{AllowPrivileged: true}, func(s *sdk.WorkloadSecurity) bool {
			return s.Privileged && s.Seccomp == nil && s.AllowNewPrivileges && len(s.Capabilities) == len(Capabilities)
		}, "", ""},
		{"unconfined, new privileges", constellation.Container{Security: &constellation.Security{Seccomp: "unconfined", NoNewPrivileges: &f}}, Options{}, func(s *sdk.WorkloadSecurity) bool {
			return s.Seccomp == nil && s.AllowNewPrivileges
		}, "", ""},
		{"custom seccomp", constellation.Container{Security: &constellation.Security{Seccomp: "good.json"}}, Options{BaseDir: dir}, func(s *sdk.WorkloadSecurity) bool {
			return s.Seccomp != nil && s.SeccompName == "good.json" && len(s.Seccomp.Syscalls) == 1
		}, "", ""},
		{"bad seccomp action", constellation.Container{Security: &constellation.Security{Seccomp: bad}}, Options{}, nil, "SCMP_ACT_WHATEVER", ""},
		{"unparsable seccomp", constellation.Container{Security: &constellation.Security{Seccomp: junk}}, Options{}, nil, "not a docker seccomp profile", ""},
		{"missing seccomp", constellation.Container{Security: &constellation.Security{Seccomp: "/nope.json"}}, Options{}, nil, "want default, unconfined or the path", ""},
		{"landlock default", constellation.Container{Tmpfs: []string{"/cache"}, Security: &constellation.Security{Landlock: "default", Writable: []string{"/var/lib/app"}}}, Options{LandlockABI: 7}, func(s *sdk.WorkloadSecurity) bool {
			w := s.Landlock.Write
			return slices.Contains(w, "/tmp") && slices.Contains(w, "/cache") && slices.Contains(w, "/data") && !slices.Contains(w, "/ro") && slices.Contains(w, "/var/lib/app") && !s.Landlock.RestrictNet
		}, "", ""},
		{"strict binds published ports", constellation.Container{Ports: []string{"8080:80", "127.0.0.1:9000:9090/tcp", "53:53/udp"}, Security: &constellation.Security{Landlock: "strict"}}, Options{LandlockABI: 7}, func(s *sdk.WorkloadSecurity) bool {
			return s.Landlock.RestrictNet && reflect.DeepEqual(s.Landlock.NetBind, []uint16{80, 9090})
		}, "", ""},
		{"strict on an old kernel", constellation.Container{Security: &constellation.Security{Landlock: "strict"}}, Options{LandlockABI: 3}, nil, "needs Landlock ABI 4", ""},
		{"strict best effort", constellation.Container{Security: &constellation.Security{Landlock: "strict"}}, Options{LandlockABI: 3, BestEffort: true}, func(s *sdk.WorkloadSecurity) bool { return s.Landlock != nil }, "", "TCP rules will not be enforced"},
		{"no landlock at all", constellation.Container{Security: &constellation.Security{Landlock: "default"}}, Options{LandlockABI: -1}, nil, "this kernel has no Landlock", ""},
		{"custom profile", constellation.Container{Security: &constellation.Security{Landlock: "web"}}, Options{LandlockABI: 7, ProfileDirs: []string{profiles}}, func(s *sdk.WorkloadSecurity) bool {
			return s.Landlock.RestrictNet && reflect.DeepEqual(s.Landlock.NetConnect, []uint16{5432}) && slices.Contains(s.Landlock.Write, "/srv")
		}, "", ""},
		{"inline policy", constellation.Container{Security: &constellation.Security{Landlock: constellation.LandlockInline,
			LandlockRules: &constellation.LandlockRules{FSExecute: []string{"/"}, FSWrite: []string{"/srv"}, NetConnect: []int{5432}}}}, Options{LandlockABI: 7}, func(s *sdk.WorkloadSecurity) bool {
			return s.LandlockName == "inline" && s.Landlock.RestrictNet && slices.Contains(s.Landlock.Write, "/srv") && reflect.DeepEqual(s.Landlock.NetConnect, []uint16{5432})
		}, "", ""},
		{"inline relative path", constellation.Container{Security: &constellation.Security{Landlock: constellation.LandlockInline,
			LandlockRules: &constellation.LandlockRules{FSWrite: []string{"srv"}}}}, Options{LandlockABI: 7}, nil, `"srv" is not an absolute path`, ""},
		{"unknown profile", constellation.Container{Security: &constellation.Security{Landlock: "nope"}}, Options{ProfileDirs: []string{profiles}}, nil, `landlock profile "nope" not found`, ""},
		{"bad tmpfs", constellation.Container{Tmpfs: []string{"tmp"}}, Options{}, nil, "want an absolute container path", ""},
		{"unknown capability", constellation.Container{CapDrop: []string{"NET_RAWW"}}, Options{}, nil, "did you mean NET_RAW", ""},
	}
	mounts := []sdk.Mount{{Source: "/v", Target: "/data"}, {Source: "/r", Target: "/ro", ReadOnly: true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var warns []string
			tc.opts.Warn = func(s string) { warns = append(warns, s) }
			c := tc.c
			got, err := Resolve("api", &c, mounts, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrPolicy) || !strings.HasPrefix(err.Error(), "service api: ") {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(got) {
				t.Fatalf("Resolve = %+v, %v", got, err)
			}
			if tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)) {
				t.Errorf("warnings = %q, want %q", warns, tc.warn)
			}
		})
	}
}

func TestDefaultSeccompFollowsCapabilities(t *testing.T) {
	names := func(p *sdk.SeccompProfile) []string {
		var out []string
		for _, r := range p.Syscalls {
			if r.Action == "SCMP_ACT_ALLOW" && len(r.Args) == 0 {
				out = append(out, r.Names...)
			}
		}
		return out
	}
	plain, err := DefaultSeccomp(sdk.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := DefaultSeccomp(append(slices.Clone(sdk.DefaultCapabilities), "CAP_SYS_ADMIN"))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(plain), "mount") || !slices.Contains(names(admin), "mount") {
		t.Errorf("mount allowed: default caps %v, with SYS_ADMIN %v", slices.Contains(names(plain), "mount"), slices.Contains(names(admin), "mount"))
	}
	if plain.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("default action %q", plain.DefaultAction)
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		in   string
		want sdk.LandlockPolicy
		err  string
	}{
		{"fs_read: [/etc]\nfs_write: [/srv]\nfs_execute: [/usr]\n", sdk.LandlockPolicy{Read: []string{"/etc"}, Write: []string{"/srv"}, Execute: []string{"/usr"}}, ""},
		{`{"fs_execute": ["/"], "net_bind": [8080]}`, sdk.LandlockPolicy{Execute: []string{"/"}, NetBind: []uint16{8080}, RestrictNet: true}, ""},
		{"restrict_net: true\n", sdk.LandlockPolicy{RestrictNet: true}, ""},
		{"fs_read: [etc]\n", sdk.LandlockPolicy{}, `"etc" is not an absolute path`},
		{"fs_raed: [/etc]\n", sdk.LandlockPolicy{}, "field fs_raed not found"},
		{"net_bind: [70000]\n", sdk.LandlockPolicy{}, "cannot unmarshal"},
		{"net_bind: [0]\n", sdk.LandlockPolicy{}, "port 0"},
		{"", sdk.LandlockPolicy{}, "empty file"},
	}
	for _, tc := range tests {
		p, err := ParseProfile("t", []byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseProfile(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(p.Policy, tc.want) {
			t.Errorf("ParseProfile(%q) = %+v, %v; want %+v", tc.in, p, err, tc.want)
		}
	}
}

func TestListProfiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("fs_read: [/]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, "default.yaml"), []byte("fs_read: [/]\n"), 0o644) // built-ins win
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	ps, errs := ListProfiles([]string{dir})
	var names []string
	for _, p := range ps {
		names = append(names, p.Name+":"+p.Source)
	}
	want := []string{"a:" + filepath.Join(dir, "a.yaml"), "default:built-in", "none:built-in", "strict:built-in"}
	if !reflect.DeepEqual(names, want) || len(errs) != 1 {
		t.Errorf("ListProfiles = %v, %v; want %v and one error", names, errs, want)
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("fs_read: [/etc]\nnet_bind: [80]\n"))
	f.Add([]byte(`{"fs_write": ["/x"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile("f", b)
		if err == nil {
			for _, x := range append(append(p.Policy.Read, p.Policy.Write...), p.Policy.Execute...) {
				if !strings.HasPrefix(x, "/") {
					t.Fatalf("relative path %q accepted", x)
				}
			}
		}
	})
}

func FuzzLoadSeccomp(f *testing.F) {
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadSeccomp(b, sdk.DefaultCapabilities)
		if err == nil {
			if err := p.Compile(); err != nil {
				t.Fatalf("accepted a profile that does not compile: %v", err)
			}
		}
	})
}
