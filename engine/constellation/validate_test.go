package constellation

import (
	"strings"
	"testing"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"256M", 256 << 20, ""},
		{"256m", 256 << 20, ""},
		{"2G", 2 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"512MiB", 512 << 20, ""},
		{"64KiB", 64 << 10, ""},
		{"1K", 1024, ""},
		{"1T", 1 << 40, ""},
		{"1TiB", 1 << 40, ""},
		{"0.5G", 1 << 29, ""},
		{"1024", 1024, ""},
		{"100b", 100, ""},
		{"1gb", 1 << 30, ""},
		{"", 0, `invalid size ""`},
		{"M", 0, `invalid size "M"`},
		{"0", 0, `invalid size "0": out of range`},
		{"12X", 0, `invalid size "12X": unknown unit "X"`},
		{"1ib", 0, `invalid size "1ib": unknown unit "ib"`},
		{"1.2.3G", 0, `invalid size "1.2.3G"`},
		{"99999999999T", 0, `invalid size "99999999999T": out of range`},
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseMemory(%q) = %d, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want Port
		err  string
	}{
		{"8080:80", Port{Host: 8080, Guest: 80, Protocol: "tcp"}, ""},
		{"53:53/udp", Port{Host: 53, Guest: 53, Protocol: "udp"}, ""},
		{"127.0.0.1:8443:443/tcp", Port{HostIP: "127.0.0.1", Host: 8443, Guest: 443, Protocol: "tcp"}, ""},
		{"[::1]:80:80", Port{HostIP: "::1", Host: 80, Guest: 80, Protocol: "tcp"}, ""},
		{"80", Port{}, "want host:guest"},
		{"80:80/sctp", Port{}, "protocol must be tcp or udp"},
		{"0:80", Port{}, `host port "0" is not a number`},
		{"a:80", Port{}, `host port "a" is not a number`},
		{"1.2.3:80:80", Port{}, `invalid address "1.2.3"`},
		{"[::1:80:80", Port{}, "unterminated [ipv6] address"},
		{"8000-8010:8000-8010", Port{}, `host port "8000-8010" is not a number`},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePort(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestValidateWithoutPositions(t *testing.T) {
	// A File built in code has no positions: errors still name the path.
	f := &File{Containers: map[string]*Container{"web": {Image: ImageRef{Single: "i"}, Ports: []string{"x"}}}}
	err := f.Validate()
	if err == nil || err.Error() != `containers.web.ports[0]: port "x": want host:guest` {
		t.Fatalf("err = %v", err)
	}
	nilEntries := &File{Containers: map[string]*Container{"a": nil}, VMs: map[string]*VM{"b": nil}}
	if err := nilEntries.Validate(); err == nil {
		t.Fatal("nil entries validated")
	}
}
