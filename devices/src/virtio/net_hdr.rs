//! The virtio-net header of a tx frame once the guest negotiated tx offloads (checksum
//! and TSO, `offload=on`): checked against the features the driver accepted and the
//! frame's length before the host kernel sees it, the same rules the kernel applies
//! (tun_get_user, virtio_net_hdr_to_skb) plus the spec's driver requirements
//! (virtio 1.2, 5.1.6.2). The check runs on the device's own copy, so the guest cannot
//! change the header between the check and the writev.

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};

use super::tap::VNET_HDR_LEN;

/// The tx offloads offered with `offload=on`: the guest may leave checksums to the host
/// (VIRTIO_NET_F_CSUM) and send TCP segments of up to 64 KiB (HOST_TSO4/6).
pub const TX_OFFLOADS: u64 =
    1 << VIRTIO_NET_F_CSUM | 1 << VIRTIO_NET_F_HOST_TSO4 | 1 << VIRTIO_NET_F_HOST_TSO6;

/// Why a tx header was refused (the frame is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A flag other than NEEDS_CSUM (the others are rx-only).
    #[error("flags {0:#x}: only NEEDS_CSUM is a tx flag")]
    Flags(u8),
    /// NEEDS_CSUM without VIRTIO_NET_F_CSUM.
    #[error("NEEDS_CSUM, but VIRTIO_NET_F_CSUM was not negotiated")]
    CsumNotNegotiated,
    /// The checksum field lies outside the frame.
    #[error("checksum field at {start}+{offset} outside a {len}-byte frame")]
    CsumOutside {
        /// csum_start.
        start: u16,
        /// csum_offset.
        offset: u16,
        /// Frame bytes.
        len: usize,
    },
    /// A GSO type that was not negotiated (UDP, ECN, unknown, or TSO without HOST_TSO*).
    #[error("gso_type {0:#x} was not negotiated")]
    GsoType(u8),
    /// GSO without NEEDS_CSUM (the spec requires both).
    #[error("GSO without NEEDS_CSUM")]
    GsoWithoutCsum,
    /// GSO with a segment size of 0.
    #[error("GSO with gso_size 0")]
    GsoSize,
    /// hdr_len beyond the frame.
    #[error("hdr_len {hdr_len} beyond a {len}-byte frame")]
    HdrLen {
        /// hdr_len.
        hdr_len: u16,
        /// Frame bytes.
        len: usize,
    },
}

fn le16(hdr: &[u8; VNET_HDR_LEN], at: usize) -> u16 {
    u16::from_le_bytes([hdr[at], hdr[at + 1]])
}

/// Checks the guest's tx header `hdr` of a frame of `len` bytes (after the header)
/// against `features`, the ones the driver accepted. Returns the header for the TAP, with
/// num_buffers (meaningless on tx) zeroed.
pub fn check_tx(
    mut hdr: [u8; VNET_HDR_LEN],
    len: usize,
    features: u64,
) -> Result<[u8; VNET_HDR_LEN], HeaderError> {
    let (flags, gso_type) = (hdr[0], hdr[1]);
    let (hdr_len, gso_size) = (le16(&hdr, 2), le16(&hdr, 4));
    let (start, offset) = (le16(&hdr, 6), le16(&hdr, 8));
    let has = |bit: u32| features & (1 << bit) != 0;
    let needs_csum = u32::from(flags) & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0;
    if u32::from(flags) & !VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        return Err(HeaderError::Flags(flags));
    }
    if needs_csum {
        if !has(VIRTIO_NET_F_CSUM) {
            return Err(HeaderError::CsumNotNegotiated);
        }
        if usize::from(start) + usize::from(offset) + 2 > len {
            return Err(HeaderError::CsumOutside { start, offset, len });
        }
    }
    let gso_ok = match u32::from(gso_type) {
        VIRTIO_NET_HDR_GSO_NONE => true,
        VIRTIO_NET_HDR_GSO_TCPV4 => has(VIRTIO_NET_F_HOST_TSO4),
        VIRTIO_NET_HDR_GSO_TCPV6 => has(VIRTIO_NET_F_HOST_TSO6),
        _ => false,
    };
    if !gso_ok {
        return Err(HeaderError::GsoType(gso_type));
    }
    if u32::from(gso_type) != VIRTIO_NET_HDR_GSO_NONE {
        if !needs_csum {
            return Err(HeaderError::GsoWithoutCsum);
        }
        if gso_size == 0 {
            return Err(HeaderError::GsoSize);
        }
    }
    if usize::from(hdr_len) > len {
        return Err(HeaderError::HdrLen { hdr_len, len });
    }
    hdr[10..12].fill(0);
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use virtio_bindings::virtio_net::VIRTIO_NET_HDR_GSO_UDP_L4;

    use super::*;

    /// NEEDS_CSUM, GSO TCPv4, hdr_len 54, gso_size 1448, csum 34+16, num_buffers 0x0909.
    const TSO4: [u8; 12] = [1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0, 9, 9];

    #[test]
    fn a_tso_header_passes_with_its_features_and_loses_num_buffers() {
        let got = check_tx(TSO4, 3000, TX_OFFLOADS).unwrap();
        assert_eq!(got[..10], TSO4[..10]);
        assert_eq!(got[10..], [0, 0]);
        let zero = [0u8; 12];
        assert_eq!(check_tx(zero, 60, TX_OFFLOADS), Ok(zero));
    }

    #[test]
    fn each_feature_gates_its_own_fields() {
        let csum_only = 1 << VIRTIO_NET_F_CSUM;
        assert_eq!(
            check_tx(TSO4, 3000, csum_only),
            Err(HeaderError::GsoType(1))
        );
        let mut v6 = TSO4;
        v6[1] = VIRTIO_NET_HDR_GSO_TCPV6 as u8;
        let tso4 = csum_only | 1 << VIRTIO_NET_F_HOST_TSO4;
        assert_eq!(check_tx(v6, 3000, tso4), Err(HeaderError::GsoType(4)));
        let mut plain_csum = TSO4;
        plain_csum[1] = 0;
        assert!(check_tx(plain_csum, 3000, csum_only).is_ok());
        assert_eq!(
            check_tx(plain_csum, 3000, 1 << VIRTIO_NET_F_HOST_TSO4),
            Err(HeaderError::CsumNotNegotiated)
        );
    }

    #[test]
    fn hostile_headers_are_refused() {
        let cases: [(usize, u8, HeaderError); 4] = [
            (0, 0x03, HeaderError::Flags(0x03)),
            (1, 0x81, HeaderError::GsoType(0x81)),
            (1, VIRTIO_NET_HDR_GSO_UDP_L4 as u8, HeaderError::GsoType(5)),
            (0, 0, HeaderError::GsoWithoutCsum),
        ];
        for (at, byte, want) in cases {
            let mut h = TSO4;
            h[at] = byte;
            assert_eq!(
                check_tx(h, 3000, TX_OFFLOADS),
                Err(want),
                "byte {at} = {byte:#x}"
            );
        }
        let mut no_size = TSO4;
        no_size[4..6].fill(0);
        assert_eq!(
            check_tx(no_size, 3000, TX_OFFLOADS),
            Err(HeaderError::GsoSize)
        );
        // The checksum field must end inside the frame: 34 + 16 + 2 = 52 bytes.
        assert!(check_tx(TSO4, 54, TX_OFFLOADS).is_ok());
        let mut far = TSO4;
        far[6..8].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(matches!(
            check_tx(far, 3000, TX_OFFLOADS),
            Err(HeaderError::CsumOutside { start: 0xfff0, .. })
        ));
        assert_eq!(
            check_tx(TSO4, 53, TX_OFFLOADS),
            Err(HeaderError::HdrLen {
                hdr_len: 54,
                len: 53
            })
        );
    }
}
