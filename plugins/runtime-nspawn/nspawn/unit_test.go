package nspawn

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/volt-cli/volt/sdk"
)

func TestParseStat(t *testing.T) {
	tail := " 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 100"
	tests := []struct {
		name    string
		in      string
		want    procInfo
		wantErr bool
	}{
		{"plain", "123 (sleep) S 99" + tail, procInfo{State: 'S', PPID: 99, StartTime: 4242}, false},
		{"spaces and parens in comm", "7 (a) b (c)) Z 1" + tail, procInfo{State: 'Z', PPID: 1, StartTime: 4242}, false},
		{"no comm", "123 sleep S 1 2 3", procInfo{}, true},
		{"short", "1 (x) S 1 2", procInfo{}, true},
		{"bad ppid", "1 (x) S x" + tail, procInfo{}, true},
		{"empty", "", procInfo{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat = %+v, %v; want %+v, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("123 (sleep) S 99 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 100"))
	f.Add([]byte("1 ()) R"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseStat(b)
	})
}

const noise = `Attempted to remove disk file system under "/run/systemd/nspawn/propagate/x", and we can't allow that.`

func TestNoiseFilter(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"passthrough", "a\nb\n", "a\nb\n"},
		{"noise line", "a\n" + noise + "\nb\n", "a\nb\n"},
		{"noise at end without newline", "a\n" + noise, "a\n"},
		{"halt message", "x\nTrying to halt container. Send SIGTERM again to trigger immediate termination.\n", "x\n"},
		{"partial line kept", "no newline", "no newline"},
		{"noise prefix mid-line is kept", "say " + noise + "\n", "say " + noise + "\n"},
		{"prefix of noise that is not noise", "Attempted to remove disk\n", "Attempted to remove disk\n"},
		{"crlf noise", noise + "\r\nok\r\n", "ok\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(filterBytes([]byte(tc.in))); got != tc.want {
				t.Errorf("whole: %q, want %q", got, tc.want)
			}
			// Byte by byte gives the same result.
			var out bytes.Buffer
			nf := newNoiseFilter(&out)
			r := iotest.OneByteReader(strings.NewReader(tc.in))
			buf := make([]byte, 1)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					_, _ = nf.Write(buf[:n])
				}
				if err != nil {
					break
				}
			}
			_ = nf.Flush()
			if out.String() != tc.want {
				t.Errorf("byte by byte: %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// TestNoiseFilterStreams checks that text which cannot be noise is written
// before its newline arrives (a progress line of a build step).
func TestNoiseFilterStreams(t *testing.T) {
	var out bytes.Buffer
	nf := newNoiseFilter(&out)
	_, _ = nf.Write([]byte("downloading... "))
	if out.String() != "downloading... " {
		t.Errorf("held %q, want it written at once", out.String())
	}
	_, _ = nf.Write([]byte("50%\n" + noise[:10]))
	if out.String() != "downloading... 50%\n" {
		t.Errorf("got %q", out.String())
	}
}

func FuzzNoiseFilter(f *testing.F) {
	f.Add([]byte("a\n"+noise+"\nb"), 3)
	f.Add([]byte(noise), 1)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		whole := filterBytes(b)
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		var out bytes.Buffer
		nf := newNoiseFilter(&out)
		_, _ = nf.Write(b[:split])
		_, _ = nf.Write(b[split:])
		_ = nf.Flush()
		if !bytes.Equal(whole, out.Bytes()) {
			t.Errorf("split at %d: %q, whole: %q", split, out.Bytes(), whole)
		}
		if len(whole) > len(b) {
			t.Errorf("filter grew the input")
		}
	})
}

func TestLastLine(t *testing.T) {
	if got := lastLine([]byte("x\n[FATAL tini (7)] exec /nope failed: No such file or directory\n\n")); got != "[FATAL tini (7)] exec /nope failed: No such file or directory" {
		t.Errorf("lastLine = %q", got)
	}
	if got := lastLine([]byte(strings.Repeat("y", 400))); len(got) != 300 || !strings.HasSuffix(got, "...") {
		t.Errorf("long line not shortened: %d bytes", len(got))
	}
}

func TestDecodeHandle(t *testing.T) {
	good := `{"v":1,"supervisor":"detached","machine":"web","stateDir":"/s","pid":10,"startTime":5,"supervisorPid":9,"supervisorStartTime":4,"logFile":"/etc/shadow"}`
	tests := []struct {
		name   string
		handle sdk.Handle
		want   error
	}{
		{"good", sdk.Handle{Name: "web", Data: []byte(good)}, nil},
		{"not json", sdk.Handle{Name: "web", Data: []byte("{")}, sdk.ErrInvalid},
		{"empty", sdk.Handle{}, sdk.ErrInvalid},
		{"other version", sdk.Handle{Data: []byte(`{"v":2}`)}, sdk.ErrInvalid},
		{"name mismatch", sdk.Handle{Name: "db", Data: []byte(good)}, sdk.ErrInvalid},
		{"bad machine", sdk.Handle{Data: []byte(`{"v":1,"supervisor":"detached","machine":"../x","stateDir":"/s","pid":1,"supervisorPid":1}`)}, sdk.ErrInvalid},
		{"relative state", sdk.Handle{Data: []byte(`{"v":1,"supervisor":"detached","machine":"x","stateDir":"s","pid":1,"supervisorPid":1}`)}, sdk.ErrInvalid},
		{"no pid", sdk.Handle{Data: []byte(`{"v":1,"supervisor":"detached","machine":"x","stateDir":"/s"}`)}, sdk.ErrInvalid},
		{"unknown supervisor", sdk.Handle{Data: []byte(`{"v":1,"supervisor":"docker","machine":"x","stateDir":"/s","pid":1}`)}, sdk.ErrInvalid},
		{"systemd without unit", sdk.Handle{Data: []byte(`{"v":1,"supervisor":"systemd","machine":"x","stateDir":"/s"}`)}, sdk.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hd, err := decodeHandle(tc.handle)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("decodeHandle = %v, want %v", err, tc.want)
			}
			// Paths come from the state dir, never from the data.
			if err == nil && hd.LogFile != "/s/console.log" {
				t.Errorf("log file %q taken from the handle", hd.LogFile)
			}
		})
	}
}

func FuzzDecodeHandle(f *testing.F) {
	f.Add("web", []byte(`{"v":1,"supervisor":"detached","machine":"web","stateDir":"/s","pid":10,"startTime":5,"supervisorPid":9}`))
	f.Add("", []byte(`{"v":1,"supervisor":"systemd","machine":"x","stateDir":"/s","unit":"u"}`))
	f.Add("x", []byte(`null`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		hd, err := decodeHandle(sdk.Handle{Name: name, Data: data})
		if err != nil {
			return
		}
		if validName(hd.Machine) != nil || !strings.HasPrefix(hd.StateDir, "/") {
			t.Errorf("accepted a bad handle: %+v", hd)
		}
		if _, err := encodeHandle(hd); err != nil {
			t.Errorf("re-encode: %v", err)
		}
	})
}

func TestWorkloadArgs(t *testing.T) {
	base := sdk.WorkloadSpec{Name: "web", Root: "/r", StateDir: "/s", Command: []string{"/app", "-x"}}
	common := []string{"-D", "/r", "--register=no", "--keep-unit", "-q", "--pipe", "--machine=web", "--kill-signal=SIGTERM"}
	const dflDrop = "CAP_AUDIT_CONTROL,CAP_DAC_READ_SEARCH,CAP_IPC_OWNER,CAP_LEASE,CAP_LINUX_IMMUTABLE,CAP_NET_BROADCAST,CAP_SYS_ADMIN,CAP_SYS_BOOT,CAP_SYS_NICE,CAP_SYS_PTRACE,CAP_SYS_RESOURCE,CAP_SYS_TTY_CONFIG"
	dfl := []string{"--drop-capability=" + dflDrop, "--no-new-privileges=yes"}
	with := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	voltInit := shim{kind: shimVoltInit, path: "/bin/volt-init"}
	tests := []struct {
		name   string
		mutate func(*sdk.WorkloadSpec)
		sh     shim
		want   []string
	}{
		{"minimal", func(*sdk.WorkloadSpec) {}, shim{}, with(common, dfl, []string{"--", "/app", "-x"})},
		{"with tini", func(*sdk.WorkloadSpec) {}, shim{kind: shimTini, path: "/usr/bin/tini"}, with(common, dfl, []string{"--", "/.volt/tini", "-g", "--", "/app", "-x"})},
		{"with volt-init", func(*sdk.WorkloadSpec) {}, voltInit, with(common, dfl, []string{
			"--bind-ro=/bin/volt-init:/.volt/init", "--bind-ro=/s/policy.json:/.volt/policy.json", "--bind=/s/enforced.json:/.volt/enforced.json",
			"--", "/.volt/init", "--policy", "/.volt/policy.json", "--report", "/.volt/enforced.json", "--", "/app", "-x"})},
		{"everything", func(s *sdk.WorkloadSpec) {
			s.NetworkMode = "none"
			s.WorkingDir = "/srv"
			s.User = "app"
			s.Env = map[string]string{"B": "2", "A": "1 2"}
			s.Mounts = []sdk.Mount{{Source: "/h:x", Target: "/c"}, {Source: "/ro", Target: "/ro", ReadOnly: true}}
		}, shim{}, with(common, []string{"--private-network", "--chdir=/srv", "--user=app", "--setenv=A=1 2", "--setenv=B=2",
			`--bind=/h\:x:/c`, "--bind-ro=/ro:/ro", "--drop-capability=" + dflDrop[:len("CAP_AUDIT_CONTROL,CAP_DAC_READ_SEARCH,CAP_IPC_OWNER,CAP_LEASE,CAP_LINUX_IMMUTABLE,")] + "CAP_NET_ADMIN," + dflDrop[len("CAP_AUDIT_CONTROL,CAP_DAC_READ_SEARCH,CAP_IPC_OWNER,CAP_LEASE,CAP_LINUX_IMMUTABLE,"):],
			"--no-new-privileges=yes", "--", "/app", "-x"})},
		{"host network", func(s *sdk.WorkloadSpec) { s.NetworkMode = "host" }, shim{}, with(common, dfl, []string{"--", "/app", "-x"})},
		{"cap add and drop, read-only, tmpfs, new privileges", func(s *sdk.WorkloadSpec) {
			s.Security = &sdk.WorkloadSecurity{Capabilities: []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"}, AllowNewPrivileges: true,
				ReadOnlyRoot: true, Tmpfs: []string{"/tmp", "/run:x"}}
		}, shim{}, with(common, []string{"--capability=CAP_NET_ADMIN",
			"--drop-capability=CAP_AUDIT_CONTROL,CAP_AUDIT_WRITE,CAP_DAC_OVERRIDE,CAP_DAC_READ_SEARCH,CAP_FOWNER,CAP_FSETID,CAP_IPC_OWNER,CAP_KILL,CAP_LEASE,CAP_LINUX_IMMUTABLE,CAP_MKNOD,CAP_NET_BIND_SERVICE,CAP_NET_BROADCAST,CAP_NET_RAW,CAP_SETFCAP,CAP_SETGID,CAP_SETPCAP,CAP_SETUID,CAP_SYS_ADMIN,CAP_SYS_BOOT,CAP_SYS_CHROOT,CAP_SYS_NICE,CAP_SYS_RESOURCE,CAP_SYS_TTY_CONFIG",
			"--read-only", "--tmpfs=/tmp", `--tmpfs=/run\:x`, "--", "/app", "-x"})},
		{"new privileges with a filter keeps SYS_ADMIN for the init", func(s *sdk.WorkloadSpec) {
			s.Security = &sdk.WorkloadSecurity{Capabilities: []string{}, AllowNewPrivileges: true, Landlock: &sdk.LandlockPolicy{}}
		}, voltInit, with(common, []string{
			"--drop-capability=CAP_AUDIT_CONTROL,CAP_AUDIT_WRITE,CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_DAC_READ_SEARCH,CAP_FOWNER,CAP_FSETID,CAP_IPC_OWNER,CAP_KILL,CAP_LEASE,CAP_LINUX_IMMUTABLE,CAP_MKNOD,CAP_NET_BIND_SERVICE,CAP_NET_BROADCAST,CAP_NET_RAW,CAP_SETFCAP,CAP_SETGID,CAP_SETUID,CAP_SYS_BOOT,CAP_SYS_CHROOT,CAP_SYS_NICE,CAP_SYS_PTRACE,CAP_SYS_RESOURCE,CAP_SYS_TTY_CONFIG",
			"--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self",
			"--bind-ro=/bin/volt-init:/.volt/init", "--bind-ro=/s/policy.json:/.volt/policy.json", "--bind=/s/enforced.json:/.volt/enforced.json",
			"--", "/.volt/init", "--policy", "/.volt/policy.json", "--report", "/.volt/enforced.json", "--", "/app", "-x"})},
		{"privileged", func(s *sdk.WorkloadSpec) {
			s.Security = &sdk.WorkloadSecurity{Privileged: true, AllowNewPrivileges: true}
		}, shim{}, with(common, []string{"--capability=all", "--", "/app", "-x"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mutate(&s)
			got, err := workloadArgs(s, tc.sh)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("workloadArgs =\n%q, %v\nwant\n%q", got, err, tc.want)
			}
		})
	}
}

func TestWorkloadArgsRefusesDamagedSecurity(t *testing.T) {
	base := sdk.WorkloadSpec{Name: "web", Root: "/r", StateDir: "/s", Command: []string{"/app"}}
	for name, sec := range map[string]*sdk.WorkloadSecurity{
		"seccomp named but missing":  {SeccompName: "default"},
		"landlock named but missing": {LandlockName: "strict"},
		"relative tmpfs":             {Tmpfs: []string{"tmp"}},
		"unknown capability":         {Capabilities: []string{"CAP_FLY"}},
	} {
		s := base
		s.Security = sec
		if _, err := workloadArgs(s, shim{}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestParseNspawnVersion(t *testing.T) {
	for in, want := range map[string]string{
		"systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT": "252",
		"systemd 256\n": "256",
		"":              "unknown",
		"nspawn 1":      "unknown",
	} {
		if got := parseNspawnVersion([]byte(in)); got != want {
			t.Errorf("parseNspawnVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSigState(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want sigState
	}{
		{"nspawn before exec", "Name:\tsystemd-nspawn\nSigBlk:\t0000000008014002\nSigIgn:\t0000000000001006\n", sigState{Name: "systemd-nspawn", TermHandled: true}},
		{"tini in sigtimedwait", "Name:\ttini\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000300000\nSigCgt:\t0\n", sigState{Name: "tini", TiniReady: true, ExecComplete: true}},
		{"payload catching TERM", "Name:\tapp\nSigCgt:\t0000000000004000\n", sigState{Name: "app", TermHandled: true, ExecComplete: true}},
		{"garbage", "Name\nSigBlk:\tzz\n", sigState{}},
	}
	for _, tc := range tests {
		if got := parseSigState([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: parseSigState = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
