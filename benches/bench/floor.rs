//! The floor: what this machine's KVM allows at all. A VM built here with kvm-ioctls
//! directly (one vCPU in long mode, no irqchip, no devices, no logging, no seccomp) runs
//! the same exit loops as the tiny guest's `bench` scenario:
//!
//! ```text
//!   test ecx, ecx; jz done
//! loop:
//!   <op>            in al,dx | out dx,al | mov eax,[rbx] | mov [rbx],eax
//!   dec ecx; jnz loop
//! done:
//!   hlt             (a userspace exit: there is no in-kernel irqchip)
//! ```
//!
//! and times the KVM_RUN loop from the first KVM_RUN to the HLT exit.

use anyhow::{bail, Context, Result};
use kvm_bindings::{kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::launch::now_ns;

/// Guest RAM of the floor VM: enough for the boot structures and the code at 1 MiB.
const MEM_SIZE: usize = 2 << 20;
/// Where the code goes.
const CODE: u64 = 0x10_0000;
/// Port of the PIO loops (as in the tiny guest).
const PORT: u64 = 0x80;
/// An address without RAM (inside the 1 GiB identity map): MMIO exits.
const MMIO_ADDR: u64 = 0x1000_0000;

/// The exit kinds the floor can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `in al, dx`.
    PioRead,
    /// `out dx, al`.
    PioWrite,
    /// `mov eax, [rbx]`.
    MmioRead,
    /// `mov [rbx], eax`.
    MmioWrite,
    /// `mov [rbx], eax` to an address with a KVM ioeventfd: no userspace exit.
    Ioeventfd,
}

/// The loop's machine code for `kind`.
pub fn code(kind: Kind) -> Vec<u8> {
    let op: &[u8] = match kind {
        Kind::PioRead => &[0xEC],
        Kind::PioWrite => &[0xEE],
        Kind::MmioRead => &[0x8B, 0x03],
        Kind::MmioWrite | Kind::Ioeventfd => &[0x89, 0x03],
    };
    let body = op.len() as u8 + 4; // op + dec ecx (2) + jnz (2)
    let mut c = vec![0x85, 0xC9, 0x74, body];
    c.extend_from_slice(op);
    c.extend_from_slice(&[0xFF, 0xC9, 0x75, body.wrapping_neg(), 0xF4]);
    c
}

/// Runs `n` exits of `kind` in a fresh VM and returns the nanoseconds from the first
/// KVM_RUN to the HLT exit.
pub fn measure(kvm: &Kvm, kind: Kind, n: u32) -> Result<u64> {
    let vm = kvm.create_vm().context("KVM_CREATE_VM")?;
    vm.set_tss_address(0xfffb_d000)
        .context("KVM_SET_TSS_ADDR")?;
    let mem = arch::GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)])
        .context("floor guest memory")?;
    let region = mem.iter().next().context("floor memory region")?;
    let host = region
        .get_host_address(vm_memory::MemoryRegionAddress(0))
        .context("floor memory address")?;
    let desc = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: host as u64,
    };
    // SAFETY: `mem` is a live mapping of MEM_SIZE bytes that outlives the VM (dropped after
    // it, at the end of this function).
    unsafe { vm.set_user_memory_region(desc) }.context("KVM_SET_USER_MEMORY_REGION")?;
    let evt = EventFd::new(libc::EFD_NONBLOCK).context("eventfd")?;
    if kind == Kind::Ioeventfd {
        vm.register_ioevent(&evt, &IoEventAddress::Mmio(MMIO_ADDR), NoDatamatch)
            .context("KVM_IOEVENTFD")?;
    }
    mem.write_slice(&code(kind), GuestAddress(CODE))
        .context("writing the floor code")?;
    let mut vcpu = vm.create_vcpu(0).context("KVM_CREATE_VCPU")?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .context("KVM_GET_SUPPORTED_CPUID")?;
    vcpu.set_cpuid2(&cpuid).context("KVM_SET_CPUID2")?;
    arch::setup_long_mode(&mem, &vcpu).context("long mode")?;
    let mut regs = arch::regs::boot_regs(CODE, 0);
    regs.rcx = u64::from(n);
    regs.rdx = PORT;
    regs.rbx = MMIO_ADDR;
    vcpu.set_regs(&regs).context("KVM_SET_REGS")?;

    let t0 = now_ns();
    let mut exits = 0u64;
    loop {
        match vcpu.run() {
            Ok(VcpuExit::IoIn(_, data)) | Ok(VcpuExit::MmioRead(_, data)) => {
                data.fill(0xff);
                exits += 1;
            }
            Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::MmioWrite(..)) => exits += 1,
            Ok(VcpuExit::Hlt) => break,
            Ok(other) => bail!("floor VM: unexpected exit {other:?}"),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => bail!("floor VM: KVM_RUN: {e}"),
        }
    }
    let elapsed = now_ns() - t0;
    let want = if kind == Kind::Ioeventfd {
        0
    } else {
        u64::from(n)
    };
    if exits != want {
        bail!("floor VM: {exits} userspace exits for {kind:?} x {n}, expected {want}");
    }
    drop(vcpu);
    drop(vm);
    drop(mem);
    Ok(elapsed)
}
