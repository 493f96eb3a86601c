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
