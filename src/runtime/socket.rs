//! UDP socket set-up (socket2): SO_REUSEPORT for one listening socket per
//! worker, buffer sizes, non-blocking mode, and binding in a port range.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Socket buffer size asked of the kernel (it may clamp to net.core.*mem_max;
/// the listening sockets force it, see [`udp_listen_socket`]). The kernel
/// charges only what is queued, so a large limit costs nothing until a
/// worker falls behind: at 4 MiB, 18 000 sessions x 5 packets/s on a busy
/// 2-core host overflowed a listening socket while its worker was
/// descheduled (`relay_load soak`, 0.003-0.27 % loss; none at 16 MiB).
pub const DEFAULT_BUFFER_BYTES: usize = 16 << 20;

pub fn udp_socket(addr: SocketAddr, reuse_port: bool, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // An IPv6 listener serves IPv6 only; IPv4 gets its own [[relay]].
        s.set_only_v6(true)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: a kernel limit below the request is not an error.
    let _ = s.set_recv_buffer_size(buffer_bytes);
    let _ = s.set_send_buffer_size(buffer_bytes);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A client-facing (listening) socket: like [`udp_socket`], and with
/// CAP_NET_ADMIN the buffers are forced past `net.core.[rw]mem_max`
/// (SO_RCVBUFFORCE): every client's datagrams and any flood land here, and
/// a kernel drop on this socket is a drop for an established call too.
/// Per-session sockets keep the ordinary limit (there may be 100 000).
pub fn udp_listen_socket(addr: SocketAddr, reuse_port: bool, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let s = udp_socket(addr, reuse_port, buffer_bytes)?;
    force_buffers(&s, buffer_bytes);
    Ok(s)
}

/// Best effort: without the capability the ordinary (clamped) size stays.
pub fn force_buffers(s: &UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt on an open socket we own, with a c_int value
        // and its size; failure (EPERM) leaves the socket as it was.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of!(value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Raises the process's open-descriptor limit (RLIMIT_NOFILE) toward
/// `wanted`: the soft limit up to the hard one, and past it when the
/// process may (CAP_SYS_RESOURCE, up to `fs.nr_open`). Every session holds
/// one or two upstream sockets, and a common default soft limit of 1 024
/// would refuse sessions long before `limits.max_sessions`. Returns the
/// limit now in force.
pub fn raise_descriptor_limit(wanted: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct; failure changes nothing.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur >= wanted {
            return lim.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max.max(wanted),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return wanted;
        }
        let within = libc::rlimit {
            rlim_cur: lim.rlim_max.min(wanted),
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &within) == 0 {
            return within.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// After a bind found every port of the range in use, new sessions are
/// refused without a system call for this long. A scan tries each port
/// once (a socket, its options and a bind: microseconds), so a full
/// 10 000-port range costs a worker tens of milliseconds. Before the
/// back-off, every new client's datagram paid that again once the range
/// was full, which stalled every established call on the worker: 2 000
/// clients against 1 000 ports delivered 1 998 of 199 998 packets.
/// Scans stay whole (a free port is always found when there is one; a
/// capped scan refused sessions while another worker or relay held a long
/// run of the range ahead of this one's turn).
pub const EXHAUSTED_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Cycles through a port range to bind per-session upstream sockets.
#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    low: u16,
    high: u16,
    next: u16,
    /// Until when a bind is refused at once (the range was found full).
    exhausted_until: Option<crate::time::MonoTime>,
    /// Binds attempted (system calls made), for tests and diagnosis.
    attempts: u64,
}

impl PortAllocator {
    /// `start` spreads workers over the range so they rarely collide.
    pub fn new(ip: IpAddr, (low, high): (u16, u16), start: u16) -> Self {
        let span = u32::from(high - low) + 1;
        let next = low + (u32::from(start) % span) as u16;
        PortAllocator {
            ip,
            low,
            high,
            next,
            exhausted_until: None,
            attempts: 0,
        }
    }

    fn advance(&mut self, by: u16) -> u16 {
        let p = self.next;
        let span = u32::from(self.high - self.low) + 1;
        let off = (u32::from(p - self.low) + u32::from(by)) % span;
        self.next = self.low + off as u16;
        p
    }

    /// Binds one socket in the range, or a pair on an even port P and P+1
    /// when `pair` (non-mux RTP/RTCP). Tries every candidate once before
    /// giving up with `AddrInUse`, and then refuses at once for
    /// [`EXHAUSTED_BACKOFF`] after `now` (the worker's clock).
    pub fn bind(
        &mut self,
        now: crate::time::MonoTime,
        pair: bool,
        buffer_bytes: usize,
    ) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
        if self.exhausted_until.is_some_and(|until| now < until) {
            return Err(Self::exhausted());
        }
        let span = u32::from(self.high - self.low) + 1;
        for _ in 0..span {
            let port = self.advance(1);
            if pair && (port % 2 != 0 || port >= self.high) {
                continue;
            }
            self.attempts += 1;
            let first = match udp_socket(SocketAddr::new(self.ip, port), false, buffer_bytes) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            if !pair {
                return Ok((first, None));
            }
            self.attempts += 1;
            match udp_socket(SocketAddr::new(self.ip, port + 1), false, buffer_bytes) {
                Ok(second) => return Ok((first, Some(second))),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        self.exhausted_until = Some(now + EXHAUSTED_BACKOFF);
        Err(Self::exhausted())
    }

    /// Binds attempted so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    fn exhausted() -> io::Error {
        io::Error::new(io::ErrorKind::AddrInUse, "upstream port range exhausted")
    }
}

/// Which worker's listening socket (of a SO_REUSEPORT group, one per
/// worker, joined in worker order) receives a client's datagrams. The
/// kernel's own choice hashes the whole 4-tuple, so a client's second port
/// lands on any worker, and a worker's engine only knows its own sessions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Steering {
    /// By the client's address and port pair (port / 2): the RTP port P
    /// and RTCP port P + 1 of a non-mux client (RFC 3550 §11) reach the
    /// same worker, and many clients behind one address still spread.
    PortPair,
    /// By the client's address alone: a client whose NAT mapping moves to
    /// a new port stays on its worker, where `nat_rebinding = "stun"` can
    /// move its session. Clients behind one address share a worker.
    Address,
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; libc lacks it on Linux).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Steers the SO_REUSEPORT group of `socket` (whose local address is
/// `local`) over `workers` sockets with a classic BPF program: a hash of
/// the source address (and port pair), modulo the group size. It replaces
/// any earlier program, so a reload can change it.
///
/// The program runs with the packet's data at the UDP payload; it reads
/// the IP header through `SKF_NET_OFF` (IPv4: source at 12, UDP source
/// port at 20 when the header has no options; IPv6: the source's last
/// word at 20, the port at 40 when there are no extension headers). A
/// packet with IP options or extension headers gets a hash of other bytes
/// of its header, the same for every packet of its flow.
pub fn steer(socket: &UdpSocket, local: SocketAddr, workers: usize, by: Steering) -> io::Result<()> {
    use libc::{sock_filter, sock_fprog, BPF_A, BPF_ABS, BPF_ALU, BPF_H, BPF_K, BPF_LD, BPF_MISC};
    use libc::{BPF_MOD, BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X, BPF_XOR};
    use std::os::fd::AsRawFd;
    if workers < 2 {
        return Ok(());
    }
    let net = |offset: i32| (libc::SKF_NET_OFF + offset) as u32;
    let (address_word, source_port) = match local {
        SocketAddr::V4(_) => (net(12), net(20)),
        SocketAddr::V6(_) => (net(20), net(40)),
    };
    let op = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = Vec::with_capacity(9);
    if by == Steering::PortPair {
        program.push(op(BPF_LD | BPF_H | BPF_ABS, source_port));
        program.push(op(BPF_ALU | BPF_RSH | BPF_K, 1));
        program.push(op(BPF_MISC | BPF_TAX, 0));
    }
    program.push(op(BPF_LD | BPF_W | BPF_ABS, address_word));
    if by == Steering::PortPair {
        program.push(op(BPF_ALU | BPF_XOR | BPF_X, 0));
    }
    // Fibonacci hashing: the high half of A × 2^32/φ mixes every input bit.
    program.push(op(BPF_ALU | BPF_MUL | BPF_K, 0x9e37_79b1));
    program.push(op(BPF_ALU | BPF_RSH | BPF_K, 16));
    program.push(op(BPF_ALU | BPF_MOD | BPF_K, workers as u32));
    program.push(op(BPF_RET | BPF_A, 0));
    let fprog = sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: setsockopt on an open socket with a sock_fprog that points at
    // `program`, alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::addr_of!(fprog).cast(),
            std::mem::size_of::<sock_fprog>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MonoTime;

    #[test]
    fn binds_in_range_and_pairs_even_odd() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Find a free even base port pair region by asking the OS first.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let mut alloc = PortAllocator::new(ip, (base, base.saturating_add(21)), 0);
        let (a, none) = alloc.bind(MonoTime::ZERO, false, 1 << 16).unwrap();
        assert!(none.is_none());
        let p = a.local_addr().unwrap().port();
        assert!((base..=base + 21).contains(&p));
        let (rtp, rtcp) = alloc.bind(MonoTime::ZERO, true, 1 << 16).unwrap();
        let rtp_port = rtp.local_addr().unwrap().port();
        assert_eq!(rtp_port % 2, 0);
        assert_eq!(rtcp.unwrap().local_addr().unwrap().port(), rtp_port + 1);
    }

    #[test]
    fn exhausted_range_is_an_error_not_a_hang() {
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let mut alloc = PortAllocator::new("127.0.0.1".parse().unwrap(), (port, port), 0);
        assert_eq!(
            alloc.bind(MonoTime::ZERO, false, 1 << 16).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
