package qemu

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// portForward is one "host:guest[/proto]" entry of WorkloadSpec.Ports.
type portForward struct {
	HostIP string // "" binds all host addresses
	Host   int
	Guest  int
	Proto  string // "tcp" or "udp"
}

// parsePort parses "[ip:]host:guest[/tcp|/udp]".
func parsePort(s string) (portForward, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return portForward{}, fmt.Errorf("port %q: %w: protocol %q (want tcp or udp)", s, sdk.ErrInvalid, proto)
	}
	parts := strings.Split(spec, ":")
	var pf portForward
	switch len(parts) {
	case 2:
	case 3:
		pf.HostIP = parts[0]
		parts = parts[1:]
		if pf.HostIP == "" || strings.ContainsAny(pf.HostIP, ",[] ") {
			return portForward{}, fmt.Errorf("port %q: %w: bad host address", s, sdk.ErrInvalid)
		}
	default:
		return portForward{}, fmt.Errorf("port %q: %w: want host:guest[/proto]", s, sdk.ErrInvalid)
	}
	for i, dst := range []*int{&pf.Host, &pf.Guest} {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 1 || n > 65535 {
			return portForward{}, fmt.Errorf("port %q: %w: %q is not a port number", s, sdk.ErrInvalid, parts[i])
		}
		*dst = n
	}
	pf.Proto = proto
	return pf, nil
}

// hostfwd renders pf as a QEMU user-mode networking hostfwd rule.
func (pf portForward) hostfwd() string {
	return fmt.Sprintf("hostfwd=%s:%s:%d-:%d", pf.Proto, pf.HostIP, pf.Host, pf.Guest)
}

// vmConfig is everything the QEMU command line is made from.
type vmConfig struct {
	Name      string        `json:"name"`
	Arch      string        `json:"arch"`
	Accel     string        `json:"accel"`
	StateDir  string        `json:"stateDir"`
	Kernel    string        `json:"kernel,omitempty"`
	Initrd    string        `json:"initrd,omitempty"`
	Cmdline   string        `json:"cmdline,omitempty"`
	Disk      string        `json:"disk,omitempty"` // the overlay QEMU writes
	CPUs      int           `json:"cpus"`
	MemoryMiB int64         `json:"memoryMiB"`
	NetNone   bool          `json:"netNone"`
	Forwards  []portForward `json:"forwards,omitempty"`
}

// optEscape escapes a value for a QEMU "-opt key=value,..." list (commas doubled).
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// qemuArgs is the QEMU command line for c (without the binary). The VM has
// machine type pc, the serial console on a socket chardev that logs to
// serial.log, two QMP sockets, a pidfile, the isa-debug-exit device (the
// guest's exit-code channel), no display and -no-reboot (a guest reboot
// ends QEMU, so a crash loop is visible).
func qemuArgs(c vmConfig) []string {
	sd := c.StateDir
	a := []string{
		"-name", "guest=" + optEscape(c.Name),
		"-accel", c.Accel,
		"-M", "pc",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot",
		"-m", strconv.FormatInt(c.MemoryMiB, 10),
		"-smp", strconv.Itoa(c.CPUs),
		"-chardev", "socket,id=console,server=on,wait=off,path=" + optEscape(filepath.Join(sd, FileConsole)) +
			",logfile=" + optEscape(filepath.Join(sd, FileSerialLog)),
		"-serial", "chardev:console",
		"-qmp", "unix:" + optEscape(filepath.Join(sd, FileQMP)) + ",server=on,wait=off",
		"-qmp", "unix:" + optEscape(filepath.Join(sd, FileQMPQuery)) + ",server=on,wait=off",
		"-pidfile", filepath.Join(sd, FilePID),
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
	}
	if c.Kernel != "" {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Cmdline != "" {
			a = append(a, "-append", c.Cmdline)
		}
	}
	if c.Disk != "" {
		a = append(a, "-drive", "file="+optEscape(c.Disk)+",format=qcow2,if=virtio,cache=writeback,discard=unmap")
	}
	if c.NetNone {
		a = append(a, "-nic", "none")
	} else {
		nic := "user,model=virtio-net-pci"
		for _, f := range c.Forwards {
			nic += "," + f.hostfwd()
		}
		a = append(a, "-nic", nic)
	}
	return a
}
