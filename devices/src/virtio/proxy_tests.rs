use std::sync::Mutex;

use super::*;

/// A window that records writes and answers reads with the offset's low byte repeated.
#[derive(Default)]
struct FakeWindow {
    writes: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl SharedBusDevice for FakeWindow {
    fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(offset as u8);
    }
    fn write(&self, offset: u64, data: &[u8]) {
        self.writes.lock().unwrap().push((offset, data.to_vec()));
    }
}

fn read32(p: &mut ProxyDevice, offset: u32) -> u32 {
    let mut b = [0xffu8; 4];
    p.read(u64::from(offset), &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn requests_and_replies_round_trip() {
    let w = Request::new(Op::Write, 0x70, &[1, 2, 3, 4]).unwrap();
    let m = w.encode();
    assert_eq!(m.len(), MESSAGE_LEN);
    assert_eq!(&m[..8], &[2, 4, 0, 0, 0x70, 0, 0, 0]);
    assert_eq!(Request::decode(&m, 0x1000).unwrap(), w);
    let r = Request::new(Op::Read, 0x100, &[9; 8]).unwrap();
    assert_eq!(r.data, [0; 8], "a read carries no data");
    let reply = Reply {
        op: Op::Read,
        len: 8,
        ok: true,
        data: [7; 8],
    };
    assert_eq!(Reply::decode_for(&reply.encode(), &r).unwrap(), reply);
}

#[test]
fn bad_requests_are_refused_by_decode() {
    let good = Request::new(Op::Read, 0xffc, &[0; 4]).unwrap().encode();
    assert_eq!(
        Request::decode(&good[..15], 0x1000),
        Err(MessageError::Length(15))
    );
    let mut m = good;
    m[0] = 9;
    assert_eq!(Request::decode(&m, 0x1000), Err(MessageError::Op(9)));
    let mut m = good;
    m[1] = 3;
    assert_eq!(Request::decode(&m, 0x1000), Err(MessageError::Size(3)));
    let mut m = good;
    m[4..8].copy_from_slice(&0xffeu32.to_le_bytes());
    assert!(matches!(
        Request::decode(&m, 0x1000),
        Err(MessageError::Offset { offset: 0xffe, .. })
    ));
    assert!(Request::new(Op::Read, 0, &[0; 3]).is_none());
    assert!(Request::new(Op::Read, 1 << 32, &[0; 4]).is_none());
}

#[test]
fn replies_that_do_not_answer_the_request_are_rejected() {
    let req = Request::new(Op::Read, 0x70, &[0; 4]).unwrap();
    let ok = Reply {
        op: Op::Read,
        len: 4,
        ok: true,
        data: [1, 0, 0, 0, 0, 0, 0, 0],
    }
    .encode();
    assert!(Reply::decode_for(&ok, &req).is_ok());
    let mut m = ok;
    m[0] = Op::Write as u8;
    assert_eq!(Reply::decode_for(&m, &req), Err(MessageError::Mismatch));
    let mut m = ok;
    m[1] = 2;
    assert_eq!(Reply::decode_for(&m, &req), Err(MessageError::Mismatch));
    let mut m = ok;
    m[12] = 1; // a byte beyond the 4-byte access
    assert_eq!(Reply::decode_for(&m, &req), Err(MessageError::Mismatch));
    let mut m = ok;
    m[2] = 1;
    assert_eq!(Reply::decode_for(&m, &req), Err(MessageError::Refused));
    assert_eq!(
        Reply::decode_for(&ok[..8], &req),
        Err(MessageError::Length(8))
    );
}

#[test]
fn a_live_device_process_answers_through_the_socket() {
    let (vmm, dev) = socket_pair().unwrap();
    let window = std::sync::Arc::new(FakeWindow::default());
    let served = window.clone();
    let server = std::thread::spawn(move || {
        let mut n = 0;
        while serve_one(&*served, 0x1000, dev.as_raw_fd()).unwrap() == Served::Answered {
            n += 1;
        }
        n
    });
    let state = Arc::new(ProxyState::default());
    let mut p = ProxyDevice::new("virtio-test0", vmm, state.clone());
    assert_eq!(read32(&mut p, 0x14), 0x1414_1414);
    p.write(0x70, &0xfu32.to_le_bytes());
    let mut odd = [0u8; 3];
    p.read(0, &mut odd); // not a register access size: never sent
    drop(p);
    assert_eq!(server.join().unwrap(), 2);
    assert_eq!(
        *window.writes.lock().unwrap(),
        vec![(0x70, vec![0xf, 0, 0, 0])]
    );
    assert!(!state.is_dead());
}

#[test]
fn a_dead_device_process_means_needs_reset() {
    let (vmm, dev) = socket_pair().unwrap();
    drop(dev);
    let state = Arc::new(ProxyState::default());
    let mut p = ProxyDevice::new("virtio-test0", vmm, state.clone());
    assert_eq!(
        read32(&mut p, VIRTIO_MMIO_STATUS),
        VIRTIO_CONFIG_S_NEEDS_RESET
    );
    assert!(state.is_dead());
    assert_eq!(read32(&mut p, 0), 0, "MagicValue reads 0");
    p.write(0x70, &0u32.to_le_bytes()); // ignored, and no error
    assert_eq!(
        read32(&mut p, VIRTIO_MMIO_STATUS),
        VIRTIO_CONFIG_S_NEEDS_RESET
    );
    assert!(!state.mark_dead(), "already dead");
}

#[test]
fn a_bad_reply_puts_the_device_into_needs_reset() {
    let (vmm, dev) = socket_pair().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; MESSAGE_LEN];
        recv(dev.as_raw_fd(), &mut buf).unwrap();
        send(dev.as_raw_fd(), &[0xee; MESSAGE_LEN]).unwrap();
        dev
    });
    let state = Arc::new(ProxyState::default());
    let mut p = ProxyDevice::new("virtio-test0", vmm, state.clone());
    assert_eq!(
        read32(&mut p, VIRTIO_MMIO_STATUS),
        VIRTIO_CONFIG_S_NEEDS_RESET
    );
    assert!(state.is_dead());
    let _dev = server.join().unwrap();
    // Dead for good: nothing more is sent (the server is gone; a send would block no one).
    assert_eq!(read32(&mut p, 0x14), 0);
}
