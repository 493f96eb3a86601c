package qemu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// handleVersion is the version of the Handle.Data JSON shape.
const handleVersion = 1

// Names of the files the runtime keeps in WorkloadSpec.StateDir.
const (
	FileOverlay    = "disk.qcow2"     // qcow2 overlay on the bundle's disk
	FileQMP        = "qmp.sock"       // QMP for lifecycle calls (Stop, Destroy)
	FileQMPQuery   = "qmp-query.sock" // QMP for Inspect, so it never waits behind a Stop
	FileConsole    = "console.sock"   // the serial console: connect to attach (volt vm console)
	FileSerialLog  = "serial.log"     // everything the guest wrote to its serial console
	FileQEMULog    = "qemu.log"       // QEMU's own stdout and stderr
	FilePID        = "qemu.pid"       // written by QEMU (-pidfile)
	FileExit       = "exit.json"      // how QEMU exited, written by the shim
	FileStop       = "stop.json"      // written by Stop: how the VM was stopped
	FileVM         = "vm.json"        // the QEMU command line and settings of the last Start
	fileStopMarker = "stop-requested" // present once Stop has asked the VM to stop
)

// runtimeFiles are removed by Destroy (the state dir itself only when empty).
var runtimeFiles = []string{FileOverlay, FileQMP, FileQMPQuery, FileConsole, FileSerialLog, FileQEMULog,
	FilePID, FileExit, FileStop, FileVM, fileStopMarker}

// handleData is the JSON in sdk.Handle.Data: everything a later process
// needs to find the VM again.
type handleData struct {
	Version  int    `json:"v"`
	Name     string `json:"name"`
	StateDir string `json:"stateDir"`
	// PID and StartTime identify QEMU (StartTime is field 22 of /proc/PID/stat).
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	// SupervisorPID and SupervisorStartTime identify the shim that records QEMU's exit status.
	SupervisorPID       int       `json:"supervisorPid"`
	SupervisorStartTime uint64    `json:"supervisorStartTime"`
	QMP                 string    `json:"qmp"`
	Console             string    `json:"console"`
	SerialLog           string    `json:"serialLog"`
	Accel               string    `json:"accel"`
	StartedAt           time.Time `json:"startedAt"`
}

func encodeHandle(hd *handleData) (sdk.Handle, error) {
	b, err := json.Marshal(hd)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("encode handle %q: %w", hd.Name, err)
	}
	return sdk.Handle{Name: hd.Name, Data: b}, nil
}

// decodeHandle parses and validates a handle made by Start. Paths are
// recomputed from the state dir, never taken from the data as is.
func decodeHandle(h sdk.Handle) (*handleData, error) {
	var hd handleData
	if err := json.Unmarshal(h.Data, &hd); err != nil {
		return nil, fmt.Errorf("decode handle %q: %w: %v", h.Name, sdk.ErrInvalid, err)
	}
	if hd.Version != handleVersion {
		return nil, fmt.Errorf("decode handle %q: %w: version %d, this plugin reads %d", h.Name, sdk.ErrInvalid, hd.Version, handleVersion)
	}
	if err := validName(hd.Name); err != nil {
		return nil, fmt.Errorf("decode handle %q: %w", h.Name, err)
	}
	if h.Name != "" && h.Name != hd.Name {
		return nil, fmt.Errorf("decode handle %q: %w: data is for %q", h.Name, sdk.ErrInvalid, hd.Name)
	}
	if !filepath.IsAbs(hd.StateDir) || filepath.Clean(hd.StateDir) != hd.StateDir {
		return nil, fmt.Errorf("decode handle %q: %w: state dir %q is not a clean absolute path", h.Name, sdk.ErrInvalid, hd.StateDir)
	}
	if hd.PID <= 0 || hd.SupervisorPID <= 0 {
		return nil, fmt.Errorf("decode handle %q: %w: no pid", h.Name, sdk.ErrInvalid)
	}
	hd.QMP = filepath.Join(hd.StateDir, FileQMP)
	hd.Console = filepath.Join(hd.StateDir, FileConsole)
	hd.SerialLog = filepath.Join(hd.StateDir, FileSerialLog)
	return &hd, nil
}

func (hd *handleData) path(name string) string { return filepath.Join(hd.StateDir, name) }

// exitRecord is exit.json: how QEMU ended, as its supervisor saw it.
type exitRecord struct {
	// Status is QEMU's wait status as the shell reports it: the exit code,
	// or 128+N when signal N killed it.
	Status     int    `json:"status"`
	FinishedAt string `json:"finishedAt,omitempty"`
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

// stopRecord is stop.json: how Stop ended the VM.
type stopRecord struct {
	// Method is "acpi" (the guest powered off after the power button),
	// "quit" (QMP quit after the timeout) or "kill" (SIGKILL).
	Method string `json:"method"`
	// GuestShutdown is true when QEMU reported a SHUTDOWN event from the guest.
	GuestShutdown bool   `json:"guestShutdown"`
	Reason        string `json:"reason,omitempty"` // the SHUTDOWN event's reason
}

// writeJSONAtomic publishes v as JSON at path.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
