package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/volt-cli/volt/sdk"
)

// ErrNoPolicy: a plugin was asked for without a sandbox policy, or a format
// plugin was asked for without a Landlock one. The host starts no plugin
// process without a policy.
var ErrNoPolicy = errors.New("no sandbox policy")

// Policy is what one plugin process is started under. Every call that may
// start a plugin (Runtime, Format, FormatFor, List, Inspect) passes one; the
// host keeps one process per plugin and policy, so a plugin started for one
// command's files is never reused for another's.
//
// Exactly one field is set:
//   - Sandbox: the Landlock policy the plugin applies to itself before it
//     serves (sdk.SandboxEnv). Format plugins read untrusted images and are
//     only ever started with one.
//   - Unconfined: why the plugin runs without Landlock. Only runtime plugins
//     may: they create namespaces, mounts and cgroups (systemd-nspawn, QEMU),
//     which Landlock forbids a restricted process.
type Policy struct {
	Sandbox    *sdk.SandboxPolicy
	Unconfined string
}

// Confined returns the policy of a plugin restricted to p.
func Confined(p sdk.SandboxPolicy) Policy { return Policy{Sandbox: &p} }

// RuntimePolicy is the policy of runtime plugins: unconfined, with the reason.
var RuntimePolicy = Policy{Unconfined: "runtime plugins create namespaces, mounts and cgroups (systemd-nspawn, QEMU), which a Landlock-restricted process cannot"}

// InspectPolicy is the policy of plugins started only to describe themselves
// (plugin list, plugin inspect, finding the plugin of a format): no file
// access beyond the system directories the SDK always allows. Runtime
// plugins ignore it (see RuntimePolicy).
var InspectPolicy = Confined(sdk.SandboxPolicy{})

// valid reports whether p names a policy at all (the error is the detail
// of an ErrNoPolicy).
func (p Policy) valid() error {
	switch {
	case p.Sandbox == nil && p.Unconfined == "":
		return errors.New("the host starts a plugin only with a Landlock policy or a reason to run it unconfined")
	case p.Sandbox != nil && p.Unconfined != "":
		return errors.New("a policy is either a Landlock policy or unconfined, not both")
	}
	return nil
}

// key identifies the policy among a plugin's processes.
func (p Policy) key() (string, error) {
	if err := p.valid(); err != nil {
		return "", err
	}
	if p.Sandbox == nil {
		return "unconfined", nil
	}
	return p.Sandbox.Encode()
}

// String describes the policy for logs.
func (p Policy) String() string {
	if p.Sandbox == nil {
		return "unconfined: " + p.Unconfined
	}
	return fmt.Sprintf("landlock: read %v, write %v", p.Sandbox.Read, p.Sandbox.Write)
}

// Deploying is a view of a Host for engine/deploy: runtime plugins start
// under RuntimePolicy, format plugins under the Landlock policy of each
// call (one image, one destination).
type Deploying struct{ host *Host }

// ForDeploy returns h's view for engine/deploy.
func (h *Host) ForDeploy() Deploying { return Deploying{host: h} }

// Runtime is Host.Runtime with RuntimePolicy.
func (s Deploying) Runtime(ctx context.Context, name string) (sdk.Runtime, error) {
	return s.host.Runtime(ctx, name, RuntimePolicy)
}

// FormatFor is Host.FormatFor confined to p.
func (s Deploying) FormatFor(ctx context.Context, format string, p sdk.SandboxPolicy) (sdk.Format, string, error) {
	return s.host.FormatFor(ctx, format, Confined(p))
}
