package confine

import (
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// LandlockPolicy is a Landlock ruleset in terms of paths and TCP ports: the
// one form every Volt sandbox (hooks, format plugins, containers) is built
// from. Paths are files or directories (recursively); a path in several
// lists gets the union of the rights. Everything not listed is denied.
type LandlockPolicy struct {
	// Read paths may be read (files) and listed (directories).
	Read []string `json:"fs_read,omitempty" yaml:"fs_read,omitempty"`
	// Write paths may be read, written, created, removed and renamed within.
	Write []string `json:"fs_write,omitempty" yaml:"fs_write,omitempty"`
	// Execute paths may be read and their files executed.
	Execute []string `json:"fs_execute,omitempty" yaml:"fs_execute,omitempty"`
	// RestrictNet confines TCP too (Landlock ABI 4 or later): only NetBind
	// ports may be bound and only NetConnect ports connected to.
	RestrictNet bool     `json:"restrict_net,omitempty" yaml:"restrict_net,omitempty"`
	NetBind     []uint16 `json:"net_bind,omitempty" yaml:"net_bind,omitempty"`
	NetConnect  []uint16 `json:"net_connect,omitempty" yaml:"net_connect,omitempty"`
}

// LandlockReport is what ApplyLandlock enforced.
type LandlockReport struct {
	// ABI is the kernel's Landlock ABI version (0: no Landlock).
	ABI int `json:"abi"`
	// Enforced is false when the kernel has no Landlock (nothing restricted).
	Enforced bool `json:"enforced"`
	// FSRules and NetRules count the rules added.
	FSRules  int `json:"fs_rules"`
	NetRules int `json:"net_rules"`
	// Net reports whether TCP bind/connect restrictions are in force.
	Net bool `json:"net"`
	// Missing lists policy paths that do not exist (skipped).
	Missing []string `json:"missing,omitempty"`
}

// LandlockMinNetABI is the first Landlock ABI that restricts TCP.
const LandlockMinNetABI = 4

// LandlockABI returns the running kernel's Landlock ABI version, 0 when
// Landlock is unavailable or disabled.
func LandlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// Landlock access rights by kind. Directory-only rights are dropped for
// paths that are not directories.
const (
	accessRead    = llsys.AccessFSReadFile | llsys.AccessFSReadDir
	accessExecute = accessRead | llsys.AccessFSExecute
	accessWrite   = accessExecute | llsys.AccessFSWriteFile | llsys.AccessFSRemoveDir | llsys.AccessFSRemoveFile |
		llsys.AccessFSMakeChar | llsys.AccessFSMakeDir | llsys.AccessFSMakeReg | llsys.AccessFSMakeSock |
		llsys.AccessFSMakeFifo | llsys.AccessFSMakeBlock | llsys.AccessFSMakeSym | llsys.AccessFSRefer |
		llsys.AccessFSTruncate
	accessFileOnly = llsys.AccessFSExecute | llsys.AccessFSWriteFile | llsys.AccessFSReadFile | llsys.AccessFSTruncate
)

// LandlockRules turns p into go-landlock rules: the single place where a
// Volt policy becomes Landlock rules. Paths that do not exist are left out
// and returned in missing.
func (p LandlockPolicy) LandlockRules() (fs, net []landlock.Rule, missing []string) {
	rights := map[string]landlock.AccessFSSet{}
	var order []string
	add := func(paths []string, a landlock.AccessFSSet) {
		for _, path := range paths {
			if _, seen := rights[path]; !seen {
				order = append(order, path)
			}
			rights[path] |= a
		}
	}
	add(p.Read, accessRead)
	add(p.Execute, accessExecute)
	add(p.Write, accessWrite)
	for _, path := range order {
		fi, err := os.Stat(path)
		if err != nil {
			missing = append(missing, path)
			continue
		}
		a := rights[path]
		if !fi.IsDir() {
			a &= accessFileOnly
		}
		fs = append(fs, landlock.PathAccess(a, path).IgnoreIfMissing())
	}
	if p.RestrictNet {
		for _, port := range p.NetBind {
			net = append(net, landlock.BindTCP(port))
		}
		for _, port := range p.NetConnect {
			net = append(net, landlock.ConnectTCP(port))
		}
	}
	return fs, net, missing
}

// ApplyLandlock restricts the calling process (all its threads and every
// process it starts) to p with the best Landlock ABI the kernel offers
// (best effort: rights the kernel does not know are not enforced). On a
// kernel without Landlock it restricts nothing and reports Enforced false.
func ApplyLandlock(p LandlockPolicy) (LandlockReport, error) {
	fs, net, missing := p.LandlockRules()
	rep := LandlockReport{ABI: LandlockABI(), FSRules: len(fs), NetRules: len(net), Missing: missing}
	if rep.ABI == 0 {
		return rep, nil
	}
	cfg := landlock.V5.BestEffort()
	var err error
	if p.RestrictNet {
		err = cfg.Restrict(append(fs, net...)...)
		rep.Net = rep.ABI >= LandlockMinNetABI
	} else {
		err = cfg.RestrictPaths(fs...)
	}
	if err != nil {
		return rep, fmt.Errorf("landlock: %w", err)
	}
	rep.Enforced = true
	return rep, nil
}
