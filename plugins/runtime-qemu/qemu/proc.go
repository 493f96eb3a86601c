package qemu

import (
	"github.com/volt-cli/volt/sdk/proc"
)

// procInfo is what the runtime reads from /proc/PID/stat (sdk/proc).
type procInfo = proc.Stat

func parseStat(b []byte) (procInfo, error) { return proc.ParseStat(b) }
func readProc(pid int) (procInfo, error)   { return proc.Read(pid) }

// alive reports whether pid is a live process that started at startTime.
func alive(pid int, startTime uint64) bool { return proc.Alive(pid, startTime) }
