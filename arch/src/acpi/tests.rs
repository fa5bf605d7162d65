use super::*;
use crate::memory::ram_regions;

fn config(num_cpus: u8, virtio: usize) -> AcpiConfig {
    AcpiConfig {
        num_cpus,
        com1: PortDevice {
            base: 0x3f8,
            len: 8,
            irq: 4,
        },
        i8042: PortDevice {
            base: 0x60,
            len: 5,
            irq: 1,
        },
        virtio: (0..virtio as u64)
            .map(|i| MmioDevice {
                base: 0xd000_0000 + i * 0x1000,
                size: 0x1000,
                irq: 5 + i as u32,
            })
            .collect(),
    }
}

/// Guest memory with the tables of `cfg` written.
fn written(cfg: &AcpiConfig) -> GuestMemoryMmap {
    let mem = GuestMemoryMmap::from_ranges(&ram_regions(128 << 20).unwrap()).unwrap();
    assert_eq!(setup_acpi(&mem, cfg).unwrap(), ACPI_START);
    mem
}

fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
    buf
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// The table at `addr`: its signature is checked, its checksum must be right.
fn table(mem: &GuestMemoryMmap, addr: u64, sig: &[u8; 4]) -> Vec<u8> {
    let head = read(mem, addr, 36);
    assert_eq!(&head[..4], sig, "signature at {addr:#x}");
    let t = read(mem, addr, u32_at(&head, 4) as usize);
    assert_eq!(sum(&t), 0, "checksum of {}", String::from_utf8_lossy(sig));
    t
}

/// Follows RSDP -> XSDT and returns the tables it lists, by signature.
fn tables(mem: &GuestMemoryMmap) -> Vec<(String, u64, Vec<u8>)> {
    let rsdp = read(mem, ACPI_START, 36);
    assert_eq!(&rsdp[..8], b"RSD PTR ");
    assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
    assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
    assert_eq!(rsdp[15], 2, "RSDP revision");
    let xsdt = table(mem, u64_at(&rsdp, 24), b"XSDT");
    (36..xsdt.len())
        .step_by(8)
        .map(|off| {
            let addr = u64_at(&xsdt, off);
            let sig = read(mem, addr, 4);
            let sig: [u8; 4] = sig.try_into().unwrap();
            let t = table(mem, addr, &sig);
            (String::from_utf8_lossy(&sig).into_owned(), addr, t)
        })
        .collect()
}

fn find<'a>(all: &'a [(String, u64, Vec<u8>)], sig: &str) -> &'a [u8] {
    &all.iter().find(|(s, _, _)| s == sig).unwrap().2
}

#[test]
fn rsdp_xsdt_and_every_table_check_out() {
    let mem = written(&config(2, 3));
    let all = tables(&mem);
    let sigs: Vec<&str> = all.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(sigs, ["FACP", "APIC"]);
    for (_, addr, t) in &all {
        assert!(*addr >= ACPI_START && *addr + t.len() as u64 <= ACPI_END);
        assert_eq!(addr % 16, 0);
    }
}

#[test]
fn fadt_is_hardware_reduced_with_power_off_and_reset() {
    let mem = written(&config(1, 0));
    let all = tables(&mem);
    let fadt = find(&all, "FACP");
    assert_eq!(fadt.len(), 276, "ACPI 6.x FADT size");
    let flags = u32_at(fadt, 112);
    assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
    assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
    let boot_arch = u16::from_le_bytes([fadt[109], fadt[110]]);
    assert_eq!(
        boot_arch & 0b10_1110,
        0b10_1110,
        "8042, no VGA, no MSI, no CMOS RTC"
    );
    // Reset register: system I/O, port 0x64, value 0xfe.
    assert_eq!(fadt[116], 1);
    assert_eq!(u64_at(fadt, 120), 0x64);
    assert_eq!(fadt[128], 0xfe);
    // X_DSDT points at a valid DSDT; the 32-bit field is unused.
    assert_eq!(u32_at(fadt, 40), 0);
    table(&mem, u64_at(fadt, 140), b"DSDT");
    // Sleep control and status registers: system I/O, 8 bits, our ports.
    for (off, port) in [(244, PM_SLEEP_CONTROL_PORT), (256, PM_SLEEP_STATUS_PORT)] {
        assert_eq!(fadt[off], 1, "address space at {off}");
        assert_eq!(fadt[off + 1], 8, "bit width at {off}");
        assert_eq!(u64_at(fadt, off + 4), u64::from(port));
    }
}

/// The MADT's interrupt controller structures as (type, bytes).
fn madt_entries(madt: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 44;
    while off < madt.len() {
        let len = madt[off + 1] as usize;
        assert!(len >= 2 && off + len <= madt.len(), "entry at {off}");
        out.push((madt[off], madt[off..off + len].to_vec()));
        off += len;
    }
    out
}

#[test]
fn madt_lists_every_vcpu_the_ioapic_overrides_and_nmi() {
    for cpus in [1u8, 2, 4, 32] {
        let mem = written(&config(cpus, 1));
        let all = tables(&mem);
        let madt = find(&all, "APIC");
        assert_eq!(u32_at(madt, 36), 0xfee0_0000, "local APIC address");
        let entries = madt_entries(madt);
        let lapics: Vec<_> = entries.iter().filter(|(t, _)| *t == 0).collect();
        assert_eq!(lapics.len(), cpus as usize);
        for (i, (_, e)) in lapics.iter().enumerate() {
            assert_eq!((e[2], e[3]), (i as u8, i as u8), "uid, APIC id");
            assert_eq!(u32_at(e, 4), 1, "enabled");
        }
        let ioapics: Vec<_> = entries.iter().filter(|(t, _)| *t == 1).collect();
        assert_eq!(ioapics.len(), 1);
        assert_eq!(u32_at(&ioapics[0].1, 4), 0xfec0_0000);
        assert_eq!(u32_at(&ioapics[0].1, 8), 0, "GSI base");
        let isos: Vec<(u8, u32)> = entries
            .iter()
            .filter(|(t, _)| *t == 2)
            .map(|(_, e)| (e[3], u32_at(e, 4)))
            .collect();
        assert_eq!(isos, [(0, 0), (4, 4), (1, 1)], "identity, as KVM routes");
        let nmi: Vec<_> = entries.iter().filter(|(t, _)| *t == 4).collect();
        assert_eq!(nmi.len(), 1);
        assert_eq!((nmi[0].1[2], nmi[0].1[5]), (0xff, 1), "all CPUs, LINT1");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn dsdt_describes_com1_i8042_every_virtio_device_and_s5() {
    let mem = written(&config(1, 3));
    let all = tables(&mem);
    let dsdt = table(&mem, u64_at(find(&all, "FACP"), 140), b"DSDT");
    // EISA ids PNP0501 and PNP0303 as AML DWords.
    assert!(contains(&dsdt, &[0x0c, 0x41, 0xd0, 0x05, 0x01]).is_some());
    assert!(contains(&dsdt, &[0x0c, 0x41, 0xd0, 0x03, 0x03]).is_some());
    // COM1: IO descriptor 0x3f8/8 and IRQ 4; the i8042: ports 0x60 and 0x64.
    assert!(contains(&dsdt, &[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]).is_some());
    assert!(contains(&dsdt, &[0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01]).is_some());
    assert!(contains(&dsdt, &[0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01]).is_some());
    let mut rest = &dsdt[..];
    for i in 0..3u32 {
        let at = contains(rest, b"LNRO0005").expect("one LNRO0005 per device");
        rest = &rest[at + 8..];
        let mem32 = contains(rest, &[0x86, 0x09, 0x00, 0x01]).unwrap();
        assert_eq!(u32_at(rest, mem32 + 4), 0xd000_0000 + i * 0x1000);
        assert_eq!(u32_at(rest, mem32 + 8), 0x1000);
        let irq = contains(rest, &[0x89, 0x06, 0x00]).unwrap();
        assert_eq!(
            rest[irq + 3],
            0b0011,
            "consumer, edge, active high, exclusive"
        );
        assert_eq!(u32_at(rest, irq + 5), 5 + i);
    }
    assert!(contains(rest, b"LNRO0005").is_none());
    // \_S5_ = Package { 5 }: NameOp, root, "_S5_", PackageOp, len, 1 element, BytePrefix 5.
    assert!(contains(&dsdt, &[0x08, b'\\', b'_', b'S', b'5', b'_', 0x12]).is_some());
}

#[test]
fn the_largest_machine_fits_below_1_mib() {
    let cfg = config(
        crate::mptable::MAX_CPUS,
        crate::layout::VIRTIO_MMIO_MAX_DEVICES as usize,
    );
    let last = layout(&cfg).unwrap().pop().unwrap();
    assert!(last.addr + last.bytes.len() as u64 <= ACPI_END);
}
