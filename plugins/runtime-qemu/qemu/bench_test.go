package qemu

import (
	"context"
	"testing"
	"time"
)

// BenchmarkStart times Start of the test image (validation, supervisor shim,
// QEMU up to its QMP greeting, vm.json synced); the guest's boot and the
// Destroy after each Start are outside the timer. bench/vm-start.sh compares
// the whole path to the guest's marker with plain QEMU.
func BenchmarkStart(b *testing.B) {
	needVM(b)
	rt := New(Options{StopTimeout: time.Millisecond})
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		spec := kernelSpec(b, vmName("bench"), "")
		h, err := rt.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := rt.Destroy(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
