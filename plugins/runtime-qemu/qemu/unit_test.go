package qemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/volt-cli/volt/sdk"
)

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want portForward
		err  bool
	}{
		{"8080:80", portForward{Host: 8080, Guest: 80, Proto: "tcp"}, false},
		{"5353:53/udp", portForward{Host: 5353, Guest: 53, Proto: "udp"}, false},
		{"127.0.0.1:2222:22", portForward{HostIP: "127.0.0.1", Host: 2222, Guest: 22, Proto: "tcp"}, false},
		{"80", portForward{}, true},
		{"0:80", portForward{}, true},
		{"80:70000", portForward{}, true},
		{"80:80/sctp", portForward{}, true},
		{"a:80", portForward{}, true},
		{"1.2.3.4,x:80:80", portForward{}, true},
		{"1:2:3:4", portForward{}, true},
	}
	for _, tc := range tests {
		got, err := parsePort(tc.in)
		if tc.err {
			if !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("parsePort(%q): err = %v, want ErrInvalid", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	pf, _ := parsePort("127.0.0.1:2222:22")
	if got := pf.hostfwd(); got != "hostfwd=tcp:127.0.0.1:2222-:22" {
		t.Errorf("hostfwd = %q", got)
	}
}

func TestQEMUArgs(t *testing.T) {
	base := vmConfig{Name: "web", Accel: AccelTCG, StateDir: "/run/v,m", Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0",
		CPUs: 2, MemoryMiB: 256}
	a := qemuArgs(base)
	s := strings.Join(a, " ")
	for _, want := range []string{"-M pc", "-accel tcg", "-no-reboot", "-m 256", "-smp 2", "-kernel /k", "-initrd /i",
		"-append console=ttyS0", "path=/run/v,,m/console.sock", "logfile=/run/v,,m/serial.log", "-pidfile /run/v,m/qemu.pid",
		"unix:/run/v,,m/qmp.sock,server=on,wait=off", "isa-debug-exit", "-nic user,model=virtio-net-pci"} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q: %s", want, s)
		}
	}
	none := base
	none.NetNone = true
	none.Kernel = ""
	none.Disk = "/s/disk.qcow2"
	s = strings.Join(qemuArgs(none), " ")
	if !strings.Contains(s, "-nic none") || strings.Contains(s, "-kernel") || !strings.Contains(s, "file=/s/disk.qcow2,format=qcow2,if=virtio") {
		t.Errorf("disk boot args: %s", s)
	}
	fw := base
	fw.Forwards = []portForward{{Host: 8080, Guest: 80, Proto: "tcp"}, {HostIP: "127.0.0.1", Host: 53, Guest: 53, Proto: "udp"}}
	if a := qemuArgs(fw); !slices.Contains(a, "user,model=virtio-net-pci,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:53-:53") {
		t.Errorf("forward args: %v", a)
	}
}

func TestExitMeaning(t *testing.T) {
	tests := []struct {
		status, code int
		sig          syscall.Signal
		guest        bool
	}{
		{0, 0, 0, true},
		{7, 3, 0, true},
		{3, 1, 0, true},
		{1, 1, 0, false},
		{137, 137, syscall.SIGKILL, false},
		{143, 143, syscall.SIGTERM, false},
		{2, 2, 0, false},
	}
	for _, tc := range tests {
		code, sig, guest := exitMeaning(tc.status)
		if code != tc.code || sig != tc.sig || guest != tc.guest {
			t.Errorf("exitMeaning(%d) = %d, %v, %v; want %d, %v, %v", tc.status, code, sig, guest, tc.code, tc.sig, tc.guest)
		}
	}
}

func TestKernelArch(t *testing.T) {
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	arm := make([]byte, 64)
	copy(arm[0x38:], "ARM\x64")
	elf := func(m uint16) []byte {
		b := make([]byte, 64)
		copy(b, "\x7fELF")
		b[5] = 1
		binary.LittleEndian.PutUint16(b[18:], m)
		return b
	}
	zimg := make([]byte, 64)
	binary.LittleEndian.PutUint32(zimg[0x24:], 0x016f2818)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"bzImage", bz, ArchAMD64},
		{"arm64 Image", arm, ArchARM64},
		{"elf x86_64", elf(62), ArchAMD64},
		{"elf aarch64", elf(183), ArchARM64},
		{"elf unknown", elf(2), ""},
		{"arm zImage", zimg, ArchARMv7},
		{"garbage", []byte("hello"), ""},
		{"empty", nil, ""},
	}
	for _, tc := range tests {
		if got := kernelArch(bytes.NewReader(tc.b)); got != tc.want {
			t.Errorf("%s: kernelArch = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestHostMemory(t *testing.T) {
	got, err := hostMemory(strings.NewReader("MemFree: 1 kB\nMemTotal:  2048 kB\n"))
	if err != nil || got != 2048*1024 {
		t.Errorf("hostMemory = %d, %v", got, err)
	}
	for _, bad := range []string{"", "MemTotal: x kB\n", "MemTotal: -5 kB\n"} {
		if _, err := hostMemory(strings.NewReader(bad)); err == nil {
			t.Errorf("hostMemory(%q): no error", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := "123 (qemu (x) y) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0\n"
	pi, err := parseStat([]byte(line))
	if err != nil || pi.State != 'S' || pi.StartTime != 98765 {
		t.Errorf("parseStat = %+v, %v", pi, err)
	}
	for _, bad := range []string{"", "1 (x) S 1", "1 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestDecodeHandle(t *testing.T) {
	good := `{"v":1,"name":"vm1","stateDir":"/var/lib/volt/vms/vm1","pid":10,"startTime":5,"supervisorPid":9,"supervisorStartTime":4,"qmp":"/etc/evil"}`
	hd, err := decodeHandle(sdk.Handle{Name: "vm1", Data: []byte(good)})
	if err != nil {
		t.Fatal(err)
	}
	if hd.QMP != "/var/lib/volt/vms/vm1/qmp.sock" {
		t.Errorf("QMP path taken from the data: %q", hd.QMP)
	}
	for _, bad := range []string{
		``, `{}`, `{"v":2,"name":"vm1","stateDir":"/x","pid":1,"supervisorPid":1}`,
		`{"v":1,"name":"../x","stateDir":"/x","pid":1,"supervisorPid":1}`,
		`{"v":1,"name":"vm1","stateDir":"x","pid":1,"supervisorPid":1}`,
		`{"v":1,"name":"vm1","stateDir":"/x/../y","pid":1,"supervisorPid":1}`,
		`{"v":1,"name":"vm1","stateDir":"/x","pid":0,"supervisorPid":1}`,
		`{"v":1,"name":"other","stateDir":"/x","pid":1,"supervisorPid":1}`,
	} {
		if _, err := decodeHandle(sdk.Handle{Name: "vm1", Data: []byte(bad)}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("decodeHandle(%q): err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestParseImageInfo(t *testing.T) {
	ii, err := parseImageInfo([]byte(`{"format":"qcow2","virtual-size":1048576,"backing-filename":"/b","backing-filename-format":"raw"}`))
	if err != nil || ii.Format != "qcow2" || ii.BackingFilename != "/b" || ii.BackingFormat != "raw" {
		t.Errorf("parseImageInfo = %+v, %v", ii, err)
	}
	for _, bad := range []string{"", "{}", "[1]", `{"format":""}`} {
		if _, err := parseImageInfo([]byte(bad)); err == nil {
			t.Errorf("parseImageInfo(%q): no error", bad)
		}
	}
}

func TestParseQEMUVersion(t *testing.T) {
	if got := parseQEMUVersion([]byte("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright")); got != "7.2.22" {
		t.Errorf("version %q", got)
	}
	if got := parseQEMUVersion([]byte("nonsense")); got != "unknown" {
		t.Errorf("version %q", got)
	}
}
