package constellation

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RestartPolicies are the values accepted in restart: ("on-failure:N" is accepted too).
var RestartPolicies = []string{"no", "always", "on-failure", "unless-stopped"}

// Conditions are the known depends_on conditions.
var Conditions = []string{ServiceStarted, ServiceHealthy, ServiceCompletedSuccessfully}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_-]+$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
)

// maxNameLen is the longest allowed name (a DNS label).
const maxNameLen = 63

// validator checks a File, reporting the first problem at its position.
type validator struct {
	f *File
}

// at returns an *Error positioned at path's key (key=true) or value.
func (v validator) at(path string, key bool, hint, format string, args ...any) *Error {
	p := v.f.pos[path]
	pos := p.val
	if key {
		pos = p.key
	}
	return &Error{File: v.f.source, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (f *File) containerSection() string {
	if f.docker {
		return "services"
	}
	return "containers"
}

// Validate checks the rules of docs/constellation.md: names, uniqueness,
// references (depends_on, networks, volumes, configs, secrets), ports,
// memory sizes, durations, restart policies, VM boot source, dependency
// cycles. It returns the first problem as an *Error (positioned when f came from Parse), or nil.
func (f *File) Validate() error {
	v := validator{f: f}
	if f.Version != "" && f.Version != "1" {
		return v.at("version", false, `write version: "1" (or leave it out)`, "version: unsupported version %q", f.Version)
	}
	owner := map[string]string{} // workload name -> its path, for uniqueness
	checkName := func(section, name string) error {
		path := section + "." + name
		if len(name) > maxNameLen || !nameRE.MatchString(name) {
			return v.at(path, true, "use lower-case letters, digits, '_', '.', '-', starting with a letter or digit, at most 63 characters",
				"%s: invalid name %q", section, name)
		}
		return nil
	}
	checkWorkload := func(section, name string) error {
		if err := checkName(section, name); err != nil {
			return err
		}
		path := section + "." + name
		if prev, ok := owner[name]; ok {
			return v.at(path, true, "names are shared by containers, vms, services and tasks; rename one",
				"%s: name %q already used by %s", section, name, prev)
		}
		owner[name] = path
		return nil
	}
	for _, section := range []struct {
		name  string
		names []string
	}{
		{"networks", sortedKeys(f.Networks)}, {"volumes", sortedKeys(f.Volumes)},
		{"configs", sortedKeys(f.Configs)}, {"secrets", sortedKeys(f.Secrets)},
	} {
		for _, n := range section.names {
			if err := checkName(section.name, n); err != nil {
				return err
			}
		}
	}
	cs := f.containerSection()
	for _, name := range sortedKeys(f.Containers) {
		if err := checkWorkload(cs, name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.VMs) {
		if err := checkWorkload("vms", name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Services) {
		if err := checkWorkload("services", name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Tasks) {
		if err := checkWorkload("tasks", name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Containers) {
		if err := v.container(cs+"."+name, f.Containers[name]); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.VMs) {
		if err := v.vm("vms."+name, f.VMs[name]); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Services) {
		s := f.Services[name]
		path := "services." + name
		if s == nil || len(s.Exec) == 0 {
			return v.at(path, true, `add exec: ["/usr/bin/program", "arg"]`, "%s: no exec", path)
		}
		if err := v.env(path, s.Environment); err != nil {
			return err
		}
		if err := v.deps(path, s.DependsOn); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Tasks) {
		t := f.Tasks[name]
		path := "tasks." + name
		if t == nil {
			t = &Task{}
		}
		if err := v.image(path, t.Image, true); err != nil {
			return err
		}
		if err := v.env(path, t.Environment); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(f.Configs) {
		if c := f.Configs[name]; c == nil || c.File == "" {
			return v.at("configs."+name, true, "add file: path/to/file", "configs.%s: no file", name)
		}
	}
	for _, name := range sortedKeys(f.Secrets) {
		if s := f.Secrets[name]; s == nil || (s.File == "") == (s.Environment == "") {
			return v.at("secrets."+name, true, "give exactly one of file: or environment:", "secrets.%s: needs exactly one of file or environment", name)
		}
	}
	for _, name := range sortedKeys(f.Networks) {
		n := f.Networks[name]
		if n != nil && n.Subnet != "" {
			if _, err := netip.ParsePrefix(n.Subnet); err != nil {
				return v.at("networks."+name+".subnet", false, "write a CIDR such as 10.20.0.0/24", "networks.%s.subnet: invalid subnet %q", name, n.Subnet)
			}
		}
	}
	_, err := Levels(f)
	return err
}

func (v validator) image(path string, img ImageRef, required bool) error {
	if img.IsZero() {
		if required {
			return v.at(path, true, `add image: path/to/image (an OCI layout, a tarball, or a name in the local image store)`, "%s: no image", path)
		}
		return nil
	}
	if img.Single != "" && len(img.PerPlatform) > 0 {
		return v.at(path+".image", false, "", "%s.image: set either one path or a map of platforms, not both", path)
	}
	for _, plat := range sortedKeys(img.PerPlatform) {
		p := path + ".image." + plat
		if !platformRE.MatchString(plat) {
			return v.at(p, true, `platform keys are "os/arch", e.g. linux/amd64`, "%s.image: invalid platform %q", path, plat)
		}
		if img.PerPlatform[plat] == "" {
			return v.at(p, false, "", "%s: empty image path", p)
		}
	}
	return nil
}

func (v validator) container(path string, c *Container) error {
	if c == nil {
		c = &Container{}
	}
	if err := v.image(path, c.Image, true); err != nil {
		return err
	}
	if err := v.env(path, c.Environment); err != nil {
		return err
	}
	if err := v.ports(path, c.Ports); err != nil {
		return err
	}
	if err := v.networks(path, c.Networks); err != nil {
		return err
	}
	if c.NetworkMode != "" {
		mode := c.NetworkMode
		if len(c.Networks) > 0 {
			return v.at(path+".network_mode", false, "remove networks: or network_mode:", "%s: network_mode and networks cannot both be set", path)
		}
		if target, ok := strings.CutPrefix(mode, "service:"); ok {
			if _, exists := v.f.Containers[target]; !exists {
				return v.at(path+".network_mode", false, "", "%s.network_mode: no container %q", path, target)
			}
		} else if mode != "none" && mode != "host" && mode != "bridge" {
			return v.at(path+".network_mode", false, `use none, host, bridge or service:NAME`, "%s.network_mode: unknown mode %q", path, mode)
		}
	}
	for i, m := range c.Volumes {
		p := fmt.Sprintf("%s.volumes[%d]", path, i)
		if err := v.mount(p, m); err != nil {
			return err
		}
	}
	if err := v.deps(path, c.DependsOn); err != nil {
		return err
	}
	if h := c.Healthcheck; h != nil {
		for _, d := range []struct{ key, val string }{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
			if err := v.duration(path+".healthcheck."+d.key, d.val); err != nil {
				return err
			}
		}
		if h.Retries < 0 {
			return v.at(path+".healthcheck.retries", false, "", "%s.healthcheck.retries: must not be negative", path)
		}
		if len(h.Test) == 0 {
			return v.at(path+".healthcheck", true, `add test: ["CMD", "/bin/check"]`, "%s.healthcheck: no test", path)
		}
	}
	if c.Restart != "" && !validRestart(c.Restart) {
		return v.at(path+".restart", false, didYouMean(c.Restart, RestartPolicies), "%s.restart: unknown policy %q", path, c.Restart)
	}
	if r := c.Resources; r != nil {
		if err := v.memory(path+".resources.memory", r.Memory); err != nil {
			return err
		}
		if r.CPUs < 0 || math.IsNaN(r.CPUs) || math.IsInf(r.CPUs, 0) {
			return v.at(path+".resources.cpus", false, "", "%s.resources.cpus: must be a positive number", path)
		}
	}
	if err := v.configs(path, c.Configs); err != nil {
		return err
	}
	for i, s := range c.Secrets {
		if _, ok := v.f.Secrets[s]; !ok {
			p := fmt.Sprintf("%s.secrets[%d]", path, i)
			return v.at(p, false, "declare it under top-level secrets:", "%s: undeclared secret %q", p, s)
		}
	}
	return nil
}

func validRestart(s string) bool {
	if n, ok := strings.CutPrefix(s, "on-failure:"); ok {
		i, err := strconv.Atoi(n)
		return err == nil && i >= 0
	}
	for _, p := range RestartPolicies {
		if s == p {
			return true
		}
	}
	return false
}

func (v validator) vm(path string, m *VM) error {
	if m == nil {
		m = &VM{}
	}
	if m.Image.IsZero() && m.Kernel == "" {
		return v.at(path, true, "add image: disk.qcow2, or kernel: (and initrd:) for direct kernel boot", "%s: a VM needs an image or a kernel", path)
	}
	if err := v.image(path, m.Image, false); err != nil {
		return err
	}
	if m.Initrd != "" && m.Kernel == "" {
		return v.at(path+".initrd", true, "add kernel:", "%s: initrd without kernel", path)
	}
	if m.CPU < 0 {
		return v.at(path+".cpu", false, "", "%s.cpu: must not be negative", path)
	}
	if err := v.memory(path+".memory", m.Memory); err != nil {
		return err
	}
	if err := v.ports(path, m.Ports); err != nil {
		return err
	}
	if err := v.networks(path, m.Networks); err != nil {
		return err
	}
	if err := v.deps(path, m.DependsOn); err != nil {
		return err
	}
	if err := v.env(path, m.Environment); err != nil {
		return err
	}
	return v.configs(path, m.Configs)
}

func (v validator) env(path string, env map[string]string) error {
	for _, k := range sortedKeys(env) {
		if !envKeyRE.MatchString(k) {
			return v.at(path+".environment."+k, true, "names are letters, digits and '_', not starting with a digit",
				"%s.environment: invalid variable name %q", path, k)
		}
	}
	return nil
}

func (v validator) ports(path string, ports []string) error {
	for i, p := range ports {
		if _, err := ParsePort(p); err != nil {
			at := fmt.Sprintf("%s.ports[%d]", path, i)
			return v.at(at, false, `write "[ip:]host:guest[/tcp|udp]", e.g. "8080:80"`, "%s: %v", at, err)
		}
	}
	return nil
}

func (v validator) networks(path string, nets []string) error {
	for i, n := range nets {
		if _, ok := v.f.Networks[n]; !ok {
			at := fmt.Sprintf("%s.networks[%d]", path, i)
			return v.at(at, false, "declare it under top-level networks:", "%s: undeclared network %q", at, n)
		}
	}
	return nil
}

func (v validator) configs(path string, refs []ConfigRef) error {
	for i, r := range refs {
		at := fmt.Sprintf("%s.configs[%d]", path, i)
		if _, ok := v.f.Configs[r.Source]; !ok {
			return v.at(at, false, "declare it under top-level configs:", "%s: undeclared config %q", at, r.Source)
		}
		if !strings.HasPrefix(r.Target, "/") {
			return v.at(at, false, "targets are absolute paths in the workload", "%s: target %q is not absolute", at, r.Target)
		}
	}
	return nil
}

// deps checks depends_on targets and conditions.
func (v validator) deps(path string, deps map[string]Dependency) error {
	for _, name := range sortedKeys(deps) {
		at := path + ".depends_on." + name
		if !v.f.isService(name) {
			if _, ok := v.f.pos[at]; !ok {
				at = path + ".depends_on"
			}
			return v.at(at, true, "depends_on names a container, vm or service of this file", "%s.depends_on: no service %q", path, name)
		}
		c := deps[name].Condition
		if c != "" && !contains(Conditions, c) {
			return v.at(at+".condition", false, didYouMean(c, Conditions), "%s.condition: unknown condition %q", at, c)
		}
	}
	return nil
}

func (v validator) duration(path, s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return v.at(path, false, "write a duration such as 5s, 1m30s", "%s: invalid duration %q", path, s)
	}
	return nil
}

func (v validator) memory(path, s string) error {
	if s == "" {
		return nil
	}
	if _, err := ParseMemory(s); err != nil {
		return v.at(path, false, "write a size such as 512M, 2G or 1GiB", "%s: %v", path, err)
	}
	return nil
}

// mount checks a volume entry "[source:]target[:mode]". A source that does
// not start with '/', '.' or '~' names a top-level volume.
func (v validator) mount(path, spec string) error {
	parts := strings.Split(spec, ":")
	var source, target, mode string
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		source, target = parts[0], parts[1]
	case 3:
		source, target, mode = parts[0], parts[1], parts[2]
	default:
		return v.at(path, false, `write "source:/target[:ro]"`, "%s: invalid volume %q", path, spec)
	}
	if !strings.HasPrefix(target, "/") {
		return v.at(path, false, `write "source:/target[:ro]"`, "%s: target %q is not an absolute path", path, target)
	}
	for _, o := range strings.Split(mode, ",") {
		switch o {
		case "", "ro", "rw", "z", "Z", "cached", "delegated", "consistent", "nocopy":
		default:
			return v.at(path, false, "modes are ro or rw", "%s: unknown volume mode %q", path, o)
		}
	}
	if source != "" && !strings.HasPrefix(source, "/") && !strings.HasPrefix(source, ".") && !strings.HasPrefix(source, "~") {
		if _, ok := v.f.Volumes[source]; !ok {
			return v.at(path, false, "declare it under top-level volumes:, or use a path starting with / or ./ for a bind mount",
				"%s: undeclared volume %q", path, source)
		}
	}
	return nil
}

// isService reports whether name is a container, VM or host service.
func (f *File) isService(name string) bool {
	if _, ok := f.Containers[name]; ok {
		return true
	}
	if _, ok := f.VMs[name]; ok {
		return true
	}
	_, ok := f.Services[name]
	return ok
}

// Port is one parsed ports entry.
type Port struct {
	HostIP   string // empty: all addresses
	Host     int    // port on the host
	Guest    int    // port in the workload
	Protocol string // "tcp" or "udp"
}

// ParsePort parses "[ip:]host:guest[/tcp|udp]" (an IPv6 ip in brackets).
func ParsePort(s string) (Port, error) {
	p := Port{Protocol: "tcp"}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		p.Protocol = spec[i+1:]
		spec = spec[:i]
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return Port{}, fmt.Errorf("port %q: protocol must be tcp or udp", s)
		}
	}
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]:")
		if end < 0 {
			return Port{}, fmt.Errorf("port %q: unterminated [ipv6] address", s)
		}
		p.HostIP = spec[1:end]
		spec = spec[end+2:]
		if _, err := netip.ParseAddr(p.HostIP); err != nil {
			return Port{}, fmt.Errorf("port %q: invalid address %q", s, p.HostIP)
		}
	} else if i := strings.Count(spec, ":"); i == 2 {
		ip, rest, _ := strings.Cut(spec, ":")
		if _, err := netip.ParseAddr(ip); err != nil {
			return Port{}, fmt.Errorf("port %q: invalid address %q", s, ip)
		}
		p.HostIP, spec = ip, rest
	}
	host, guest, ok := strings.Cut(spec, ":")
	if !ok {
		return Port{}, fmt.Errorf("port %q: want host:guest", s)
	}
	var err error
	if p.Host, err = portNumber(host); err != nil {
		return Port{}, fmt.Errorf("port %q: host %w", s, err)
	}
	if p.Guest, err = portNumber(guest); err != nil {
		return Port{}, fmt.Errorf("port %q: guest %w", s, err)
	}
	return p, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

var memoryUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseMemory parses a size: a number with an optional unit B, K, M, G, T
// (also KB/KiB, MB/MiB, GB/GiB, TB/TiB, any case). All units are powers of
// 1024, as systemd and docker read them. The result is > 0 bytes.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult, ok := memoryUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	bytes := f * mult
	if bytes < 1 || bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return int64(bytes), nil
}
