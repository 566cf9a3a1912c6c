//! Memory bounds of the engine's state: bytes per idle session and per
//! active stream, measured with a counting allocator over 100 000 sessions.
//! (Socket buffers and the runtime's per-session task are outside this
//! figure; see README "Performance".)

mod common;
use common::{deliver, info, pcmu as rtp};
use rtp_middlebox::engine::{Engine, EngineConfig, RtcpMode, SessionId, Side};
use rtp_middlebox::time::MonoTime;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocation calls made by the thread under test (thread-local so the
/// test harness's other threads do not count).
static ALLOCS: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        if COUNT_HERE.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests that read the process-wide live-bytes count run one at a time
/// (the test harness runs tests on parallel threads).
static LIVE_BYTES_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LIVE_BYTES_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn client(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | n), 5000))
}

/// An engine of one relay in `mode` (no idle expiry, then `adjust`) with
/// `n` sessions open, one per client address: the engine, the clients and
/// the sessions' ids.
fn engine_with_sessions(
    n: usize,
    mode: RtcpMode,
    adjust: impl FnOnce(&mut EngineConfig),
) -> (Engine, Vec<SocketAddr>, Vec<SessionId>) {
    let mut config = EngineConfig {
        relays: vec![common::relay(mode)],
        idle_timeout: None,
        ..EngineConfig::default()
    };
    adjust(&mut config);
    let mut e = Engine::new(config);
    let clients: Vec<SocketAddr> = (0..n as u32).map(client).collect();
    let ids = clients
        .iter()
        .map(|c| e.open_session(MonoTime::ZERO, 0, info(*c)).unwrap())
        .collect();
    (e, clients, ids)
}

#[test]
fn state_per_session_and_per_stream_stays_under_2_kib() {
    let _serial = one_at_a_time();
    const N: usize = 100_000;
    let before = LIVE.load(Ordering::Relaxed);
    let (mut e, clients, ids) = engine_with_sessions(N, RtcpMode::Forward, |c| {
        c.max_sessions = N;
        c.max_queued_events = 16;
    });
    let idle = LIVE.load(Ordering::Relaxed) - before;
    // One audio stream each way per session: two streams per session.
    for (i, id) in ids.iter().enumerate() {
        for seq in 0..3u16 {
            let t = MonoTime::from_millis(u64::from(seq) * 20);
            deliver(&mut e, t, Side::Client, *id, clients[i], &rtp(seq, i as u32));
            deliver(&mut e, t, Side::Upstream, *id, clients[i], &rtp(seq, !(i as u32)));
        }
    }
    let active = LIVE.load(Ordering::Relaxed) - before;
    let per_idle_session = idle as f64 / N as f64;
    let per_stream = (active - idle) as f64 / (2 * N) as f64;
    println!(
        "engine state: {per_idle_session:.0} B per idle session, {per_stream:.0} B per active stream ({N} sessions)"
    );
    assert_eq!(e.session_count(), N);
    assert!(per_idle_session < 2048.0, "{per_idle_session} B per idle session");
    assert!(per_stream < 2048.0, "{per_stream} B per stream");
    // Closing everything returns the memory (no leak per session).
    for id in ids {
        e.close_session(MonoTime::from_millis(100), id);
        while e
            .poll_output()
            .is_some_and(|o| !matches!(o, rtp_middlebox::engine::Output::Timeout(_)))
        {}
    }
    // What remains is the slot table (reused by later sessions), nothing
    // per session.
    let after = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        after <= idle,
        "{after} B left after closing all sessions (table {idle} B)"
    );
}

#[test]
fn steady_state_packet_path_allocates_nothing() {
    let _serial = one_at_a_time();
    let mut e = Engine::new(EngineConfig {
        relays: vec![common::relay(RtcpMode::Forward)],
        ..EngineConfig::default()
    });
    let clients: Vec<SocketAddr> = (0..100).map(client).collect();
    let ids: Vec<_> = clients
        .iter()
        .map(|c| e.open_session(MonoTime::ZERO, 0, info(*c)).unwrap())
        .collect();
    let mut seq = 0u16;
    let send_round = |e: &mut Engine, seq: u16| {
        for (i, id) in ids.iter().enumerate() {
            let t = MonoTime::from_millis(u64::from(seq) * 20);
            deliver(e, t, Side::Client, *id, clients[i], &rtp(seq, i as u32));
            deliver(e, t, Side::Upstream, *id, clients[i], &rtp(seq, !(i as u32)));
        }
    };
    // Warm-up: streams created, events queued once.
    for _ in 0..5 {
        send_round(&mut e, seq);
        seq += 1;
    }
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    COUNT_HERE.with(|c| c.set(true));
    for _ in 0..200 {
        send_round(&mut e, seq);
        seq += 1;
    }
    COUNT_HERE.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed) - allocs_before,
        0,
        "allocations on the packet path"
    );
}

/// A long quiet call in `auto` (what `relay_load bench --streams 18000
/// --rate 5` runs): each session's client sends 5 packets/s and an SR every
/// 5 s, the upstream never answers, so the engine generates receiver
/// reports on its timers. Once every session is in its steady state (a
/// minute in) the engine's memory must stay where it is for the next nine
/// minutes: nothing kept per packet, per report or per timer tick.
#[test]
fn memory_stays_flat_over_a_long_quiet_call() {
    let _serial = one_at_a_time();
    const N: usize = 200;
    let before = LIVE.load(Ordering::Relaxed);
    let (mut e, clients, ids) = engine_with_sessions(N, RtcpMode::Auto, |_| {});
    let drain = |e: &mut Engine| {
        while e
            .poll_output()
            .is_some_and(|o| !matches!(o, rtp_middlebox::engine::Output::Timeout(_)))
        {}
    };
    let mut settled = 0;
    for step in 0..3000u32 {
        // 200 ms steps: one packet per stream, an SR every 25th step.
        let now = MonoTime::from_millis(u64::from(step) * 200);
        while let Some(due) = e.poll_timeout().filter(|d| *d <= now) {
            e.handle_input(rtp_middlebox::engine::Input::Timeout(due));
            drain(&mut e);
        }
        for (i, id) in ids.iter().enumerate() {
            let ssrc = rtp_middlebox::wire::Ssrc(i as u32);
            deliver(&mut e, now, Side::Client, *id, clients[i], &rtp(step as u16, i as u32));
            if step % 25 == 0 {
                let info = common::sender_info(
                    rtp_middlebox::wire::ntp::NtpTime(0xe000_0000_0000_0000 + (u64::from(step) << 30)),
                    step * 1600,
                    step,
                    step * 160,
                );
                deliver(
                    &mut e,
                    now,
                    Side::Client,
                    *id,
                    clients[i],
                    &common::sr(ssrc, &info, &[], None),
                );
            }
        }
        if step == 300 {
            settled = LIVE.load(Ordering::Relaxed) - before;
        }
    }
    let end = LIVE.load(Ordering::Relaxed) - before;
    let generated = e.counters().reports_generated;
    println!(
        "engine state over a quiet call: {:.0} B per session a minute in, {:.0} B after ten ({generated} reports generated)",
        settled as f64 / N as f64,
        end as f64 / N as f64
    );
    assert!(
        generated > N as u64 * 100,
        "the engine generated only {generated} reports"
    );
    assert!(
        end <= settled + settled / 50,
        "engine memory grew from {settled} B to {end} B between minute 1 and minute 10"
    );
}
