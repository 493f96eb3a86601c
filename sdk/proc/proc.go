// Package proc reads process identity from /proc for runtime plugins: a pid
// plus its start time (field 22 of /proc/PID/stat) names one process for its
// whole life, so a handle stored in state never mistakes a reused pid for
// the workload it started.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is what runtimes read from /proc/PID/stat.
type Stat struct {
	State     byte   // field 3: R, S, D, Z, ...
	PPID      int    // field 4
	StartTime uint64 // field 22: start time in clock ticks after boot
}

// ParseStat parses the contents of /proc/PID/stat. The command name (field 2)
// may contain spaces and parentheses, so fields are counted after the last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return Stat{}, fmt.Errorf("parse /proc stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("parse /proc stat: %d fields after command, want at least 20", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc stat: ppid %q: %w", f[1], err)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc stat: starttime %q: %w", f[19], err)
	}
	return Stat{State: f[0][0], PPID: ppid, StartTime: st}, nil
}

// Read reads /proc/PID/stat. A missing process yields an error wrapping os.ErrNotExist.
func Read(pid int) (Stat, error) {
	if pid <= 0 {
		return Stat{}, fmt.Errorf("read /proc stat: pid %d: %w", pid, os.ErrNotExist)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return ParseStat(b)
}

// Alive reports whether pid is a live (non-zombie) process that started at
// startTime; a start time of 0 skips that check.
func Alive(pid int, startTime uint64) bool {
	st, err := Read(pid)
	if err != nil || st.State == 'Z' || st.State == 'X' {
		return false
	}
	return startTime == 0 || st.StartTime == startTime
}
