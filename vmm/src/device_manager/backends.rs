//! Opening each virtio device's host side (disk file, TAP) from the configuration. User
//! errors (unreadable file, bad size, TAP that cannot be opened) are reported here, before
//! KVM is touched.

use std::fs::File;
use std::os::fd::AsRawFd;

use arch::layout::VIRTIO_MMIO_MAX_DEVICES;
use devices::virtio::block::{Block, SECTOR_SIZE};
use devices::virtio::net::{default_mac, Net};
use devices::virtio::rng::Rng;
use devices::virtio::tap::Tap;
use devices::virtio::throttle::{monotonic_clock, Throttle, Timer};
use devices::virtio::token_bucket::Limiter;
use devices::virtio::VirtioDevice;
use seccomp::ThreadKind;

use crate::config::{DiskConfig, NetConfig, RateLimit, VmConfig};
use crate::error::{Error, Result};

/// A device whose host side (file, TAP) is open, not yet placed.
pub struct OpenedDevice {
    /// Filter kind of its thread.
    pub(super) kind: ThreadKind,
    /// Thread name, e.g. `virtio-blk0`.
    pub(super) name: String,
    /// The device model.
    pub(super) device: Box<dyn VirtioDevice>,
    /// Role and fd of its host side (`disk`, `tap`), for its filter.
    pub(super) host: Option<(&'static str, std::os::fd::RawFd)>,
}

/// Opens every device of `cfg` in contract order: disks, nets, then rng.
pub fn open_devices(cfg: &VmConfig) -> Result<Vec<OpenedDevice>> {
    let mut out = Vec::new();
    for (i, disk) in cfg.disks.iter().enumerate() {
        out.push(open_disk(i, disk)?);
    }
    for (i, net) in cfg.nets.iter().enumerate() {
        out.push(open_net(i, net)?);
    }
    if cfg.rng {
        out.push(OpenedDevice {
            kind: ThreadKind::Rng,
            name: "virtio-rng0".into(),
            device: Box::new(Rng::default()),
            host: None,
        });
    }
    if out.len() > VIRTIO_MMIO_MAX_DEVICES as usize {
        return Err(Error::TooManyDevices {
            count: out.len(),
            max: VIRTIO_MMIO_MAX_DEVICES,
        });
    }
    Ok(out)
}

/// virtio-blk `i` on a raw image whose size is a non-zero multiple of 512.
fn open_disk(i: usize, disk: &DiskConfig) -> Result<OpenedDevice> {
    let err = |reason: String| Error::Disk {
        path: disk.path.clone(),
        reason,
    };
    let file = File::options()
        .read(true)
        .write(!disk.read_only)
        .open(&disk.path)
        .map_err(|e| err(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| err(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a regular file (raw images only)".into()));
    }
    devices::virtio::block::lock_image(&file, disk.read_only).map_err(|e| {
        err(match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => {
                "is in use: another VM (or another --disk of this one) holds its lock".into()
            }
            _ => format!("cannot lock: {e}"),
        })
    })?;
    let size = meta.len();
    if size == 0 || size % SECTOR_SIZE != 0 {
        return Err(err(format!(
            "size {size} bytes is not a non-zero multiple of 512"
        )));
    }
    let host = Some(("disk", file.as_raw_fd()));
    let mut block = Block::new(i, file, size, disk.read_only);
    if let Some(t) = throttle(disk.limit)? {
        block = block.with_throttle(t);
    }
    Ok(OpenedDevice {
        kind: ThreadKind::Blk,
        name: format!("virtio-blk{i}"),
        device: Box::new(block),
        host,
    })
}

/// The throttle of a `bw=`/`ops=` limit, with its timerfd (created here, before any thread
/// or filter); None when nothing is limited.
fn throttle(limit: RateLimit) -> Result<Option<Throttle>> {
    if !limit.is_limited() {
        return Ok(None);
    }
    let clock = monotonic_clock();
    let limiter = Limiter::new(limit.bytes_per_sec, limit.ops_per_sec, clock());
    let timer = Timer::new().map_err(|source| Error::Host {
        what: "creating a rate-limit timerfd",
        source,
    })?;
    Ok(Some(Throttle::new(limiter, clock, timer)))
}

/// virtio-net `i` on an existing TAP.
fn open_net(i: usize, net: &NetConfig) -> Result<OpenedDevice> {
    let tap = Tap::open(&net.tap).map_err(|e| Error::Net {
        tap: net.tap.clone(),
        reason: e.to_string(),
    })?;
    let host = Some(("tap", tap.as_raw_fd()));
    // bw= limits each direction on its own bucket (and timer).
    let limit = RateLimit {
        bytes_per_sec: net.bw,
        ops_per_sec: 0,
    };
    let device = Net::new(tap, net.mac.unwrap_or_else(|| default_mac(i)))
        .with_throttles(throttle(limit)?, throttle(limit)?)
        .with_tx_offload(net.offload);
    Ok(OpenedDevice {
        kind: ThreadKind::Net,
        name: format!("virtio-net{i}"),
        device: Box::new(device),
        host,
    })
}
