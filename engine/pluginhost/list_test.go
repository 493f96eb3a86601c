package pluginhost

import (
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	ps := []PluginInfo{
		{Name: "format-oci", Kind: "format", Version: "0.1.0", API: 1, Path: "/p/volt-plugin-format-oci",
			BLAKE3: "blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Healthy: true, Health: "formats: oci, docker-archive"},
		{Name: "runtime-qemu", Kind: "runtime", Version: "0.2.0", API: 1, Path: "/p/volt-plugin-runtime-qemu",
			BLAKE3: "blake3:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", Health: "qemu-system-x86_64 not found"},
		{Name: "broken", Path: "/p/volt-plugin-broken", Error: `plugin "broken": start: plugin exited`},
	}
	var b strings.Builder
	if err := WriteTable(&b, ps); err != nil {
		t.Fatal(err)
	}
	want := `NAME          KIND     VERSION  API  PATH                         BLAKE3        HEALTH
format-oci    format   0.1.0    1    /p/volt-plugin-format-oci    0123456789ab  ok: formats: oci, docker-archive
runtime-qemu  runtime  0.2.0    1    /p/volt-plugin-runtime-qemu  ffffffffffff  unhealthy: qemu-system-x86_64 not found
broken        -        -        -    /p/volt-plugin-broken        -             error: plugin "broken": start: plugin exited
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
