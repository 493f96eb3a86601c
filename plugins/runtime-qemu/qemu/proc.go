package qemu

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procInfo is what the runtime reads from /proc/PID/stat.
type procInfo struct {
	State     byte   // field 3: R, S, D, Z, ...
	StartTime uint64 // field 22: start time in clock ticks after boot
}

// parseStat parses the contents of /proc/PID/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStat(b []byte) (procInfo, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("parse /proc stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, fmt.Errorf("parse /proc stat: %d fields after command, want at least 20", len(f))
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("parse /proc stat: starttime %q: %w", f[19], err)
	}
	return procInfo{State: f[0][0], StartTime: st}, nil
}

// readProc reads /proc/PID/stat; a missing process yields an error wrapping os.ErrNotExist.
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
// startTime, so a reused pid is never taken for the VM's QEMU.
func alive(pid int, startTime uint64) bool {
	pi, err := readProc(pid)
	if err != nil || pi.State == 'Z' || pi.State == 'X' {
		return false
	}
	return pi.StartTime == startTime
}
