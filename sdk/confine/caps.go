package confine

import (
	"fmt"
	"os"
	"slices"
	"sort"

	"golang.org/x/sys/unix"
)

// CapabilityNumbers maps every Linux capability name Volt knows to its number.
var CapabilityNumbers = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON,
	"CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// CapabilityNames lists CapabilityNumbers' names, sorted.
func CapabilityNames() []string {
	out := make([]string, 0, len(CapabilityNumbers))
	for n := range CapabilityNumbers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// capsMask turns names into a 64-bit capability mask.
func capsMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		c, ok := CapabilityNumbers[n]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		m |= 1 << uint(c)
	}
	return m, nil
}

// LimitCapabilities reduces the calling process to the capabilities keep:
// it drops every other one from the bounding set (so nothing it executes
// regains them, root included) and from its effective, permitted and
// inheritable sets, and clears the ambient set. Dropping from the bounding
// set needs CAP_SETPCAP, which is dropped last. The process should be
// single-threaded (or locked to its OS thread) since capsets are per thread
// until exec.
//
// A process without CAP_SETPCAP (a non-root user) cannot shrink its
// bounding set; with no_new_privs set it cannot gain anything from it
// either (setuid and file capabilities are ignored), so then the bounding
// set is left as it is. Without no_new_privs that is an error.
func LimitCapabilities(keep []string) error {
	mask, err := capsMask(keep)
	if err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	canDrop := data[0].Effective&(1<<unix.CAP_SETPCAP) != 0
	if !canDrop {
		if nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); nnp != 1 {
			canDrop = true // try, and report the kernel's refusal
		}
	}
	last := unix.CAP_LAST_CAP
	if b, err := readCapLastCap(); err == nil {
		last = b
	}
	drop := func(c int) error {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil || in == 0 {
			return nil // unknown to this kernel, or already gone
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s from the bounding set: %w", capName(c), err)
		}
		return nil
	}
	for c := 0; c <= last && canDrop; c++ {
		if mask&(1<<uint(c)) == 0 && c != unix.CAP_SETPCAP {
			if err := drop(c); err != nil {
				return err
			}
		}
	}
	if mask&(1<<unix.CAP_SETPCAP) == 0 && canDrop {
		if err := drop(unix.CAP_SETPCAP); err != nil {
			return err
		}
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	for i := range data {
		m := uint32(mask >> (32 * uint(i)))
		data[i].Effective &= m
		data[i].Permitted &= m
		data[i].Inheritable &= m
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// BoundingCapabilities returns the names in the calling thread's bounding set.
func BoundingCapabilities() []string {
	var out []string
	for n, c := range CapabilityNumbers {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && in == 1 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func capName(c int) string {
	for n, x := range CapabilityNumbers {
		if x == c {
			return n
		}
	}
	return fmt.Sprintf("capability %d", c)
}

// readCapLastCap reads the kernel's highest capability number.
func readCapLastCap() (int, error) {
	var n int
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	_, err = fmt.Sscanf(string(b), "%d", &n)
	return n, err
}
