package sdk

import (
	"encoding/json"

	"github.com/volt-cli/volt/sdk/internal/pb"
)

func securityToPB(s *WorkloadSecurity) *pb.WorkloadSecurity {
	if s == nil {
		return nil
	}
	m := &pb.WorkloadSecurity{Privileged: s.Privileged, Capabilities: s.Capabilities, CapabilitiesSet: s.Capabilities != nil,
		AllowNewPrivileges: s.AllowNewPrivileges, ReadOnlyRoot: s.ReadOnlyRoot, Tmpfs: s.Tmpfs,
		SeccompName: s.SeccompName, LandlockName: s.LandlockName}
	if s.Seccomp != nil {
		m.SeccompJson, _ = json.Marshal(s.Seccomp) // plain data: cannot fail
	}
	if s.Landlock != nil {
		m.LandlockJson, _ = json.Marshal(s.Landlock)
	}
	return m
}

func securityFromPB(m *pb.WorkloadSecurity) *WorkloadSecurity {
	if m == nil {
		return nil
	}
	s := &WorkloadSecurity{Privileged: m.GetPrivileged(), AllowNewPrivileges: m.GetAllowNewPrivileges(),
		ReadOnlyRoot: m.GetReadOnlyRoot(), Tmpfs: m.GetTmpfs(), SeccompName: m.GetSeccompName(), LandlockName: m.GetLandlockName()}
	if m.GetCapabilitiesSet() {
		s.Capabilities = append([]string{}, m.GetCapabilities()...)
	}
	// The host wrote both with json.Marshal; a bad one is dropped rather
	// than trusted half-decoded, and the runtime refuses a spec whose
	// names say a policy was wanted (see the runtime's checks).
	if b := m.GetSeccompJson(); len(b) > 0 {
		var p SeccompProfile
		if json.Unmarshal(b, &p) == nil {
			s.Seccomp = &p
		}
	}
	if b := m.GetLandlockJson(); len(b) > 0 {
		var p LandlockPolicy
		if json.Unmarshal(b, &p) == nil {
			s.Landlock = &p
		}
	}
	return s
}
