package cas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		ok   bool
		want string
	}{
		{Scheme + hex, true, Scheme + hex},
		{"blake3:" + hex, true, Scheme + hex},
		{hex, false, ""},
		{Scheme + strings.ToUpper(hex), false, ""},
		{Scheme + hex[:62], false, ""},
		{Scheme + hex + "00", false, ""},
		{Scheme + strings.Repeat("zz", 32), false, ""},
		{"", false, ""},
		{"http://" + hex, false, ""},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.in)
		if tt.ok != (err == nil) {
			t.Errorf("ParseRef(%q): err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadRef) {
			t.Errorf("ParseRef(%q): %v does not wrap ErrBadRef", tt.in, err)
		}
		if tt.ok && r.String() != tt.want {
			t.Errorf("ParseRef(%q).String() = %q, want %q", tt.in, r.String(), tt.want)
		}
	}
	r, _ := ParseRef(Scheme + hex)
	if r.Digest() != "blake3:"+hex {
		t.Errorf("Digest() = %q", r.Digest())
	}
	b, _ := json.Marshal(map[string]Ref{"ref": r})
	var back map[string]Ref
	if err := json.Unmarshal(b, &back); err != nil || back["ref"] != r {
		t.Errorf("JSON round trip: %s → %v, %v", b, back, err)
	}
	if _, err := RefFromDigest("blake3:" + hex); err != nil {
		t.Error(err)
	}
	if _, err := RefFromDigest(Scheme + hex); err == nil {
		t.Error("RefFromDigest accepted a stellarium ref")
	}
}
