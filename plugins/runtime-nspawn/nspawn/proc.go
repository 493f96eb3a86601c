package nspawn

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procInfo is what Volt reads from /proc/PID/stat.
type procInfo struct {
	State     byte   // field 3: R, S, D, Z, ...
	PPID      int    // field 4
	StartTime uint64 // field 22: start time in clock ticks after boot
}

// parseStat parses the contents of /proc/PID/stat. The command name (field 2)
// may contain spaces and parentheses, so fields are counted after the last ')'.
func parseStat(b []byte) (procInfo, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procInfo{}, fmt.Errorf("parse /proc stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, fmt.Errorf("parse /proc stat: %d fields after command, want at least 20", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procInfo{}, fmt.Errorf("parse /proc stat: ppid %q: %w", f[1], err)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("parse /proc stat: starttime %q: %w", f[19], err)
	}
	return procInfo{State: f[0][0], PPID: ppid, StartTime: st}, nil
}

// readProc reads /proc/PID/stat. A missing process yields an error wrapping os.ErrNotExist.
func readProc(pid int) (procInfo, error) {
	if pid <= 0 {
		return procInfo{}, fmt.Errorf("read /proc stat: pid %d: %w", pid, os.ErrNotExist)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return parseStat(b)
}

// alive reports whether pid is a live (non-zombie) process that started at
// startTime; a start time of 0 skips that check.
func alive(pid int, startTime uint64) bool {
	pi, err := readProc(pid)
	if err != nil {
		return false
	}
	if pi.State == 'Z' || pi.State == 'X' {
		return false
	}
	return startTime == 0 || pi.StartTime == startTime
}

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
