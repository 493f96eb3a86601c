/*
 * kvmprobe.S — the guest Fingerprint boots to decide whether KVM really runs
 * guests on this host. A multiboot (a.out kludge) image that QEMU's -kernel
 * loads at 1 MiB and enters in 32-bit protected mode; it builds identity page
 * tables, switches to 64-bit long mode (what a Linux kernel does first) and
 * writes 0x2a to the isa-debug-exit port 0xf4, so QEMU exits with status 85.
 * A host whose KVM cannot run ordinary guests hangs or fails before that.
 *
 * Rebuild kvmprobe.bin (checked in) with: go generate
 */
	.set MAGIC, 0x1BADB002
	.set FLAGS, 0x00010000
	.text
	.code32
	.globl _start
_start:
header:
	.long MAGIC
	.long FLAGS
	.long -(MAGIC + FLAGS)
	.long header          /* header_addr */
	.long header          /* load_addr */
	.long 0               /* load_end_addr: whole file */
	.long 0               /* bss_end_addr: none */
	.long entry           /* entry_addr */
entry:
	cli
	mov $0x1000, %edi
	xor %eax, %eax
	mov $3072, %ecx
	rep stosl
	movl $0x2003, 0x1000
	movl $0x3003, 0x2000
	movl $0x83, 0x3000
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $0x1000, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	lgdt gdtr
	mov %cr0, %eax
	or $0x80000001, %eax
	mov %eax, %cr0
	ljmp $0x08, $long64
	.code64
long64:
	mov $0x10, %ax
	mov %ax, %ds
	mov $0x2a, %al
	out %al, $0xf4
1:	hlt
	jmp 1b
	.balign 8
gdt:
	.quad 0
	.quad 0x00209A0000000000
	.quad 0x0000920000000000
gdt_end:
gdtr:
	.word gdt_end - gdt - 1
	.long gdt
