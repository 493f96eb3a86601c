package constellation

import (
	"strings"
	"testing"
)

func TestMarshalSecurityRoundTrip(t *testing.T) {
	f := false
	in := &File{Version: "1", Containers: map[string]*Container{"api": {Image: ImageRef{Single: "images/a"}, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"},
		ReadOnly: true, Tmpfs: []string{"/tmp"}, Privileged: true, Security: &Security{Landlock: "strict", Seccomp: "unconfined", NoNewPrivileges: &f, Writable: []string{"/srv"}}}}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Parse("c.yaml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	c := out.Containers["api"]
	if !c.ReadOnly || !c.Privileged || len(c.CapAdd) != 1 || len(c.CapDrop) != 1 || len(c.Tmpfs) != 1 || c.Security.NoNewPrivileges == nil || *c.Security.NoNewPrivileges || c.Security.Seccomp != "unconfined" || !strings.Contains(string(b), "cap_drop") {
		t.Errorf("round trip lost security settings:\n%s", b)
	}
}

func TestInlineLandlock(t *testing.T) {
	src := "containers:\n  api:\n    image: i\n    security:\n      landlock: {fs_execute: [/], fs_write: [/srv], net_bind: [8080]}\n"
	f, err := Parse("c.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Containers["api"].Security
	if s.Landlock != LandlockInline || s.LandlockRules == nil || s.LandlockRules.FSWrite[0] != "/srv" || s.LandlockRules.NetBind[0] != 8080 {
		t.Fatalf("inline landlock = %+v %+v", s, s.LandlockRules)
	}
	b, err := Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("c.yaml", b)
	if err != nil || again.Containers["api"].Security.LandlockRules == nil {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
	for _, bad := range []struct{ in, want string }{
		{"{fs_raed: [/]}", `unknown key "fs_raed"`},
		{"{net_bind: [70000]}", "not a TCP port"},
	} {
		_, err := Parse("c.yaml", []byte(strings.Replace(src, "{fs_execute: [/], fs_write: [/srv], net_bind: [8080]}", bad.in, 1)))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want %q", bad.in, err, bad.want)
		}
	}
	var js Security
	if err := js.UnmarshalJSON([]byte(`{"landlock": {"fs_read": ["/etc"]}, "seccomp": "default"}`)); err != nil || js.LandlockRules == nil || js.Landlock != LandlockInline {
		t.Errorf("JSON inline: %+v, %v", js, err)
	}
	if err := js.UnmarshalJSON([]byte(`{"landlock": "strict", "bogus": 1}`)); err == nil {
		t.Errorf("JSON with an unknown key accepted")
	}
}
