package nspawn

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// Supervisor kinds recorded in a handle.
const (
	SupervisorDetached = "detached" // a setsid'd shim process with pidfiles and a log file
	SupervisorSystemd  = "systemd"  // a transient systemd unit volt-container@NAME
)

// handleVersion is the version of the Handle.Data JSON shape.
const handleVersion = 1

// Names of the files the runtime keeps in WorkloadSpec.StateDir.
const (
	fileLog        = "console.log"    // container stdout+stderr (detached supervisor)
	fileSupPID     = "supervisor.pid" // "PID STARTTIME\n" of the shim
	fileNspawnPID  = "nspawn.pid"     // "PID STARTTIME\n" of systemd-nspawn
	fileExit       = "exit.json"      // exitRecord, written by the shim when nspawn exits
	fileStopMarker = "stop-requested" // present when Stop asked the workload to stop
	fileUnit       = "unit"           // systemd supervisor: the unit name
)

// handleData is the JSON in sdk.Handle.Data: everything Recover, Inspect,
// Stop, Logs and Exec need in a later process.
type handleData struct {
	Version    int    `json:"v"`
	Supervisor string `json:"supervisor"`
	Machine    string `json:"machine"`
	Root       string `json:"root"`
	StateDir   string `json:"stateDir"`
	// PID and StartTime identify systemd-nspawn (StartTime is field 22 of
	// /proc/PID/stat), so a reused pid is never mistaken for the workload.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	// SupervisorPID and SupervisorStartTime identify the shim that waits for
	// nspawn and records its exit status (detached supervisor only).
	SupervisorPID       int      `json:"supervisorPid,omitempty"`
	SupervisorStartTime uint64   `json:"supervisorStartTime,omitempty"`
	PIDFile             string   `json:"pidFile,omitempty"`
	LogFile             string   `json:"logFile,omitempty"`
	ExitFile            string   `json:"exitFile,omitempty"`
	Unit                string   `json:"unit,omitempty"`
	Cgroups             []string `json:"cgroups,omitempty"`
	// Init is the init shim run as the container's PID 1 ("" when none).
	Init string `json:"init,omitempty"`
	// Security summarises the requested confinement (Inspect's security.* details).
	Security map[string]string `json:"security,omitempty"`
	// Limits says which resource limits are enforced, or that they were ignored.
	Limits    string    `json:"limits,omitempty"`
	StartedAt time.Time `json:"startedAt"`
}

// encodeHandle turns hd into an sdk.Handle.
func encodeHandle(hd *handleData) (sdk.Handle, error) {
	b, err := json.Marshal(hd)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("encode handle %q: %w", hd.Machine, err)
	}
	return sdk.Handle{Name: hd.Machine, Data: b}, nil
}

// decodeHandle parses and validates an sdk.Handle made by Start. Bad input
// yields an error wrapping sdk.ErrInvalid.
func decodeHandle(h sdk.Handle) (*handleData, error) {
	var hd handleData
	if err := json.Unmarshal(h.Data, &hd); err != nil {
		return nil, fmt.Errorf("decode handle %q: %w: %v", h.Name, sdk.ErrInvalid, err)
	}
	if hd.Version != handleVersion {
		return nil, fmt.Errorf("decode handle %q: %w: version %d, this plugin reads %d", h.Name, sdk.ErrInvalid, hd.Version, handleVersion)
	}
	if err := validName(hd.Machine); err != nil {
		return nil, fmt.Errorf("decode handle %q: %w", h.Name, err)
	}
	if h.Name != "" && h.Name != hd.Machine {
		return nil, fmt.Errorf("decode handle %q: %w: data is for %q", h.Name, sdk.ErrInvalid, hd.Machine)
	}
	if !filepath.IsAbs(hd.StateDir) {
		return nil, fmt.Errorf("decode handle %q: %w: state dir %q is not absolute", h.Name, sdk.ErrInvalid, hd.StateDir)
	}
	switch hd.Supervisor {
	case SupervisorDetached:
		if hd.PID <= 0 || hd.SupervisorPID <= 0 {
			return nil, fmt.Errorf("decode handle %q: %w: no pid", h.Name, sdk.ErrInvalid)
		}
	case SupervisorSystemd:
		if hd.Unit == "" {
			return nil, fmt.Errorf("decode handle %q: %w: no unit", h.Name, sdk.ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("decode handle %q: %w: supervisor %q", h.Name, sdk.ErrInvalid, hd.Supervisor)
	}
	// Paths are recomputed from the state dir, never trusted from the data.
	hd.PIDFile = filepath.Join(hd.StateDir, fileNspawnPID)
	hd.LogFile = filepath.Join(hd.StateDir, fileLog)
	hd.ExitFile = filepath.Join(hd.StateDir, fileExit)
	return &hd, nil
}

// exitRecord is exit.json: how systemd-nspawn ended.
type exitRecord struct {
	ExitCode int    `json:"exitCode"`
	Signal   string `json:"signal,omitempty"`
	Error    string `json:"error,omitempty"`
	// FinishedAt is RFC 3339 (written by the shell shim with date(1)).
	FinishedAt string `json:"finishedAt,omitempty"`
}

// finished parses FinishedAt; the zero time when absent or malformed.
func (r exitRecord) finished() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, r.FinishedAt)
	return t
}

// readExit reads exit.json; ok is false when it does not exist.
func readExit(path string) (exitRecord, bool, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return exitRecord{}, false, nil
	}
	if err != nil {
		return exitRecord{}, false, fmt.Errorf("read exit record: %w", err)
	}
	var r exitRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return exitRecord{}, false, fmt.Errorf("parse exit record %q: %w", path, err)
	}
	return r, true, nil
}

// readPIDFile reads a "PID STARTTIME" pidfile.
func readPIDFile(path string) (pid int, start uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read pidfile: %w", err)
	}
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil {
		return 0, 0, fmt.Errorf("parse pidfile %q: %w", path, err)
	}
	return pid, start, nil
}

// pidFileContent formats a pidfile.
func pidFileContent(pid int, start uint64) []byte {
	return fmt.Appendf(nil, "%d %d\n", pid, start)
}
