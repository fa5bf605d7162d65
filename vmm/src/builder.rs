//! Builds a VM ready to run: KVM VM with in-kernel irqchip and PIT, guest RAM, the loaded
//! kernel with its boot structures, the port-I/O devices, and configured vCPUs.

use std::sync::{Arc, Mutex};

use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use devices::serial::{SerialDevice, COM1_BASE, COM1_IRQ, COM1_LEN};
use devices::{Bus, EventFdTrigger};
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::config::VmConfig;
use crate::device_manager::{self, AttachedDevice};
use crate::error::{Error, Result};
use crate::kernel::{self, LoadedKernel};
use crate::vcpu::{Vcpu, VmControl};

/// KVM's TSS needs three pages somewhere the guest does not use; just below the BIOS
/// area at the top of the 32-bit space, as is customary.
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
/// The EPT identity map page, right below the TSS.
const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

/// A built VM, not yet running.
pub struct Vm {
    /// The KVM VM; kept alive for the lifetime of the vCPUs.
    pub fd: VmFd,
    /// Guest RAM.
    pub mem: GuestMemoryMmap,
    /// Configured vCPUs, to be moved into their threads.
    pub vcpus: Vec<Vcpu>,
    /// The UART, shared with the main thread for stdin.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Triggered by the i8042 when the guest resets.
    pub reset_evt: EventFd,
    /// Shared stop/exit state.
    pub ctl: Arc<VmControl>,
    /// Where the kernel went.
    pub kernel: LoadedKernel,
    /// virtio devices on the MMIO bus, each to get its own thread.
    pub virtio: Vec<AttachedDevice>,
}

/// Opens /dev/kvm with a plain-words error for the usual failures.
pub fn open_kvm_device() -> Result<Kvm> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT => Error::KvmMissing,
        libc::EACCES | libc::EPERM => Error::KvmPermission,
        _ => Error::KvmOpen(e),
    })
}

/// Opens /dev/kvm and checks the API version and every capability microvm needs.
pub fn open_kvm() -> Result<Kvm> {
    let kvm = open_kvm_device()?;
    let version = kvm.get_api_version();
    if version != kvm_bindings::KVM_API_VERSION as i32 {
        return Err(Error::MissingCapability(if version < 12 {
            "KVM API version 12"
        } else {
            "KVM API version 12 (the host reports a newer, unknown one)"
        }));
    }
    for (cap, name) in REQUIRED_CAPS {
        if !kvm.check_extension(cap) {
            return Err(Error::MissingCapability(name));
        }
    }
    Ok(kvm)
}

/// Capabilities microvm relies on, with the names users will search for.
pub const REQUIRED_CAPS: [(Cap, &str); 7] = [
    (
        Cap::Irqchip,
        "KVM_CAP_IRQCHIP (in-kernel interrupt controllers)",
    ),
    (Cap::Pit2, "KVM_CAP_PIT2 (in-kernel timer)"),
    (Cap::Irqfd, "KVM_CAP_IRQFD (interrupts from eventfds)"),
    (
        Cap::Ioeventfd,
        "KVM_CAP_IOEVENTFD (guest notifications to eventfds)",
    ),
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    (
        Cap::ImmediateExit,
        "KVM_CAP_IMMEDIATE_EXIT (prompt vCPU stop)",
    ),
];

fn kvm_err(name: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::Kvm { name, source }
}

/// Builds the VM described by `cfg`.
pub fn build(cfg: &VmConfig) -> Result<Vm> {
    // The user's files first: a typo in a path is reported before anything else.
    let kernel_file = kernel::open_kernel(&cfg.kernel)?;
    let initramfs = match &cfg.initramfs {
        Some(path) => Some((path, kernel::open_initramfs(path)?)),
        None => None,
    };
    let virtio = device_manager::open_devices(cfg)?;
    let kvm = open_kvm()?;
    let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
        .map_err(kvm_err("KVM_SET_IDENTITY_MAP_ADDR"))?;
    vm.create_irq_chip()
        .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(kvm_err("KVM_CREATE_PIT2"))?;
    crate::timings::mark(crate::timings::Phase::KvmSetup);

    let mem = create_memory(&vm, cfg.memory_mib)?;
    crate::timings::mark(crate::timings::Phase::Memory);
    let mem_size = cfg.memory_mib << 20;
    let ram_end = arch::memory::low_ram_end(mem_size);

    let kernel = kernel::load_kernel(&mem, &cfg.kernel, kernel_file, ram_end)?;
    let initrd = match initramfs {
        Some((path, file)) => Some(kernel::load_initramfs(&mem, path, file, &kernel, mem_size)?),
        None => None,
    };
    // The guest finds its virtio devices only through these command-line entries.
    let cmdline = device_manager::cmdline_with_devices(&cfg.cmdline, virtio.len());
    let cmdline_len = kernel::load_cmdline(&mem, &cmdline, &kernel)?;
    let initrd = initrd.map(|(addr, size)| arch::InitrdConfig {
        addr: GuestAddress(addr),
        size,
    });
    let entry = kernel.entry_for(cfg.boot, &cfg.kernel.describe())?;
    match cfg.boot {
        crate::config::BootProtocol::Linux => {
            let params = arch::BootParamsConfig {
                setup_header: kernel.setup_header,
                cmdline_addr: GuestAddress(arch::layout::CMDLINE_START),
                cmdline_len,
                initrd,
                mem_size,
            };
            let boot_params = arch::build_boot_params(&params)?;
            arch::write_boot_params(&mem, &boot_params)?;
        }
        crate::config::BootProtocol::Pvh => {
            let params = arch::pvh::PvhConfig {
                mem_size,
                cmdline_addr: GuestAddress(arch::layout::CMDLINE_START),
                initrd,
            };
            arch::pvh::write_start_info(&mem, &params)?;
        }
    }
    arch::setup_mptable(&mem, cfg.cpus)?;
    crate::timings::mark(crate::timings::Phase::KernelLoad);

    let ctl = Arc::new(VmControl::new()?);
    let (pio, serial, reset_evt) = legacy_devices(&vm)?;
    let pio = Arc::new(pio);
    let mut mmio = Bus::new();
    let virtio = device_manager::attach(&vm, &mem, &mut mmio, virtio)?;
    let mmio = Arc::new(mmio);

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    let mut vcpus = Vec::with_capacity(cfg.cpus as usize);
    for index in 0..cfg.cpus {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|source| Error::VcpuIoctl {
                vcpu: index,
                name: "KVM_CREATE_VCPU",
                source,
            })?;
        let mut cpuid = supported.clone();
        arch::normalize_cpuid(&mut cpuid, index, cfg.cpus)?;
        fd.set_cpuid2(&cpuid).map_err(|source| Error::VcpuIoctl {
            vcpu: index,
            name: "KVM_SET_CPUID2",
            source,
        })?;
        arch::setup_msrs(&fd)?;
        arch::setup_fpu(&fd)?;
        arch::setup_lapic(&fd)?;
        // Only the BSP starts at the kernel entry; APs wait in KVM for INIT/SIPI from
        // the guest, as on real hardware.
        if index == 0 {
            match cfg.boot {
                crate::config::BootProtocol::Linux => {
                    arch::setup_long_mode(&mem, &fd)?;
                    arch::setup_regs(&fd, entry, arch::layout::ZERO_PAGE_START)?;
                }
                crate::config::BootProtocol::Pvh => arch::pvh::setup_pvh_entry(&mem, &fd, entry)?,
            }
        }
        vcpus.push(Vcpu {
            index,
            fd,
            pio: pio.clone(),
            mmio: mmio.clone(),
        });
    }

    Ok(Vm {
        fd: vm,
        mem,
        vcpus,
        serial,
        reset_evt,
        ctl,
        kernel,
        virtio,
    })
}

/// Allocates guest RAM (split around the 32-bit MMIO gap) and registers it with KVM.
/// The memory is reserved, not touched: only what the guest uses becomes resident.
fn create_memory(vm: &VmFd, mib: u64) -> Result<GuestMemoryMmap> {
    let mem_err = |reason: String| Error::Memory { mib, reason };
    let size = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| mem_err("size overflows".into()))?;
    let regions = arch::ram_regions(size)?;
    let mem = GuestMemoryMmap::from_ranges(&regions).map_err(|e| mem_err(e.to_string()))?;
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| mem_err(e.to_string()))?;
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which outlives the VM's use of
        // it: it is dropped after the vCPU threads have been joined.
        unsafe { vm.set_user_memory_region(desc) }
            .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(mem)
}

/// COM1 and the i8042 on the port-I/O bus.
fn legacy_devices(vm: &VmFd) -> Result<(Bus, Arc<Mutex<SerialDevice>>, EventFd)> {
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    let serial_irq =
        EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating the serial IRQ eventfd"))?;
    vm.register_irqfd(&serial_irq, COM1_IRQ)
        .map_err(kvm_err("KVM_IRQFD (serial IRQ 4)"))?;
    let serial = Arc::new(Mutex::new(SerialDevice::new(
        EventFdTrigger::new(serial_irq),
        Box::new(std::io::stdout()),
    )));
    let reset_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating the reset eventfd"))?;
    let i8042 = Arc::new(Mutex::new(I8042::new(EventFdTrigger::new(
        reset_evt
            .try_clone()
            .map_err(host("cloning the reset eventfd"))?,
    ))));
    let mut bus = Bus::new();
    let dev_err = |e: devices::BusError| Error::Device(e.to_string());
    bus.insert(serial.clone(), COM1_BASE, COM1_LEN)
        .map_err(dev_err)?;
    bus.insert(i8042, I8042_BASE, I8042_LEN).map_err(dev_err)?;
    Ok((bus, serial, reset_evt))
}
