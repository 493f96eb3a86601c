package nspawn

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/volt-cli/volt/sdk/proc"
)

// procInfo is what the runtime reads from /proc/PID/stat (sdk/proc).
type procInfo = proc.Stat

func parseStat(b []byte) (procInfo, error) { return proc.ParseStat(b) }
func readProc(pid int) (procInfo, error)   { return proc.Read(pid) }

// alive reports whether pid is a live process that started at startTime.
func alive(pid int, startTime uint64) bool { return proc.Alive(pid, startTime) }

// childrenOf lists the pids whose parent is ppid, by scanning /proc (this
// kernel has no /proc/PID/task/TID/children). Children almost always have
// higher pids than their parent, so those are read first; the rest only when
// none is found there (pid wrap-around).
func childrenOf(ppid int) ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	var low, out []int
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if pid <= ppid {
			low = append(low, pid)
			continue
		}
		if isChild(pid, ppid) {
			out = append(out, pid)
		}
	}
	if len(out) == 0 {
		for _, pid := range low {
			if isChild(pid, ppid) {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

func isChild(pid, ppid int) bool {
	pi, err := readProc(pid)
	return err == nil && pi.PPID == ppid && pi.State != 'Z'
}

// signalIfAlive sends sig to pid when it is still the process that started at
// startTime. It reports whether the signal was sent.
func signalIfAlive(pid int, startTime uint64, sig syscall.Signal) bool {
	if !alive(pid, startTime) {
		return false
	}
	return syscall.Kill(pid, sig) == nil
}

// sigState is what /proc/PID/status says about a process's signals.
type sigState struct {
	Name        string
	TermHandled bool // SIGTERM is blocked or caught
	// TiniReady: SIGTTOU is ignored, which tini sets up right after
	// blocking the signals it forwards (SigBlk itself reads 0 while tini
	// sits in sigtimedwait).
	TiniReady    bool
	ExecComplete bool // Name is no longer systemd-nspawn's
}

// parseSigState parses /proc/PID/status.
func parseSigState(b []byte) sigState {
	var s sigState
	const termBit = uint64(1) << (uint(syscall.SIGTERM) - 1)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.Name = v
		case "SigIgn":
			if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&(uint64(1)<<(uint(syscall.SIGTTOU)-1)) != 0 {
				s.TiniReady = true
			}
		case "SigBlk", "SigCgt":
			if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&termBit != 0 {
				s.TermHandled = true
			}
		}
	}
	s.ExecComplete = s.Name != "" && s.Name != "systemd-nspawn"
	return s
}

// readSigState reads /proc/PID/status.
func readSigState(pid int) (sigState, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return sigState{}, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	return parseSigState(b), nil
}
