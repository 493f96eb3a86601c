package constellation

import (
	"fmt"
	"sort"
	"strings"
)

// graph returns every workload that Order covers (containers, VMs, host
// services) with its depends_on targets, sorted.
func (f *File) graph() map[string][]string {
	g := map[string][]string{}
	add := func(name string, deps map[string]Dependency) {
		g[name] = sortedKeys(deps)
	}
	for name, c := range f.Containers {
		if c != nil {
			add(name, c.DependsOn)
			// network_mode service:X joins X's network namespace: X starts first.
			if target, ok := strings.CutPrefix(c.NetworkMode, "service:"); ok && !hasKey(c.DependsOn, target) {
				g[name] = append(g[name], target)
				sort.Strings(g[name])
			}
		} else {
			add(name, nil)
		}
	}
	for name, m := range f.VMs {
		if m != nil {
			add(name, m.DependsOn)
		} else {
			add(name, nil)
		}
	}
	for name, s := range f.Services {
		if s != nil {
			add(name, s.DependsOn)
		} else {
			add(name, nil)
		}
	}
	return g
}

// Levels groups the containers, VMs and host services of f into start
// levels: every member of a level depends only on members of earlier
// levels, so a level can start in parallel. Each level is sorted by name;
// tasks are not included. A dependency cycle gives an *Error wrapping
// ErrCycle that names it ("dependency cycle: a -> b -> a").
func Levels(f *File) ([][]string, error) {
	g := f.graph()
	for _, name := range sortedKeys(g) {
		for _, dep := range g[name] {
			if _, ok := g[dep]; !ok {
				return nil, fmt.Errorf("order %q: depends on unknown service %q: %w", name, dep, ErrInvalid)
			}
		}
	}
	level := map[string]int{}
	const visiting = -1
	var stack []string
	var visit func(name string) (int, error)
	visit = func(name string) (int, error) {
		if l, ok := level[name]; ok {
			if l == visiting {
				return 0, f.cycleError(stack, name)
			}
			return l, nil
		}
		level[name] = visiting
		stack = append(stack, name)
		l := 0
		for _, dep := range g[name] {
			dl, err := visit(dep)
			if err != nil {
				return 0, err
			}
			l = max(l, dl+1)
		}
		stack = stack[:len(stack)-1]
		level[name] = l
		return l, nil
	}
	var levels [][]string
	for _, name := range sortedKeys(g) {
		l, err := visit(name)
		if err != nil {
			return nil, err
		}
		for len(levels) <= l {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], name)
	}
	for _, l := range levels {
		sort.Strings(l)
	}
	return levels, nil
}

// cycleError names the cycle that closes at name on the DFS stack.
func (f *File) cycleError(stack []string, name string) error {
	start := 0
	for i, s := range stack {
		if s == name {
			start = i
			break
		}
	}
	cycle := append(append([]string(nil), stack[start:]...), name)
	e := validator{f: f}.at(f.workloadPath(cycle[0])+".depends_on."+cycle[1], true,
		"remove one of these depends_on entries", "%s: %s", ErrCycle.Error(), strings.Join(cycle, " -> "))
	e.err = ErrCycle
	return e
}

// workloadPath is the YAML path of a workload's entry.
func (f *File) workloadPath(name string) string {
	if _, ok := f.Containers[name]; ok {
		return f.containerSection() + "." + name
	}
	if _, ok := f.VMs[name]; ok {
		return "vms." + name
	}
	return "services." + name
}

// Order returns the containers, VMs and host services of f in an order in
// which every workload comes after what it depends on. Among workloads
// whose dependencies are met the smallest name comes first, so the order is
// deterministic. Errors are as for Levels.
func Order(f *File) ([]string, error) {
	if _, err := Levels(f); err != nil {
		return nil, err
	}
	g := f.graph()
	pending := map[string]int{}
	users := map[string][]string{}
	for name, deps := range g {
		pending[name] = len(deps)
		for _, d := range deps {
			users[d] = append(users[d], name)
		}
	}
	var ready []string
	for name, n := range pending {
		if n == 0 {
			ready = append(ready, name)
		}
	}
	order := make([]string, 0, len(g))
	for len(ready) > 0 {
		sort.Strings(ready)
		next := ready[0]
		ready = ready[1:]
		order = append(order, next)
		for _, u := range users[next] {
			pending[u]--
			if pending[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return order, nil
}

func hasKey[T any](m map[string]T, k string) bool {
	_, ok := m[k]
	return ok
}
