package sdk

import (
	"reflect"
	"testing"
)

func TestSecurityWireRoundTrip(t *testing.T) {
	errno := uint(38)
	for name, s := range map[string]*WorkloadSecurity{
		"nil (runtime defaults)": nil,
		"no capabilities at all": {Capabilities: []string{}},
		"everything": {Capabilities: []string{"CAP_KILL"}, AllowNewPrivileges: true, ReadOnlyRoot: true, Tmpfs: []string{"/tmp"},
			Seccomp: &SeccompProfile{DefaultAction: "SCMP_ACT_ERRNO", Syscalls: []SeccompRule{{Names: []string{"clone3"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: &errno},
				{Names: []string{"clone"}, Action: "SCMP_ACT_ALLOW", Args: []SeccompArg{{Index: 0, Value: 0x7e020000, Op: "SCMP_CMP_MASKED_EQ"}}}}},
			SeccompName: "default", Landlock: &LandlockPolicy{Execute: []string{"/"}, Write: []string{"/tmp"}, RestrictNet: true, NetBind: []uint16{80}}, LandlockName: "strict"},
	} {
		got := specFromPB(specToPB(WorkloadSpec{Name: "x", Security: s})).Security
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%s: round trip = %+v, want %+v", name, got, s)
		}
	}
	// nil capabilities (docker's defaults) stay nil, not empty.
	if got := specFromPB(specToPB(WorkloadSpec{Security: &WorkloadSecurity{}})).Security; got == nil || got.Capabilities != nil {
		t.Errorf("nil capabilities became %#v", got)
	}
}
