package qemu

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/volt-cli/volt/sdk"
)

// FuzzDecodeHandle: handles come back from stack.json; any bytes must be
// refused cleanly or yield paths inside the state dir.
func FuzzDecodeHandle(f *testing.F) {
	f.Add([]byte(`{"v":1,"name":"vm1","stateDir":"/var/lib/volt/vms/vm1","pid":10,"startTime":5,"supervisorPid":9,"supervisorStartTime":4}`))
	f.Add([]byte(`{"v":1,"name":"vm1","stateDir":"/","pid":1,"supervisorPid":1}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, err := decodeHandle(sdk.Handle{Data: b})
		if err != nil {
			return
		}
		if !bytes.HasPrefix([]byte(hd.QMP), []byte(hd.StateDir)) || hd.PID <= 0 {
			t.Fatalf("accepted handle %+v", hd)
		}
	})
}

// FuzzParsePort: ports come from recipes.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:53:53/udp", "80", "::", "1:2:3:4", "a,b:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pf, err := parsePort(s)
		if err != nil {
			return
		}
		if pf.Host < 1 || pf.Host > 65535 || pf.Guest < 1 || pf.Guest > 65535 || bytes.ContainsAny([]byte(pf.hostfwd()), ", ") {
			t.Fatalf("parsePort(%q) = %+v", s, pf)
		}
	})
}

// FuzzQMPMessage: what QEMU (or whatever listens on the socket) sends.
func FuzzQMPMessage(f *testing.F) {
	f.Add([]byte(`{"QMP": {"version": {}, "capabilities": ["oob"]}}` + "\n"))
	f.Add([]byte(`{"return": {}}` + "\n"))
	f.Add([]byte(`{"error": {"class": "GenericError", "desc": "x"}}` + "\n"))
	f.Add([]byte(`{"event": "SHUTDOWN", "data": {"guest": true}}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		line, err := readLine(bufio.NewReaderSize(bytes.NewReader(b), 16), 1024)
		if err != nil {
			return
		}
		var m qmpMessage
		_ = json.Unmarshal(line, &m)
	})
}

// FuzzParseStat: /proc/PID/stat of an arbitrary process name.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("123 (qemu) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0\n"))
	f.Add([]byte("1 ()) R"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseStat(b) })
}

// FuzzKernelArch: kernels come from bundles.
func FuzzKernelArch(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01"))
	f.Add(make([]byte, 0x210))
	f.Fuzz(func(t *testing.T, b []byte) { _ = kernelArch(bytes.NewReader(b)) })
}
