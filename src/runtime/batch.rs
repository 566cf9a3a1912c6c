//! Batched datagram I/O: recvmmsg (with GRO and kernel receive timestamps)
//! through quinn-udp, and sendmmsg through libc (quinn-udp has no
//! sendmmsg). Buffers are allocated once per worker: no per-packet
//! allocation on the packet path.

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Datagrams per recvmmsg/sendmmsg call.
pub const BATCH: usize = 32;
/// Bytes per receive slot: a GRO-coalesced run of datagrams may fill 64 KiB.
pub const SLOT_BYTES: usize = 65_536;

/// One worker's receive buffers.
pub struct RecvBuffers {
    slots: Vec<u8>,
    meta: [RecvMeta; BATCH],
    filled: usize,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBuffers {
    pub fn new() -> Self {
        RecvBuffers {
            slots: vec![0; BATCH * SLOT_BYTES],
            meta: [RecvMeta::default(); BATCH],
            filled: 0,
        }
    }

    /// One recvmmsg. `Ok(0)` never happens for UDP; `WouldBlock` means
    /// drained.
    pub fn recv(&mut self, state: &UdpSocketState, socket: UdpSockRef<'_>) -> io::Result<usize> {
        let mut slices: [IoSliceMut<'_>; BATCH] = {
            let mut chunks = self.slots.chunks_exact_mut(SLOT_BYTES);
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()))
        };
        self.filled = 0;
        let n = state.recv(socket, &mut slices, &mut self.meta)?;
        self.filled = n;
        Ok(n)
    }

    /// Every datagram of the last batch: (source, kernel receive time, bytes),
    /// GRO runs split at their stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, Option<Duration>, &[u8])> + '_ {
        self.meta[..self.filled].iter().enumerate().flat_map(move |(i, m)| {
            let slot = &self.slots[i * SLOT_BYTES..i * SLOT_BYTES + m.len.min(SLOT_BYTES)];
            let stride = m.stride.max(1);
            slot.chunks(stride).map(move |d| (m.addr, m.timestamp, d))
        })
    }
}

/// Turns off the ancillary data quinn-udp asks for that the worker never
/// reads (the TOS/ECN byte and the destination address: a socket's local
/// address is known, ECN is not measured). The kernel then writes one
/// control message per datagram (the receive timestamp, which jitter and
/// arrival times need) instead of three, and the batch parser walks one.
/// Call after `UdpSocketState::new`, which turned them on. Best effort: an
/// option the socket's family lacks stays as it was.
pub fn drop_unread_control_messages<S: AsRawFd>(socket: &S) {
    let off: libc::c_int = 0;
    for (level, name) in [
        (libc::IPPROTO_IP, libc::IP_RECVTOS),
        (libc::IPPROTO_IP, libc::IP_PKTINFO),
        (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    ] {
        // SAFETY: setsockopt on an open socket with a c_int value and its
        // size; an unsupported option fails with no effect.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                std::ptr::addr_of!(off).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Outcome of a send batch, for counters.
#[derive(Default, Debug, Clone, Copy)]
pub struct SendOutcome {
    pub sent: usize,
    /// Kernel buffer full (EAGAIN/ENOBUFS): dropped, not queued.
    pub would_block: usize,
    /// ICMP-reported errors surfacing on the socket (ECONNREFUSED, EHOSTUNREACH…).
    pub refused: usize,
    pub other_errors: usize,
}

/// Sends `datagrams` on `socket` with sendmmsg, to `dest` (None on a
/// connected socket). A datagram the kernel refuses is skipped and counted;
/// the rest still go out.
pub fn send_batch<S: AsRawFd>(socket: &S, dest: Option<SocketAddr>, datagrams: &[&[u8]]) -> SendOutcome {
    let mut out = SendOutcome::default();
    let fd = socket.as_raw_fd();
    let addr = dest.map(socket2::SockAddr::from);
    let (name, namelen) = match &addr {
        Some(a) => (a.as_ptr() as *mut libc::c_void, a.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let mut start = 0;
    while start < datagrams.len() {
        let chunk = &datagrams[start..datagrams.len().min(start + BATCH)];
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, d) in chunk.iter().enumerate() {
            iov[i] = libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            };
            hdrs[i].msg_hdr.msg_name = name;
            hdrs[i].msg_hdr.msg_namelen = namelen;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..len]` point at `iov` entries and at `addr`, all of
        // which outlive the call; the kernel only reads them.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as libc::c_uint, libc::MSG_DONTWAIT) };
        if r >= 0 {
            let n = r as usize;
            out.sent += n;
            start += n.max(1);
            if n == 0 {
                out.other_errors += 1;
            }
            continue;
        }
        // The first datagram of the chunk failed: count it and move on.
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => out.would_block += 1,
            Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) | Some(libc::EHOSTDOWN) => {
                out.refused += 1
            }
            Some(libc::EINTR) => continue,
            _ => out.other_errors += 1,
        }
        start += 1;
    }
    out
}
