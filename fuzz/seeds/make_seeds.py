#!/usr/bin/env python3
"""Writes the hand-made seed corpus under fuzz/corpus/<target>/ (run from anywhere).

Each seed follows the byte layout the target reads (see fuzz/src/lib.rs: Input, Layout).
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")

u8 = lambda v: struct.pack("<B", v)
u16 = lambda v: struct.pack("<H", v)
u32 = lambda v: struct.pack("<I", v)
u64 = lambda v: struct.pack("<Q", v)

NEXT, WRITE, INDIRECT = 1, 2, 4


def desc(off, length, flags):
    """A descriptor at DATA + off (off multiple of 8), with len as u32."""
    return u8(6) + u16(off // 8) + u32(length) + u16(flags)


def fill(descs, heads, idx=None):
    out = u8(len(descs)) + b"".join(descs)
    count = len(heads) | (0x80 if idx is not None else 0)
    out += u8(count) + b"".join(u8(h) for h in heads)
    if idx is not None:
        out += u16(idx)
    return out


def data(payload):
    return u16(len(payload)) + payload


def blk_header(kind, sector):
    return u32(kind) + u32(0) + u64(sector)


def write(target, name, content):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)


# virtio_blk: flags, sectors-1, layout selector (size 16), rings, data, then ops.
def blk(kind, sector, data_flags, data_len=512, ro=0, extra=b""):
    chain = [desc(0, 16, NEXT), desc(0x200, data_len, NEXT | data_flags), desc(0x1000, 1, WRITE)]
    return u8(ro) + u8(7) + u8(4) + fill(chain, [0]) + data(blk_header(kind, sector)) + extra


write("virtio_blk", "read", blk(0, 1, WRITE))
write("virtio_blk", "write", blk(1, 2, 0))
write("virtio_blk", "write_ro", blk(1, 2, 0, ro=1))
write("virtio_blk", "flush_then_reset", blk(4, 0, WRITE, extra=u8(0) + u8(2) + u8(1) + u8(0)))
write("virtio_blk", "get_id", blk(8, 0, WRITE, data_len=20))
write("virtio_blk", "past_end", blk(0, 7, WRITE, data_len=1024))
loop = [desc(0, 16, NEXT), desc(0x200, 512, NEXT | WRITE)]
loop[1] = u8(6 | 0x80) + u16(0x40) + u32(512) + u16(NEXT | WRITE) + u16(0)
write("virtio_blk", "loop", u8(0) + u8(7) + u8(4) + fill(loop, [0]) + data(blk_header(0, 0)))
write("virtio_blk", "avail_jump", u8(0) + u8(7) + u8(4) + fill([desc(0, 16, 0)], [0], idx=0x8000))

# virtio_mmio: device kind, then ops (op byte, register selector or u16 offset, value).
def mw(reg_index, value):
    return u8(0) + u8(reg_index) + u64(value)


def mr(reg_index):
    return u8(3) + u8(reg_index)


# REGS indexes: 0 magic, 5 dev features sel(0x14), 6 drv features(0x20), 7 drv sel(0x24),
# 8 queue sel(0x30), 10 queue num(0x38), 11 ready(0x44), 12 notify(0x50), 14 ack(0x64),
# 15 status(0x70), 16 desc lo(0x80), 18 avail lo(0x90), 20 used lo(0xa0), 21 gen(0xfc)
handshake = (
    mw(15, 0) + mw(15, 1) + mw(15, 3) + mw(7, 1) + mw(6, 1) + mw(15, 11)
    + mw(8, 0) + mw(10, 16) + mw(16, 0x1000) + mw(18, 0x2000) + mw(20, 0x3000) + mw(11, 1)
    + mw(8, 1) + mw(10, 16) + mw(16, 0x5000) + mw(18, 0x6000) + mw(20, 0x7000) + mw(11, 1)
    + mw(15, 15)
)
for kind, name in [(0, "rng"), (1, "blk"), (2, "net")]:
    write("virtio_mmio", name + "_handshake",
          u8(kind) + handshake + u8(5) + u8(0) + u8(5) + u8(1) + u8(6) + mr(15) + mr(21))
write("virtio_mmio", "odd_widths",
      u8(0) + u8(0x10 | 0x60) + u16(0x70) + u64(7) + u8(0x10 | 0x80 | 3) + u16(0x101)
      + u8(0x10 | 0xc0 | 3) + u16(0x100) + mw(15, 0x8f) + mw(10, 3) + mw(11, 1))
write("virtio_mmio", "features_late",
      u8(1) + mw(15, 15) + mw(6, 0xffffffff) + mw(15, 0) + mw(6, 1) + mw(15, 11) + mr(15))

# virtio_net_rng: selector (even: rng, odd: net), layouts, then rounds.
rng_chain = [desc(0, 64, WRITE | NEXT), desc(0x100, 4096, WRITE | NEXT), desc(0x2000, 16, 0)]
write("virtio_net_rng", "rng", u8(0) + u8(4) + fill(rng_chain, [0, 0]))
write("virtio_net_rng", "rng_size1", u8(0) + u8(0) + fill([desc(0, 0xffffffff, WRITE)], [0, 0, 0]))
tx_chain = [desc(0x100, 12, NEXT), desc(0x200, 60, 0)]
rx_chain = [desc(0x1000, 1526, WRITE)]
net = (u8(1) + u8(4) + u8(4) + data(b"\0" * 0x300)
       + u8(0) + fill(tx_chain, [0])
       + u8(1) + fill(rx_chain, [0])
       + u8(2) + u8(1) + u16(72) + b"\0" * 12 + b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + b"E" * 46
       + u8(3) + u8(4) + u8(0) + fill(tx_chain, [0]))
write("virtio_net_rng", "net_tx_rx", net)
write("virtio_net_rng", "net_frame_before_buffers",
      u8(1) + u8(3) + u8(3) + u8(2) + u8(2) + u16(20) + b"a" * 20 + u16(2000) + b"b" * 100
      + u8(1) + fill([desc(0x1000, 8, WRITE | NEXT), desc(0x1100, 8, WRITE)], [0]))

# legacy_ports: op (bit7 write, bit6 input, bits0-1 device, bits2-4 width), port, value.
def sw(reg, v):
    return u8(0x80) + u8(reg) + u64(v)


def sr(reg):
    return u8(0x00) + u8(reg)


uart = (sw(3, 0x80) + sw(0, 1) + sw(1, 0) + sw(3, 3) + sw(1, 0x0f) + sw(4, 0x10)
        + sw(0, ord("h")) + sw(0, ord("i")) + sr(5) + sr(0) + sr(2) + sr(6)
        + u8(0x40) + u8(5) + b"input" + sr(0) + sr(0) + sr(5) + sw(4, 0) + sr(0))
write("legacy_ports", "uart", uart)
write("legacy_ports", "uart_fifo_full", u8(0x40) + u8(79) + b"z" * 79 + (u8(0x40) + u8(64) + b"y" * 64) * 2 + sr(0) * 4)
i8042 = (u8(0x81) + u8(4) + u64(0x20) + u8(0x01) + u8(0) + u8(0x01) + u8(4)
         + u8(0x81) + u8(4) + u64(0x60) + u8(0x81) + u8(0) + u64(0x47)
         + u8(0x81) + u8(4) + u64(0xfe) + u8(0x81 | 0x0c) + u8(4) + u64(0xfe))
write("legacy_ports", "i8042_reset", i8042)
write("legacy_ports", "other_ports", u8(0x82) + u16(0x3f7) + u64(1) + u8(0x02) + u16(0x65) + u8(0x8e) + u16(0x3fe) + u64(0xffff))

# kernel_loader: 16 parameter bytes, then the image.
def params(mem_sel=0, initrd=0x1000, addr_max=0, kernel_end=0, cmdline=16):
    p = u8(mem_sel) + u32(initrd) + u32(addr_max) + u32(kernel_end) + u16(cmdline)
    return (p + b"\0" * 16)[:16]


def elf(entry=0x100000, paddr=0x100000, body=b"\xf4" * 64, pvh=False):
    ehsize, phsize = 64, 56
    phnum = 2 if pvh else 1
    off = ehsize + phsize * phnum
    note = b""
    if pvh:
        desc_ = u32(0x100000)
        note = u32(4) + u32(len(desc_)) + u32(18) + b"Xen\0" + desc_
    hdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
           + u16(2) + u16(62) + u32(1) + u64(entry) + u64(ehsize) + u64(0)
           + u32(0) + u16(ehsize) + u16(phsize) + u16(phnum) + u16(64) + u16(0) + u16(0))
    ph = (u32(1) + u32(5) + u64(off) + u64(paddr) + u64(paddr)
          + u64(len(body)) + u64(len(body)) + u64(0x1000))
    if pvh:
        ph += (u32(4) + u32(4) + u64(off + len(body)) + u64(0) + u64(0)
               + u64(len(note)) + u64(len(note)) + u64(4))
    return hdr + ph + body + note


def bzimage(setup_sects=1, syssize=4, version=0x020f, xload=1, loadflags=1, init_size=0x10000):
    img = bytearray(512 * (setup_sects + 1) + syssize * 16)
    struct.pack_into("<B", img, 0x1f1, setup_sects)
    struct.pack_into("<H", img, 0x1fe, 0xaa55)
    struct.pack_into("<I", img, 0x202, 0x53726448)
    struct.pack_into("<H", img, 0x206, version)
    struct.pack_into("<B", img, 0x211, loadflags)
    struct.pack_into("<I", img, 0x214, 0x100000)
    struct.pack_into("<I", img, 0x1f4, syssize)
    struct.pack_into("<I", img, 0x22c, 0x37ffffff)
    struct.pack_into("<H", img, 0x236, xload)
    struct.pack_into("<I", img, 0x238, 2048)
    struct.pack_into("<I", img, 0x260, init_size)
    return bytes(img)


write("kernel_loader", "elf", params() + elf())
write("kernel_loader", "elf_pvh", params(initrd=0x200000) + elf(pvh=True))
write("kernel_loader", "elf_low", params() + elf(paddr=0x1000))
write("kernel_loader", "bzimage", params(cmdline=3000) + bzimage())
write("kernel_loader", "bzimage_old", params() + bzimage(version=0x0206, xload=0))
write("kernel_loader", "bzimage_truncated", params() + bzimage(syssize=4)[:700])
write("kernel_loader", "initrd_place", params(mem_sel=1, initrd=0x7fffff, addr_max=0xffffff, kernel_end=0x200000) + b"junk")

# seccomp_json: filter files.
basic = b'''{
  "vmm": {
    "mismatch_action": "kill_process",
    "match_action": "allow",
    "filter": [
      {"syscall": "write"}, {"syscall": "rt_sigreturn"}, {"syscall": "exit_group"},
      {"syscall": "prctl"},
      {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 44672}]},
      {"syscall": "mmap", "args": [{"index": 2, "type": "qword", "op": {"masked_eq": 4}, "val": 0}]}
    ]
  }
}'''
write("seccomp_json", "basic", basic)
write("seccomp_json", "two_kinds", b'{"vcpu": {"filter": [{"syscall": "ioctl"}]}, "virtio-blk": {"mismatch_action": {"errno": 1}, "filter": []}}')
write("seccomp_json", "bad_kind", b'{"nope": {"filter": []}}')
write("seccomp_json", "nested", b'{"vmm": {"filter": [[[[{"a": [1, 2.5e3, -0, true, null, "\\u00e9\\n"]}]]]]}}')

# strace_parser: strace -f -tt output lines.
strace = b'''12345 10:00:00.000001 execve("./microvm", ["microvm"], 0x7ffc /* 20 vars */) = 0
12345 10:00:00.000100 prctl(PR_SET_NAME, "vmm") = 0
12346 10:00:00.000200 prctl(PR_SET_NAME, "vcpu0") = 0
12346 10:00:00.000300 ioctl(12, KVM_RUN, 0) = 0
12347 10:00:00.000400 prctl(PR_SET_NAME, "virtio-blk0") = 0
12347 10:00:00.000500 pread64(9, "\\0\\0"..., 512, 0) = 512
12347 10:00:00.000600 openat(AT_FDCWD, "/etc/passwd", O_RDONLY <unfinished ...>
12345 10:00:00.000700 epoll_wait(4,  <unfinished ...>
12347 10:00:00.000800 <... openat resumed>) = -1 EACCES (Permission denied)
12346 10:00:00.000900 socket(AF_INET, SOCK_STREAM, 0) = 5
12346 10:00:00.001000 +++ killed by SIGSYS (core dumped) +++
12345 10:00:00.001100 --- SIGSYS {si_signo=SIGSYS, si_code=SYS_SECCOMP, si_call_addr=0x1, si_syscall=__NR_socket, si_arch=AUDIT_ARCH_X86_64} ---
'''
write("strace_parser", "session", strace)
write("strace_parser", "comm", b'[pid 77] prctl(PR_SET_NAME, "net0") = 0\n[pid 77] sendto(3, "", 0, 0, NULL, 0) = 0\n77 <... resumed>) = ?\n')
write("strace_parser", "comm_format", b'''100<microvm> prctl(PR_SET_NAME, "vmm") = 0
100<vmm> socket(AF_UNIX, SOCK_STREAM, 0) = 3
101<vmm> prctl(PR_SET_NAME, "vcpu0") = 0
101<vcpu0> seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, {len=90, filter=0x1}) = 0
101<vcpu0> ioctl(13, KVM_RUN <unfinished ...>
100<vmm> seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, {len=90, filter=0x1}) = 0
101<vcpu0> <... ioctl resumed>, 0) = 0
101<vcpu0> mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f
101<vcpu0> futex(0x1, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0) = 0
[pid 102<virtio-net0>] write(2, "a, b) = (", 8) = 8
101<vcpu0> --- SIGRT_2 {si_signo=SIGRT_2} ---
100<vmm> tgkill(100, 101, SIGRT_2) = 0
100<vmm> openat(AT_FDCWD, "/x", O_RDONLY) = -1 EACCES (Permission denied)
''')
# Regression (errors must stay on one line): a JSON-escaped newline in a key.
write("seccomp_json", "newline_key", b'{"vmm": {"filter": [{"syscall": "mmap", "\\nargs": [{"index": 0}]}]}}')
