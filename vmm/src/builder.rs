//! Builds a VM ready to run: KVM VM with in-kernel irqchip and PIT, guest RAM, the loaded
//! kernel with its boot structures (boot_params or hvm_start_info, MP table, ACPI tables),
//! the port-I/O devices, configured vCPUs and every thread's compiled seccomp filter.
//!
//! Test builds (feature `test-hooks`) add the test hook here, in one place: see
//! [`crate::test_hook`].

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use devices::acpi_pm::AcpiPm;
use devices::cmos::{Cmos, CMOS_BASE, CMOS_LEN};
use devices::i8042::{I8042, I8042_BASE, I8042_KBD_IRQ, I8042_LEN};
use devices::serial::{SerialDevice, COM1_BASE, COM1_IRQ, COM1_LEN};
use devices::{Bus, EventFdTrigger};
use kvm_bindings::{kvm_pit_config, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use seccomp::ThreadKind;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::config::{BootProtocol, VmConfig};
use crate::device_manager::{self, AttachedDevice};
use crate::error::{Error, Result};
use crate::event_loop::Subscriber;
use crate::kernel::{self, LoadedKernel};
use crate::threads::Filters;
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
    /// The port-I/O bus (COM1, i8042, ACPI PM or CMOS).
    pub pio: Bus,
    /// The MMIO bus (the virtio-mmio windows).
    pub mmio: Bus,
    /// Every thread's seccomp filter, by thread name.
    pub filters: Filters,
    /// What the `vmm` thread's event loop serves besides its own events (nothing, but in
    /// test builds).
    pub vmm_subscribers: Vec<Subscriber>,
    /// The UART, shared with the main thread for stdin.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Triggered by the i8042 when the guest resets.
    pub reset_evt: EventFd,
    /// Triggered by the ACPI sleep control register when the guest powers off.
    pub poweroff_evt: EventFd,
    /// Shared stop/exit state.
    pub ctl: Arc<VmControl>,
    /// Where the kernel went.
    pub kernel: LoadedKernel,
    /// The entry the boot vCPU starts at (chosen from the kernel unless `--boot` forced one).
    pub boot: BootProtocol,
    /// virtio devices on the MMIO bus, each to get its own thread.
    pub virtio: Vec<AttachedDevice>,
    /// The fds the port-I/O devices write (for the vCPU filters).
    pub legacy_fds: crate::filter_fds::LegacyFds,
    /// Test builds: the test hook's wake eventfds (vCPUs write them; the vmm thread and
    /// the device threads read them). Empty otherwise.
    pub hook_fds: Vec<std::os::fd::RawFd>,
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

/// Everything of the host a VM uses, opened and not yet read: the kernel and initramfs
/// files, each device's host side (disk, TAP) and /dev/kvm. What `--jail` keeps open when
/// it takes the file system away ([`crate::jail`]).
pub struct Inputs {
    kernel_file: std::fs::File,
    initramfs: Option<(std::path::PathBuf, std::fs::File)>,
    virtio: Vec<device_manager::OpenedDevice>,
    kvm: Kvm,
}

/// Opens the user's files first (a typo in a path is reported before anything else), then
/// /dev/kvm. Reads no guest data (the kernel and initramfs are read by [`build`]).
pub fn open_inputs(cfg: &VmConfig) -> Result<Inputs> {
    let kernel_file = kernel::open_kernel(&cfg.kernel)?;
    let initramfs = match &cfg.initramfs {
        Some(path) => Some((path.clone(), kernel::open_initramfs(path)?)),
        None => None,
    };
    let virtio = device_manager::open_devices(cfg)?;
    let kvm = open_kvm()?;
    Ok(Inputs {
        kernel_file,
        initramfs,
        virtio,
        kvm,
    })
}

/// Builds the VM described by `cfg` from its opened `inputs`: the KVM VM, the loaded guest,
/// devices and vCPUs.
pub fn build(cfg: &VmConfig, inputs: Inputs) -> Result<Vm> {
    let Inputs {
        kernel_file,
        initramfs,
        virtio,
        kvm,
    } = inputs;
    let vm = create_vm(&kvm)?;
    crate::timings::mark(crate::timings::Phase::KvmSetup);

    let mem = crate::memory::map_memory(
        cfg.memory_mib,
        cfg.isolate == crate::config::Isolate::Devices,
    )?;
    // Guest RAM's slots before the irqchip: see [`create_irqchip`].
    crate::memory::register_memory(&vm, &mem)?;
    crate::timings::mark(crate::timings::Phase::Memory);
    create_irqchip(&vm, cfg.pit)?;
    let guest = load_guest(cfg, &mem, kernel_file, initramfs, virtio.len())?;
    crate::timings::mark(crate::timings::Phase::KernelLoad);

    let ctl = Arc::new(VmControl::new()?);
    let legacy = legacy_devices(&vm, cfg.acpi)?;
    let mut mmio = Bus::new();
    let isolate = cfg.isolate == crate::config::Isolate::Devices;
    let virtio = device_manager::attach(&vm, &mem, &mut mmio, virtio, isolate)?;
    let vcpus = create_vcpus(&kvm, &vm, &mem, cfg, &guest)?;

    let built = Vm {
        fd: vm,
        mem,
        vcpus,
        pio: legacy.bus,
        mmio,
        filters: Filters::default(),
        vmm_subscribers: Vec::new(),
        serial: legacy.serial,
        reset_evt: legacy.reset_evt,
        poweroff_evt: legacy.poweroff_evt,
        ctl,
        kernel: guest.kernel,
        boot: guest.boot,
        virtio,
        legacy_fds: legacy.fds,
        hook_fds: Vec::new(),
    };
    #[cfg(feature = "test-hooks")]
    let built = crate::test_hook::register(built)?;
    let mut built = built;
    // Every fd exists now (the test hook's too): pin each thread's filter to its own.
    built.filters = compile_filters(cfg.seccomp, &built)?;
    #[cfg(feature = "test-hooks")]
    crate::test_hook::adjust_filters(&mut built, cfg.seccomp);
    Ok(built)
}

/// Compiles the filter of each vCPU and each device thread, pinned to the fds it owns
/// (`filter_fds`), before any thread exists. The `vmm` thread's is compiled by `run` once
/// its event loop (and so its epoll fd) exists.
fn compile_filters(mode: seccomp::Mode, vm: &Vm) -> Result<Filters> {
    use crate::filter_fds;
    let mut filters = Filters::default();
    for v in &vm.vcpus {
        let ctx = filter_fds::vcpu(
            v.fd.as_raw_fd(),
            vm.ctl.exit_evt.as_raw_fd(),
            &vm.legacy_fds,
            vm.virtio.iter().map(|d| d.fds()),
            &vm.hook_fds,
        );
        filter_fds::log(&v.thread_name(), &ctx);
        let filter = seccomp::compile(ThreadKind::Vcpu, mode, &ctx)?;
        filters.insert(v.thread_name(), filter);
    }
    for dev in vm.virtio.iter().filter(|d| d.isolated.is_none()) {
        // A device process compiles its own, once it is one (crate::isolate).
        let ctx = filter_fds::device(dev.fds());
        filter_fds::log(dev.name(), &ctx);
        let filter = seccomp::compile(dev.kind(), mode, &ctx)?;
        filters.insert(dev.name().to_string(), filter);
    }
    Ok(filters)
}

/// The KVM VM with its TSS and identity map; no irqchip yet ([`create_irqchip`]).
fn create_vm(kvm: &Kvm) -> Result<VmFd> {
    let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
        .map_err(kvm_err("KVM_SET_IDENTITY_MAP_ADDR"))?;
    Ok(vm)
}

/// The in-kernel irqchip (PIC + IOAPIC + LAPICs), and the PIT with `pit`, made once guest
/// RAM's slots are registered.
///
/// Why that order: each device the kernel puts on a KVM I/O bus (the irqchip's four, every
/// ioeventfd) leaves the VM waiting for a grace period for ~15 ms afterwards, and the next
/// memory-slot change or the VM's destruction waits for its end. A slot registered first
/// takes ~0.05 ms instead of 5-10 ms; [`crate::grace::end_setup_grace_period`] ends the
/// wait while the guest runs (docs/performance.md, "Start-up and teardown").
fn create_irqchip(vm: &VmFd, pit: bool) -> Result<()> {
    vm.create_irq_chip()
        .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
    if !pit {
        return Ok(());
    }
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(kvm_err("KVM_CREATE_PIT2"))
}

/// What [`load_guest`] put in guest memory.
struct LoadedGuest {
    kernel: LoadedKernel,
    /// The entry chosen for the boot vCPU, and its address.
    boot: BootProtocol,
    entry: u64,
}

/// Loads the kernel, initramfs and command line, and writes the boot structures the guest
/// reads: boot_params or hvm_start_info, the MP table, and the ACPI tables (`--acpi on`).
fn load_guest(
    cfg: &VmConfig,
    mem: &GuestMemoryMmap,
    kernel_file: std::fs::File,
    initramfs: Option<(std::path::PathBuf, std::fs::File)>,
    virtio_count: usize,
) -> Result<LoadedGuest> {
    let mem_size = cfg.memory_mib << 20;
    let ram_end = arch::memory::low_ram_end(mem_size);
    let kernel = kernel::load_kernel(mem, &cfg.kernel, kernel_file, ram_end)?;
    let initrd = match initramfs {
        Some((path, file)) => Some(kernel::load_initramfs(mem, &path, file, &kernel, mem_size)?),
        None => None,
    };
    let initrd = initrd.map(|(addr, size)| arch::InitrdConfig {
        addr: GuestAddress(addr),
        size,
    });
    // With ACPI the guest finds its virtio devices in the DSDT; without, only through
    // these command-line entries (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
    let cmdline = if cfg.acpi {
        cfg.cmdline.clone()
    } else {
        device_manager::cmdline_with_devices(&cfg.cmdline, virtio_count)
    };
    let cmdline_len = kernel::load_cmdline(mem, &cmdline, &kernel)?;
    let rsdp = if cfg.acpi {
        Some(arch::acpi::setup_acpi(
            mem,
            &acpi_config(cfg.cpus, virtio_count),
        )?)
    } else {
        None
    };
    arch::setup_mptable(mem, cfg.cpus)?;

    let boot = kernel.choose_boot(cfg.boot);
    let entry = kernel.entry_for(boot, &cfg.kernel.describe())?;
    let cmdline_addr = GuestAddress(arch::layout::CMDLINE_START);
    match boot {
        BootProtocol::Linux => {
            let params = arch::BootParamsConfig {
                setup_header: kernel.setup_header,
                cmdline_addr,
                cmdline_len,
                initrd,
                mem_size,
                rsdp,
            };
            arch::write_boot_params(mem, &arch::build_boot_params(&params)?)?;
        }
        BootProtocol::Pvh => {
            let params = arch::pvh::PvhConfig {
                mem_size,
                cmdline_addr,
                initrd,
                rsdp,
            };
            arch::pvh::write_start_info(mem, &params)?;
        }
    }
    Ok(LoadedGuest {
        kernel,
        boot,
        entry,
    })
}

/// What the ACPI tables describe: the vCPUs, COM1, the i8042 and every virtio slot in use.
fn acpi_config(cpus: u8, virtio_count: usize) -> arch::acpi::AcpiConfig {
    arch::acpi::AcpiConfig {
        num_cpus: cpus,
        com1: arch::acpi::PortDevice {
            base: COM1_BASE as u16,
            len: COM1_LEN as u8,
            irq: COM1_IRQ,
        },
        i8042: arch::acpi::PortDevice {
            base: I8042_BASE as u16,
            len: I8042_LEN as u8,
            irq: I8042_KBD_IRQ,
        },
        virtio: (0..virtio_count)
            .map(|i| {
                let (base, irq) = device_manager::slot(i);
                arch::acpi::MmioDevice {
                    base,
                    size: arch::layout::VIRTIO_MMIO_SIZE,
                    irq,
                }
            })
            .collect(),
    }
}

/// Creates and configures every vCPU; only the boot vCPU gets entry registers.
fn create_vcpus(
    kvm: &Kvm,
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    cfg: &VmConfig,
    guest: &LoadedGuest,
) -> Result<Vec<Vcpu>> {
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    let mut vcpus = Vec::with_capacity(cfg.cpus as usize);
    for index in 0..cfg.cpus {
        let vcpu_err = |name: &'static str| {
            move |source| Error::VcpuIoctl {
                vcpu: index,
                name,
                source,
            }
        };
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(vcpu_err("KVM_CREATE_VCPU"))?;
        let mut cpuid = supported.clone();
        arch::normalize_cpuid(&mut cpuid, index, cfg.cpus)?;
        fd.set_cpuid2(&cpuid).map_err(vcpu_err("KVM_SET_CPUID2"))?;
        arch::setup_msrs(&fd)?;
        arch::setup_fpu(&fd)?;
        arch::setup_lapic(&fd)?;
        // Only the BSP starts at the kernel entry; APs wait in KVM for INIT/SIPI from
        // the guest, as on real hardware.
        if index == 0 {
            match guest.boot {
                BootProtocol::Linux => {
                    arch::setup_long_mode(mem, &fd)?;
                    arch::setup_regs(&fd, guest.entry, arch::layout::ZERO_PAGE_START)?;
                }
                BootProtocol::Pvh => arch::pvh::setup_pvh_entry(mem, &fd, guest.entry)?,
            }
        }
        vcpus.push(Vcpu { index, fd });
    }
    Ok(vcpus)
}

/// The port-I/O devices and the eventfds through which they end the VM.
struct LegacyDevices {
    bus: Bus,
    serial: Arc<Mutex<SerialDevice>>,
    reset_evt: EventFd,
    poweroff_evt: EventFd,
    fds: crate::filter_fds::LegacyFds,
}

/// COM1, the i8042 and either the ACPI power-management registers or (without ACPI) a CMOS
/// RTC on the port-I/O bus.
fn legacy_devices(vm: &VmFd, acpi: bool) -> Result<LegacyDevices> {
    let host = |what: &'static str| move |source: std::io::Error| Error::Host { what, source };
    // Each line with its fd, for the filters (filter_fds).
    let irq_line = |gsi: u32,
                    what: &'static str,
                    ioctl: &'static str|
     -> Result<(EventFdTrigger, std::os::fd::RawFd)> {
        let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host(what))?;
        vm.register_irqfd(&evt, gsi).map_err(kvm_err(ioctl))?;
        let fd = evt.as_raw_fd();
        Ok((EventFdTrigger::new(evt), fd))
    };
    let line = |evt: EventFd| {
        let fd = evt.as_raw_fd();
        (EventFdTrigger::new(evt), fd)
    };
    let mut fds = crate::filter_fds::LegacyFds::default();
    let (serial_irq, fd) = irq_line(
        COM1_IRQ,
        "creating the serial IRQ eventfd",
        "KVM_IRQFD (serial IRQ 4)",
    )?;
    fds.serial_irq = fd;
    let serial = Arc::new(Mutex::new(SerialDevice::new(
        serial_irq,
        Box::new(std::io::stdout()),
    )));
    let reset_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating the reset eventfd"))?;
    let (reset_line, fd) = line(
        reset_evt
            .try_clone()
            .map_err(host("cloning the reset eventfd"))?,
    );
    fds.reset = fd;
    let (i8042_irq, fd) = irq_line(
        I8042_KBD_IRQ,
        "creating the i8042 IRQ eventfd",
        "KVM_IRQFD (i8042 IRQ 1)",
    )?;
    fds.i8042_irq = fd;
    let i8042 = Arc::new(Mutex::new(I8042::new(reset_line, i8042_irq)));
    let poweroff_evt =
        EventFd::new(libc::EFD_NONBLOCK).map_err(host("creating the power-off eventfd"))?;
    let mut bus = Bus::new();
    let dev_err = |device: &'static str| {
        move |source| Error::Bus {
            device: device.into(),
            source,
        }
    };
    bus.insert(serial.clone(), COM1_BASE, COM1_LEN)
        .map_err(dev_err("COM1"))?;
    bus.insert(i8042, I8042_BASE, I8042_LEN)
        .map_err(dev_err("i8042"))?;
    if !acpi {
        // Without ACPI nothing tells Linux there is no RTC: give it one that answers.
        bus.insert(Arc::new(Mutex::new(Cmos::default())), CMOS_BASE, CMOS_LEN)
            .map_err(dev_err("CMOS RTC"))?;
    }
    if acpi {
        let (pm_line, fd) = line(
            poweroff_evt
                .try_clone()
                .map_err(host("cloning the power-off eventfd"))?,
        );
        fds.poweroff = Some(fd);
        let pm = AcpiPm::new(pm_line, arch::acpi::SLP_TYP_S5);
        bus.insert(
            Arc::new(Mutex::new(pm)),
            u64::from(arch::acpi::PM_SLEEP_CONTROL_PORT),
            arch::acpi::PM_PORTS_LEN,
        )
        .map_err(dev_err("ACPI PM"))?;
    }
    Ok(LegacyDevices {
        bus,
        serial,
        reset_evt,
        poweroff_evt,
        fds,
    })
}
