package sdk

import (
	"time"

	"github.com/volt-cli/volt/sdk/internal/pb"
)

// Conversions between the sdk types and their wire messages.

func infoToPB(i Info) *pb.InfoResponse {
	v := make([]int32, len(i.APIVersions))
	for k, x := range i.APIVersions {
		v[k] = int32(x)
	}
	return &pb.InfoResponse{Name: i.Name, Kind: i.Kind, Version: i.Version, ApiVersions: v,
		Capabilities: i.Capabilities, ConfigSchema: i.ConfigSchema}
}

func infoFromPB(m *pb.InfoResponse) Info {
	v := make([]int, len(m.GetApiVersions()))
	for k, x := range m.GetApiVersions() {
		v[k] = int(x)
	}
	return Info{Name: m.GetName(), Kind: m.GetKind(), Version: m.GetVersion(), APIVersions: v,
		Capabilities: m.GetCapabilities(), ConfigSchema: m.GetConfigSchema()}
}

func specToPB(s WorkloadSpec) *pb.WorkloadSpec {
	mounts := make([]*pb.Mount, len(s.Mounts))
	for i, m := range s.Mounts {
		mounts[i] = &pb.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	}
	p := &pb.WorkloadSpec{Name: s.Name, Root: s.Root, StateDir: s.StateDir, Image: s.Image,
		Kernel: s.Kernel, Initrd: s.Initrd, Cmdline: s.Cmdline, Command: s.Command, Env: s.Env,
		WorkingDir: s.WorkingDir, User: s.User, Mounts: mounts, Ports: s.Ports,
		NetworkMode: s.NetworkMode, Cpus: s.CPUs, MemoryBytes: s.MemoryBytes, Labels: s.Labels}
	p.Security = securityToPB(s.Security)
	return p
}

func specFromPB(m *pb.WorkloadSpec) WorkloadSpec {
	var mounts []Mount
	for _, x := range m.GetMounts() {
		mounts = append(mounts, Mount{Source: x.GetSource(), Target: x.GetTarget(), ReadOnly: x.GetReadOnly()})
	}
	s := WorkloadSpec{Name: m.GetName(), Root: m.GetRoot(), StateDir: m.GetStateDir(),
		Image: m.GetImage(), Kernel: m.GetKernel(), Initrd: m.GetInitrd(), Cmdline: m.GetCmdline(),
		Command: m.GetCommand(), Env: m.GetEnv(), WorkingDir: m.GetWorkingDir(), User: m.GetUser(),
		Mounts: mounts, Ports: m.GetPorts(), NetworkMode: m.GetNetworkMode(), CPUs: m.GetCpus(),
		MemoryBytes: m.GetMemoryBytes(), Labels: m.GetLabels()}
	s.Security = securityFromPB(m.GetSecurity())
	return s
}

func handleToPB(h Handle) *pb.Handle { return &pb.Handle{Name: h.Name, Data: h.Data} }

func handleFromPB(m *pb.Handle) Handle { return Handle{Name: m.GetName(), Data: m.GetData()} }

func statusToPB(s WorkloadStatus) *pb.WorkloadStatus {
	var t int64
	if !s.StartedAt.IsZero() {
		t = s.StartedAt.UnixNano()
	}
	return &pb.WorkloadStatus{State: s.State, Pid: int64(s.PID), StartedAtUnixNano: t,
		ExitCode: int32(s.ExitCode), Reason: s.Reason, Detail: s.Detail}
}

func statusFromPB(m *pb.WorkloadStatus) WorkloadStatus {
	var t time.Time
	if n := m.GetStartedAtUnixNano(); n != 0 {
		t = time.Unix(0, n)
	}
	return WorkloadStatus{State: m.GetState(), PID: int(m.GetPid()), StartedAt: t,
		ExitCode: int(m.GetExitCode()), Reason: m.GetReason(), Detail: m.GetDetail()}
}

func packedToPB(fs []PackedFile) []*pb.PackedFile {
	out := make([]*pb.PackedFile, len(fs))
	for i, f := range fs {
		out[i] = &pb.PackedFile{Path: f.Path, Format: f.Format, Meta: f.Meta}
	}
	return out
}

func packedFromPB(ms []*pb.PackedFile) []PackedFile {
	out := make([]PackedFile, len(ms))
	for i, m := range ms {
		out[i] = PackedFile{Path: m.GetPath(), Format: m.GetFormat(), Meta: m.GetMeta()}
	}
	return out
}
