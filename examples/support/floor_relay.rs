//! The floor of rtp-middlebox's own design: a relay with no statistics and
//! no engine, built the same way the proxy's workers are, so that the
//! proxy's figures can be read as a ratio against what its design costs.
//!
//! Per worker thread (as `rtp-middlebox run --workers W`):
//! - one SO_REUSEPORT copy of the listening socket (set up by the proxy's
//!   own `udp_listen_socket`, same buffer sizes);
//! - one connected upstream socket per client address, opened on the
//!   client's first datagram (the proxy's per-session socket);
//! - one edge-triggered epoll set over all of them; each ready socket is
//!   drained with recvmmsg batches of 32 until a short batch;
//! - consecutive datagrams of one session (or, upstream to client, of one
//!   socket) leave in one sendmmsg.
//!
//! With `uring`, the datagrams of one received batch that go to upstream
//! sockets are sent as one io_uring submission (one `io_uring_enter` for
//! every socket of the batch, instead of one sendmmsg per session): the
//! measurement behind the choice of send path (README, Performance).
//!
//! What it does not do is everything the proxy is for: no parsing, no
//! statistics, no RTCP, no timers, no admission limits, no session expiry.
//! It is plain libc so that nothing of the proxy's runtime is in it.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

const BATCH: usize = 32;
const SLOT: usize = 2048;
const LISTEN_TOKEN: u64 = u64::MAX;

/// Runs `workers` threads until the process is killed (SIGTERM's default
/// action: the load tool stops its relays that way).
pub fn run(listen: SocketAddr, upstream: SocketAddr, workers: usize, uring: bool) {
    // One descriptor per session, as the proxy raises its own limit.
    rtp_middlebox::runtime::socket::raise_descriptor_limit(200_000);
    let first = rtp_middlebox::runtime::socket::udp_listen_socket(
        listen,
        workers > 1,
        rtp_middlebox::runtime::socket::DEFAULT_BUFFER_BYTES,
    )
    .expect("floor relay: bind the listening socket");
    let bound = first.local_addr().unwrap();
    let mut first = Some(first);
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let sock = first.take().unwrap_or_else(|| {
                rtp_middlebox::runtime::socket::udp_listen_socket(
                    bound,
                    true,
                    rtp_middlebox::runtime::socket::DEFAULT_BUFFER_BYTES,
                )
                .expect("floor relay: bind a worker's listening socket")
            });
            std::thread::spawn(move || Worker::new(sock, upstream, uring).run())
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

struct Session {
    socket: UdpSocket,
    client: SocketAddrV4,
}

struct Worker {
    epoll: i32,
    listen: UdpSocket,
    upstream: SocketAddr,
    by_client: HashMap<SocketAddrV4, u32>,
    sessions: Vec<Session>,
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    from: [SocketAddrV4; BATCH],
    ring: Option<io_uring::IoUring>,
}

fn epoll_add(epoll: i32, fd: i32, token: u64) {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: token,
    };
    // SAFETY: epoll_ctl on descriptors this worker owns, with a valid event.
    let r = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "floor relay: epoll_ctl: {}", std::io::Error::last_os_error());
}

impl Worker {
    fn new(listen: UdpSocket, upstream: SocketAddr, uring: bool) -> Worker {
        // SAFETY: plain syscall; the descriptor is checked below.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epoll >= 0, "floor relay: epoll_create1");
        epoll_add(epoll, listen.as_raw_fd(), LISTEN_TOKEN);
        Worker {
            epoll,
            listen,
            upstream,
            by_client: HashMap::new(),
            sessions: Vec::new(),
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            from: [SocketAddrV4::new([0, 0, 0, 0].into(), 0); BATCH],
            ring: uring.then(|| io_uring::IoUring::new(2 * BATCH as u32).expect("floor relay: io_uring")),
        }
    }

    fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            // SAFETY: `events` has room for its length.
            let n = unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), events.len() as i32, -1) };
            if n < 0 {
                continue; // EINTR
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == LISTEN_TOKEN {
                    self.drain_listen();
                } else {
                    self.drain_upstream(token as usize);
                }
            }
        }
    }

    /// recvmmsg on `fd` into the batch buffers; the number received.
    fn recv(&mut self, fd: i32) -> usize {
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut names: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i * SLOT..].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_in).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of the stated sizes.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r <= 0 {
            return 0;
        }
        let n = r as usize;
        for i in 0..n {
            self.lens[i] = hdrs[i].msg_len as usize;
            self.from[i] = SocketAddrV4::new(
                u32::from_be(names[i].sin_addr.s_addr).into(),
                u16::from_be(names[i].sin_port),
            );
        }
        n
    }

    /// sendmmsg of datagrams `range` of the batch on `fd` (to `dest`, or
    /// connected when `None`).
    fn send(&self, fd: i32, dest: Option<SocketAddrV4>, range: std::ops::Range<usize>) {
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut name: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        if let Some(d) = dest {
            name.sin_family = libc::AF_INET as u16;
            name.sin_port = d.port().to_be();
            name.sin_addr.s_addr = u32::from(*d.ip()).to_be();
        }
        let count = range.len();
        for (k, i) in range.enumerate() {
            iov[k] = libc::iovec {
                iov_base: self.bufs[i * SLOT..].as_ptr() as *mut libc::c_void,
                iov_len: self.lens[i],
            };
            if dest.is_some() {
                hdrs[k].msg_hdr.msg_name = (&mut name as *mut libc::sockaddr_in).cast();
                hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        let mut off = 0;
        while off < count {
            // SAFETY: the headers point at the batch buffers and `name`.
            let r = unsafe { libc::sendmmsg(fd, hdrs[off..].as_mut_ptr(), (count - off) as u32, libc::MSG_DONTWAIT) };
            if r <= 0 {
                off += 1; // a refused datagram is dropped, as in the proxy
            } else {
                off += r as usize;
            }
        }
    }

    /// The client's session, opened on its first datagram; `None` when no
    /// socket can be opened (descriptors or ports exhausted: the datagram is
    /// dropped, as the proxy drops it).
    fn session_of(&mut self, client: SocketAddrV4) -> Option<usize> {
        if let Some(&i) = self.by_client.get(&client) {
            return Some(i as usize);
        }
        let bind: SocketAddr = match self.upstream {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let socket = rtp_middlebox::runtime::socket::udp_socket(
            bind,
            false,
            rtp_middlebox::runtime::socket::DEFAULT_BUFFER_BYTES,
        )
        .ok()?;
        socket.connect(self.upstream).ok()?;
        let index = self.sessions.len();
        epoll_add(self.epoll, socket.as_raw_fd(), index as u64);
        self.sessions.push(Session { socket, client });
        self.by_client.insert(client, index as u32);
        Some(index)
    }

    /// Sends datagram `i` of the batch on each `(i, fd)` in one io_uring
    /// submission, and waits for every completion (the batch buffers are
    /// reused by the next recvmmsg).
    fn send_uring(&mut self, sends: &[(usize, i32)]) {
        let Some(ring) = self.ring.as_mut() else { return };
        for &(i, fd) in sends {
            let entry = io_uring::opcode::Send::new(
                io_uring::types::Fd(fd),
                self.bufs[i * SLOT..].as_ptr(),
                self.lens[i] as u32,
            )
            .flags(libc::MSG_DONTWAIT)
            .build();
            // SAFETY: the buffer outlives the submission (waited for below).
            unsafe { ring.submission().push(&entry) }.expect("floor relay: submission queue full");
        }
        let _ = ring.submit_and_wait(sends.len());
        ring.completion().for_each(drop);
    }

    fn drain_listen(&mut self) {
        let fd = self.listen.as_raw_fd();
        loop {
            let n = self.recv(fd);
            if self.ring.is_some() {
                let sends: Vec<(usize, i32)> = (0..n)
                    .filter_map(|i| {
                        let session = self.session_of(self.from[i])?;
                        Some((i, self.sessions[session].socket.as_raw_fd()))
                    })
                    .collect();
                self.send_uring(&sends);
                if n < BATCH {
                    return;
                }
                continue;
            }
            let mut start = 0;
            while start < n {
                let session = self.session_of(self.from[start]);
                let mut end = start + 1;
                while end < n && self.from[end] == self.from[start] {
                    end += 1;
                }
                if let Some(session) = session {
                    self.send(self.sessions[session].socket.as_raw_fd(), None, start..end);
                }
                start = end;
            }
            if n < BATCH {
                return;
            }
        }
    }

    fn drain_upstream(&mut self, session: usize) {
        let Some(s) = self.sessions.get(session) else { return };
        let (fd, client) = (s.socket.as_raw_fd(), s.client);
        loop {
            let n = self.recv(fd);
            if n > 0 {
                self.send(self.listen.as_raw_fd(), Some(client), 0..n);
            }
            if n < BATCH {
                return;
            }
        }
    }
}
