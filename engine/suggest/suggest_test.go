package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"environment", "env_file", "ports", "volumes"}
	for _, tc := range []struct{ word, want string }{
		{"enviroment", "environment"},
		{"port", "ports"},
		{"volume", "volumes"},
		{"zzzzzz", ""},
		{"", ""},
	} {
		if got := Closest(tc.word, known); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"abc", "abc", 0}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q,%q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
