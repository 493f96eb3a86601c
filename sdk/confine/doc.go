// Package confine is Volt's one policy engine: it turns a policy (paths and
// ports, a seccomp profile, a capability set) into Landlock rules, a BPF
// seccomp filter and capability sets, and applies them to the calling
// process. Hooks (engine/sandbox), format plugins (sdk.ApplySandbox) and
// containers (cmd/volt-init) all use it. It imports nothing heavy, so the
// container init stays small and starts fast; package sdk re-exports its
// types.
package confine
