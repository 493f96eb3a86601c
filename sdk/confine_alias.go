package sdk

import "github.com/volt-cli/volt/sdk/confine"

// The policy types and functions of sdk/confine, re-exported so that
// plugins and hosts keep one import.
type (
	// LandlockPolicy is confine.LandlockPolicy.
	LandlockPolicy = confine.LandlockPolicy
	// LandlockReport is confine.LandlockReport.
	LandlockReport = confine.LandlockReport
	// SeccompProfile is confine.SeccompProfile.
	SeccompProfile = confine.SeccompProfile
	// SeccompRule is confine.SeccompRule.
	SeccompRule = confine.SeccompRule
	// SeccompArg is confine.SeccompArg.
	SeccompArg = confine.SeccompArg
	// InitPolicy is confine.InitPolicy.
	InitPolicy = confine.InitPolicy
	// InitReport is confine.InitReport.
	InitReport = confine.InitReport
)

// Re-exported from sdk/confine.
const (
	LandlockMinNetABI = confine.LandlockMinNetABI
	InitPolicyPath    = confine.InitPolicyPath
	InitReportPath    = confine.InitReportPath
)

// LandlockABI is confine.LandlockABI.
func LandlockABI() int { return confine.LandlockABI() }

// ApplyLandlock is confine.ApplyLandlock.
func ApplyLandlock(p LandlockPolicy) (LandlockReport, error) { return confine.ApplyLandlock(p) }

// CapabilityNames is confine.CapabilityNames.
func CapabilityNames() []string { return confine.CapabilityNames() }
