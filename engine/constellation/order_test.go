package constellation

import (
	"errors"
	"reflect"
	"testing"
)

// graphFile builds a File of host services from name -> depends_on.
func graphFile(deps map[string][]string) *File {
	f := &File{Services: map[string]*HostService{}}
	for name, ds := range deps {
		s := &HostService{Exec: []string{"x"}}
		for _, d := range ds {
			if s.DependsOn == nil {
				s.DependsOn = map[string]Dependency{}
			}
			s.DependsOn[d] = Dependency{Condition: ServiceStarted}
		}
		f.Services[name] = s
	}
	return f
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name   string
		deps   map[string][]string
		order  []string
		levels [][]string
		err    string
	}{
		{"empty", map[string][]string{}, []string{}, nil, ""},
		{"independent sorted by name", map[string][]string{"c": nil, "a": nil, "b": nil},
			[]string{"a", "b", "c"}, [][]string{{"a", "b", "c"}}, ""},
		{"chain", map[string][]string{"web": {"api"}, "api": {"db"}, "db": nil},
			[]string{"db", "api", "web"}, [][]string{{"db"}, {"api"}, {"web"}}, ""},
		{"diamond with ties", map[string][]string{"z": nil, "b": {"z"}, "a": {"z"}, "top": {"a", "b"}, "lone": nil},
			[]string{"lone", "z", "a", "b", "top"}, [][]string{{"lone", "z"}, {"a", "b"}, {"top"}}, ""},
		{"ready set keeps name order", map[string][]string{"a": {"z"}, "b": nil, "z": nil},
			[]string{"b", "z", "a"}, [][]string{{"b", "z"}, {"a"}}, ""},
		{"self cycle", map[string][]string{"a": {"a"}}, nil, nil, "dependency cycle: a -> a"},
		{"three cycle", map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": nil}, nil, nil, "dependency cycle: a -> b -> c -> a"},
		{"cycle behind a tail", map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"b"}}, nil, nil, "dependency cycle: b -> c -> b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := graphFile(tt.deps)
			order, err := Order(f)
			levels, lerr := Levels(f)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrCycle) {
					t.Fatalf("Order err = %v, want %q wrapping ErrCycle", err, tt.err)
				}
				if lerr == nil || lerr.Error() != tt.err {
					t.Fatalf("Levels err = %v, want %q", lerr, tt.err)
				}
				if verr := f.Validate(); verr == nil || verr.Error() != tt.err {
					t.Fatalf("Validate err = %v, want %q", verr, tt.err)
				}
				return
			}
			if err != nil || lerr != nil {
				t.Fatalf("Order: %v, Levels: %v", err, lerr)
			}
			if !reflect.DeepEqual(order, tt.order) {
				t.Errorf("order %v, want %v", order, tt.order)
			}
			if !reflect.DeepEqual(levels, tt.levels) {
				t.Errorf("levels %v, want %v", levels, tt.levels)
			}
		})
	}
}

func TestOrderMixedKinds(t *testing.T) {
	f := mustParse(t, `
containers:
  web: {image: i, depends_on: {db: {condition: service_healthy}, exporter: {}}}
vms:
  db: {image: d.qcow2}
services:
  exporter: {exec: [x], depends_on: [db]}
tasks:
  backup: {image: i}
`)
	order, err := Order(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"db", "exporter", "web"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v (tasks excluded)", order, want)
	}
}

func TestOrderUnknownDependency(t *testing.T) {
	f := graphFile(map[string][]string{"a": {"ghost"}})
	if _, err := Order(f); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func BenchmarkOrder(b *testing.B) {
	deps := map[string][]string{}
	names := make([]string, 500)
	for i := range names {
		names[i] = "s" + itoa(i)
		if i > 0 {
			deps[names[i]] = []string{names[i/2], names[i-1]}
		} else {
			deps[names[i]] = nil
		}
	}
	f := graphFile(deps)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Order(f); err != nil {
			b.Fatal(err)
		}
	}
}
