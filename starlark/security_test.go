package starlark

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestContainerSecurityArguments(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	os.WriteFile(filepath.Join(root, "images/app.tar"), []byte("not really a tar"), 0o644)
	os.WriteFile(filepath.Join(root, "volt.star"), []byte(`bundle(name = "s", version = "1.0.0", platforms = ["linux/amd64"])
container("api", image = "images/app.tar", cap_add = ["NET_ADMIN"], cap_drop = ["ALL"], read_only = True,
    tmpfs = ["/tmp"], security = {"landlock": "strict", "seccomp": "unconfined", "no_new_privileges": False, "writable": ["/srv"]})
`), 0o644)
	p, err := Eval(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	c := p.Constellation.Containers["api"]
	if c == nil || !reflect.DeepEqual(c.CapAdd, []string{"NET_ADMIN"}) || !reflect.DeepEqual(c.CapDrop, []string{"ALL"}) || !c.ReadOnly ||
		!reflect.DeepEqual(c.Tmpfs, []string{"/tmp"}) || c.Privileged || c.Security == nil || c.Security.Landlock != "strict" ||
		c.Security.Seccomp != "unconfined" || c.Security.NoNewPrivileges == nil || *c.Security.NoNewPrivileges || !reflect.DeepEqual(c.Security.Writable, []string{"/srv"}) {
		t.Errorf("container = %+v, security %+v", c, c.Security)
	}
}
