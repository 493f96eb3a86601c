package confine

import (
	"fmt"
	"slices"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// SeccompProfile is a resolved seccomp filter in the OCI runtime-spec form
// (linux.seccomp of config.json): the JSON of a docker profile once its
// includes/excludes were resolved for a capability set, architecture and
// kernel. Volt compiles it to BPF in-process (github.com/elastic/go-seccomp-bpf).
type SeccompProfile struct {
	DefaultAction   string        `json:"defaultAction"`
	DefaultErrnoRet *uint         `json:"defaultErrnoRet,omitempty"`
	Syscalls        []SeccompRule `json:"syscalls,omitempty"`
}

// SeccompRule is one OCI seccomp rule: the action for the named syscalls
// when all Args conditions hold.
type SeccompRule struct {
	Names    []string     `json:"names"`
	Action   string       `json:"action"`
	ErrnoRet *uint        `json:"errnoRet,omitempty"`
	Args     []SeccompArg `json:"args,omitempty"`
}

// SeccompArg is a condition on one syscall argument (OCI form).
type SeccompArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

// seccompAction maps an OCI action (and errno) to the kernel's return value.
func seccompAction(name string, errno *uint, defErrno uint) (seccomp.Action, error) {
	switch name {
	case "SCMP_ACT_ALLOW":
		return seccomp.ActionAllow, nil
	case "SCMP_ACT_ERRNO":
		e := defErrno
		if errno != nil {
			e = *errno
		}
		if e == uint(unix.EPERM) {
			return seccomp.ActionErrno, nil // the library adds EPERM
		}
		return seccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(e&unix.SECCOMP_RET_DATA)), nil
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		return seccomp.ActionKillThread, nil
	case "SCMP_ACT_KILL_PROCESS":
		return seccomp.ActionKillProcess, nil
	case "SCMP_ACT_TRAP":
		return seccomp.ActionTrap, nil
	case "SCMP_ACT_LOG":
		return seccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("seccomp action %q: unsupported (want SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_PROCESS, _TRAP or _LOG)", name)
}

// seccompCondition maps an OCI argument condition to go-seccomp-bpf's.
func seccompCondition(a SeccompArg) (seccomp.Condition, error) {
	c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case "SCMP_CMP_EQ":
		c.Operation = seccomp.Equal
	case "SCMP_CMP_NE":
		c.Operation = seccomp.NotEqual
	case "SCMP_CMP_LT":
		c.Operation = seccomp.LessThan
	case "SCMP_CMP_LE":
		c.Operation = seccomp.LessOrEqual
	case "SCMP_CMP_GT":
		c.Operation = seccomp.GreaterThan
	case "SCMP_CMP_GE":
		c.Operation = seccomp.GreaterOrEqual
	case "SCMP_CMP_MASKED_EQ":
		// (arg & value) == valueTwo: expressible when valueTwo is 0
		// (none of the bits set), which is how docker's profile uses it.
		if a.ValueTwo != 0 {
			return c, fmt.Errorf("seccomp condition %s with valueTwo %d: unsupported (only valueTwo 0 is supported)", a.Op, a.ValueTwo)
		}
		c.Operation = seccomp.BitsNotSet
	default:
		return c, fmt.Errorf("seccomp condition %q: unsupported", a.Op)
	}
	if a.Index > 5 {
		return c, fmt.Errorf("seccomp condition on argument %d: syscalls have 6 arguments", a.Index)
	}
	return c, nil
}

// SeccompPolicy translates p into go-seccomp-bpf's policy for this
// machine's architecture (Compile or ApplySeccomp assemble it). Syscall names
// the architecture does not have are skipped (they cannot be called here).
// A rule with an unconditional entry for a syscall wins over conditional
// entries for the same syscall and action.
func (p SeccompProfile) SeccompPolicy() (*seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def, err := seccompAction(p.DefaultAction, p.DefaultErrnoRet, uint(unix.EPERM))
	if err != nil {
		return nil, fmt.Errorf("seccomp default: %w", err)
	}
	if def&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO && def != seccomp.ActionErrno {
		return nil, fmt.Errorf("seccomp default errno %d: unsupported (only EPERM)", *p.DefaultErrnoRet)
	}
	defErrno := uint(unix.EPERM)
	if p.DefaultErrnoRet != nil {
		defErrno = *p.DefaultErrnoRet
	}
	groups := map[seccomp.Action]*seccomp.SyscallGroup{}
	var order []seccomp.Action
	seen := map[string]seccomp.Action{} // syscall -> action it was first given
	uncond := map[string]bool{}
	group := func(a seccomp.Action) *seccomp.SyscallGroup {
		g := groups[a]
		if g == nil {
			g = &seccomp.SyscallGroup{Action: a}
			groups[a] = g
			order = append(order, a)
		}
		return g
	}
	// Unconditional entries first, so that conditional ones for the same
	// syscall can be dropped.
	for pass := 0; pass < 2; pass++ {
		for _, r := range p.Syscalls {
			if (len(r.Args) == 0) != (pass == 0) {
				continue
			}
			a, err := seccompAction(r.Action, r.ErrnoRet, defErrno)
			if err != nil {
				return nil, fmt.Errorf("seccomp rule %v: %w", r.Names, err)
			}
			var conds seccomp.ArgumentConditions
			for _, arg := range r.Args {
				c, err := seccompCondition(arg)
				if err != nil {
					return nil, fmt.Errorf("seccomp rule %v: %w", r.Names, err)
				}
				conds = append(conds, c)
			}
			for _, name := range r.Names {
				if _, ok := info.SyscallNames[name]; !ok || a == def {
					continue
				}
				if prev, dup := seen[name]; dup && (prev != a || uncond[name]) {
					continue // the first rule for a syscall decides
				}
				seen[name] = a
				g := group(a)
				if len(conds) == 0 {
					uncond[name] = true
					g.Names = append(g.Names, name)
				} else {
					g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: name, Conditions: conds})
				}
			}
		}
	}
	pol := &seccomp.Policy{DefaultAction: def}
	for _, a := range order {
		g := groups[a]
		slices.Sort(g.Names)
		g.Names = slices.Compact(g.Names)
		pol.Syscalls = append(pol.Syscalls, *g)
	}
	return pol, nil
}

// Compile checks that p compiles to a BPF program on this machine (what
// ApplySeccomp will load), without loading it.
func (p SeccompProfile) Compile() error {
	pol, err := p.SeccompPolicy()
	if err != nil {
		return err
	}
	if _, err := pol.Assemble(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}

// ApplySeccomp compiles p and loads it into the calling thread's process
// (with no_new_privs set when nnp is true; without it the caller needs
// CAP_SYS_ADMIN). The filter is inherited by every process started after it.
func ApplySeccomp(p SeccompProfile, nnp bool) error {
	pol, err := p.SeccompPolicy()
	if err != nil {
		return err
	}
	if err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: nnp, Flag: seccomp.FilterFlagTSync, Policy: *pol}); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
