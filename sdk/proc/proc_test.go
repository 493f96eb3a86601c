package proc

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Stat
		wantErr bool
	}{
		{"42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 100", Stat{'S', 1, 12345}, false},
		{"7 (a) b) c) R 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 999 0", Stat{'R', 3, 999}, false},
		{"garbage", Stat{}, true},
		{"1 (x) S 1 2", Stat{}, true},
	} {
		got, err := ParseStat([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseStat(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestAliveSelf(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), st.StartTime) || !Alive(os.Getpid(), 0) {
		t.Errorf("this process is not alive")
	}
	if Alive(os.Getpid(), st.StartTime+1) {
		t.Errorf("a different start time matched")
	}
	if Alive(-1, 0) {
		t.Errorf("pid -1 alive")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 100"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseStat(b) })
}
