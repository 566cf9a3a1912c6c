// Live tests: the real rtp-middlebox binary between a node sender (PCMU with a
// known loss and jitter pattern, plus SRs) and a node upstream (answers SRs
// with RRs carrying LSR/DLSR). The shim's getStats() must show the proxy's
// own figures, and its state events must follow the session's life.
//
// Binary: $RTP_MIDDLEBOX_BIN (relative to shim/), default ../target/debug/rtp-middlebox.
// The "protocol" tests check the stream's connectionState, ?session=
// filtering, error and description events; SHIM_PROXY_PROTOCOL=1 skips them
// (for a proxy older than those).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyPeerConnection } from '../index.js';
import { waitFor, sleep } from './helpers/fake-proxy.js';
import { recordStream } from './helpers/sse.js';
import {
  skipWithoutBinary,
  startProxy,
  startUpstream,
  startSender,
  waitForSession,
  getJson,
} from './helpers/live.js';

const STREAM_INTERVAL_MS = 200;
// ACTIVE_WITHIN_SECS (2 s, src/export/http.rs) decides "disconnected"; the idle
// sweep runs every second. With idle_timeout_secs = 2 a session can expire
// before any stream tick saw it quiet (no "disconnected"), so use 3.
const IDLE_TIMEOUT_SECS = 3;
const PROTOCOL_V2 = process.env.SHIM_PROXY_PROTOCOL !== '1';
const skipNoBinary = skipWithoutBinary();

async function scenario(t, { senders = 1, proxyOpts = {}, senderOpts = {} } = {}) {
  const upstream = await startUpstream({ holdMs: 30, claimedDelayMs: 10 });
  const proxy = await startProxy({
    upstreamPort: upstream.port,
    streamIntervalMs: STREAM_INTERVAL_MS,
    idleTimeoutSecs: IDLE_TIMEOUT_SECS,
    ...proxyOpts,
  });
  const cleanups = [];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
    upstream.close();
    await proxy.stop();
  });
  const sender = await startSender({ port: proxy.relayPort, ...senderOpts });
  cleanups.push(() => sender.close());
  const session = await waitForSession(proxy.apiBase, { token: proxyOpts.token });
  const others = [];
  for (let k = 1; k < senders; k++) {
    const s = await startSender({ port: proxy.relayPort, ssrc: 0x0c11e000 + k, skip: () => false, srAtMs: [] });
    cleanups.push(() => s.close());
    others.push(s);
  }
  return { upstream, proxy, sender, session, others, cleanups };
}

const byType = (report, type) => [...report.values()].filter((s) => s.type === type);

test(
  'live: getStats() through the shim equals the proxy\'s own stats; states follow the session',
  { timeout: 40000, skip: skipNoBinary },
  async (t) => {
    const { upstream, proxy, sender, session, others } = await scenario(t, { senders: 2 });
    assert.deepEqual(session.ssrcs.client, [sender.ssrc]);

    // resync off: "connected" must come from the stream's own state event.
    const pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id, resync: false });
    t.after(() => pc.close());
    const states = [];
    pc.addEventListener('iceconnectionstatechange', () => states.push({ ice: pc.iceConnectionState, conn: pc.connectionState, at: Date.now() }));

    await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'connected' });
    assert.ok(states[0].at - sender.firstSentAt < 1500, 'connected soon after traffic started');
    assert.equal(pc.connectionState, 'connected');
    assert.equal(pc.iceGatheringState, 'complete');
    assert.equal(pc.signalingState, 'stable');

    // Mid-stream: both RR-driven figures and counters, one interval of skew allowed.
    await waitFor(() => upstream.rrsSent.length >= 3, { timeoutMs: 5000, what: 'three RRs' });
    await sleep(STREAM_INTERVAL_MS + 50);
    let matched = 0;
    for (let tries = 0; tries < 20 && matched < 3; tries++) {
      const [shim, http] = await Promise.all([pc.getStats(), getJson(`${proxy.apiBase}/v1/sessions/${session.id}/stats`)]);
      const sIn = byType(shim, 'inbound-rtp').find((s) => s.ssrc === sender.ssrc);
      const hIn = http.find((s) => s.type === 'inbound-rtp' && s.ssrc === sender.ssrc);
      const sRi = byType(shim, 'remote-inbound-rtp').find((s) => s.ssrc === sender.ssrc);
      const hRi = http.find((s) => s.type === 'remote-inbound-rtp' && s.ssrc === sender.ssrc);
      assert.ok(sIn && hIn && sRi && hRi, 'inbound-rtp and remote-inbound-rtp in both');
      // The shim's report is the last stream tick: at most one interval (plus delivery) older.
      const skew = hIn.timestamp - sIn.timestamp;
      assert.ok(skew >= 0 && skew <= STREAM_INTERVAL_MS + 150, `skew ${skew} ms`);
      const slots = Math.ceil(skew / 20) + 1;
      assert.ok(hIn.packetsReceived - sIn.packetsReceived >= 0 && hIn.packetsReceived - sIn.packetsReceived <= slots);
      assert.ok(hIn.packetsLost - sIn.packetsLost >= 0 && hIn.packetsLost - sIn.packetsLost <= Math.ceil(slots / 10) + 1);
      // RR-driven figures carry the RR's arrival time: when it matches, they are equal.
      // (Within 1 ms: the proxy re-derives wall time per snapshot, moving stamps by µs.)
      if (Math.abs(sRi.timestamp - hRi.timestamp) < 1) {
        matched += 1;
        for (const k of ['fractionLost', 'packetsLost', 'jitter', 'roundTripTime', 'totalRoundTripTime', 'roundTripTimeMeasurements']) {
          assert.equal(sRi[k], hRi[k], `remote-inbound-rtp ${k}`);
        }
        assert.equal(typeof sRi.roundTripTime, 'number');
      }
      await sleep(60);
    }
    assert.ok(matched >= 1, 'at least one remote-inbound-rtp pair with matching timestamps');

    // Only this session's streams: the second client's SSRC never shows up.
    const mid = await pc.getStats();
    assert.ok(![...mid.values()].some((s) => s.ssrc === others[0].ssrc), 'other session filtered out');

    // After the last packet the figures freeze: the whole report must equal the proxy's.
    await sender.done;
    for (const o of others) o.close();
    await waitFor(() => pc.reportTimestamp > sender.lastSentAt + STREAM_INTERVAL_MS + 100, { timeoutMs: 3000, what: 'a report after the last packet' });
    const [shim, http] = await Promise.all([pc.getStats(), getJson(`${proxy.apiBase}/v1/sessions/${session.id}/stats`)]);
    // Snapshot-time stamps differ by construction; event-time stamps (RR/SR and
    // last-packet arrival) are the same events, though the proxy's monotonic→wall
    // mapping is recomputed per snapshot and moves them by a few microseconds.
    const snapshotTypes = new Set(['transport', 'codec', 'inbound-rtp', 'candidate-pair', 'outbound-rtp']);
    const eventTimes = ['timestamp', 'lastPacketReceivedTimestamp'];
    const strip = (s) => {
      const c = { ...s };
      for (const k of eventTimes) delete c[k];
      return c;
    };
    const sorted = (xs) => [...xs].sort((a, b) => a.id.localeCompare(b.id));
    const shimSorted = sorted(shim.values());
    const httpSorted = sorted(http);
    assert.deepEqual(shimSorted.map(strip), httpSorted.map(strip));
    shimSorted.forEach((s, i) => {
      for (const k of eventTimes) {
        if (k === 'timestamp' && snapshotTypes.has(s.type)) continue;
        if (s[k] === undefined) continue;
        assert.ok(Math.abs(s[k] - httpSorted[i][k]) < 1, `${s.id}.${k}: ${s[k]} vs ${httpSorted[i][k]}`);
      }
    });

    // And the proxy's figures are the ones the traffic pattern implies.
    const inbound = shim.get(`IT-client-${sender.ssrc}`);
    assert.equal(inbound.kind, 'audio');
    assert.equal(inbound.packetsReceived, sender.expected.received);
    assert.equal(inbound.packetsLost, sender.expected.lost);
    assert.ok(inbound.jitter > 0.001 && inbound.jitter < 0.02, `jitter ${inbound.jitter} s (4 ms alternating delay)`);
    const rir = shim.get(`RIA-client-${sender.ssrc}`);
    const lastRr = upstream.rrsSent.at(-1);
    assert.equal(rir.fractionLost, lastRr.fraction / 256);
    assert.equal(rir.packetsLost, lastRr.cumulativeLost);
    assert.equal(rir.jitter, lastRr.jitter / 8000);
    assert.ok(rir.roundTripTime > 0.015 && rir.roundTripTime < 0.2, `rtt ${rir.roundTripTime} s (hold 30 ms - DLSR 10 ms)`);
    assert.equal(rir.roundTripTimeMeasurements, upstream.rrsSent.length);

    // Traffic stopped: disconnected (after ~2 s quiet), then closed (idle timeout).
    await waitFor(() => pc.iceConnectionState === 'closed', { timeoutMs: IDLE_TIMEOUT_SECS * 1000 + 4000, what: 'closed' });
    assert.deepEqual(states.map((s) => s.ice), ['connected', 'disconnected', 'closed']);
    assert.deepEqual(states.map((s) => s.conn), ['connected', 'disconnected', 'closed']);
    const quietFor = states[1].at - sender.lastSentAt;
    assert.ok(quietFor >= 1800, `disconnected after ${quietFor} ms of silence`);
    assert.equal(pc.signalingState, 'closed');
    await waitFor(() => !pc.streamConnected, { what: 'stream released after close' });
  },
);

test('live: bearer token', { timeout: 20000, skip: skipNoBinary }, async (t) => {
  const { proxy, session } = await scenario(t, { proxyOpts: { token: 'tok-0123456789abcdef' }, senderOpts: { slots: 60, srAtMs: [] } });
  const good = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id, token: 'tok-0123456789abcdef' });
  const bad = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id, reconnect: { initialMs: 50, maxMs: 100 } });
  t.after(() => {
    good.close();
    bad.close();
  });
  const badErrors = [];
  bad.addEventListener('streamerror', (e) => badErrors.push(e.status));
  await waitFor(() => good.reportTimestamp !== null && good.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'good stream' });
  await waitFor(() => badErrors.length >= 1, { what: 'bad stream refused' });
  assert.equal(badErrors[0], 401);
  assert.equal(bad.iceConnectionState, 'new');
});

// ---- assertions that await the proxy's new stream protocol -------------------

const v2 = { timeout: 30000, skip: skipNoBinary || (PROTOCOL_V2 ? false : 'SHIM_PROXY_PROTOCOL=1: the proxy predates error/description events') };

test('live (stream protocol): state events carry connectionState; ?session= filters server-side', v2, async (t) => {
  const { proxy, session, others } = await scenario(t, { senders: 2, senderOpts: { slots: 100, srAtMs: [] } });
  // The second sender's first datagram may still be on its way.
  let other;
  await waitFor(async () => {
    other = (await getJson(`${proxy.apiBase}/v1/sessions`)).find((s) => s.id !== session.id);
    return Boolean(other);
  }, { what: 'second session' });
  const raw = recordStream(`${proxy.streamUrl}?session=${encodeURIComponent(session.id)}`);
  const all = recordStream(proxy.streamUrl);
  t.after(async () => {
    await raw.stop();
    await all.stop();
  });
  await sleep(1000);
  assert.ok(raw.events.length > 0);
  assert.ok(raw.events.every((e) => e.data.session === session.id), 'only the requested session');
  assert.ok(all.events.some((e) => e.data.session === other.id), 'unfiltered stream has both');
  void others;
  // These are the stream's first subscribers, so the next tick announces every session's state.
  const st = raw.events.find((e) => e.event === 'state');
  assert.ok(st, 'a state event for a new subscriber');
  assert.equal(st.data.connectionState, 'connected');
  assert.equal(st.data.iceConnectionState, 'connected');
});

test('live (stream protocol): idle expiry surfaces as proxyerror "idle" → applicationLog, then closed', v2, async (t) => {
  const { proxy, session, sender } = await scenario(t, { senderOpts: { slots: 50, srAtMs: [] } });
  const pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id });
  t.after(() => pc.close());
  const seen = [];
  pc.addEventListener('proxyerror', (e) => seen.push(['proxyerror', e.reason, e.callstatsFunction]));
  pc.addEventListener('iceconnectionstatechange', () => seen.push(['ice', pc.iceConnectionState]));
  pc.addEventListener('connectionstatechange', () => seen.push(['conn', pc.connectionState]));
  await sender.done;
  await waitFor(() => pc.iceConnectionState === 'closed', { timeoutMs: IDLE_TIMEOUT_SECS * 1000 + 5000, what: 'closed' });
  // The error may come just before or just after the closed state (the shim listens on for closeGraceMs).
  await waitFor(() => seen.some((x) => x[0] === 'proxyerror') || !pc.streamConnected, { what: 'error or end of stream' });
  const err = seen.findIndex((x) => x[0] === 'proxyerror');
  assert.ok(err >= 0, `no proxyerror in ${JSON.stringify(seen)}`);
  assert.deepEqual(seen[err], ['proxyerror', 'idle', 'applicationLog']);
  assert.equal(pc.lastProxyError.reason, 'idle');
});

test('live (stream protocol): PUT /v1/sessions/{id}/sdp reaches localDescription/remoteDescription', v2, async (t) => {
  const { proxy, session } = await scenario(t, { senderOpts: { slots: 100, srAtMs: [] } });
  const pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id });
  t.after(() => pc.close());
  await waitFor(() => pc.streamConnected, { what: 'stream' });
  const localDescription = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=ssrc:202498048 cname:shim\r\n' };
  const remoteDescription = { type: 'answer', sdp: 'v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n' };
  const res = await fetch(`${proxy.apiBase}/v1/sessions/${session.id}/sdp`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ localDescription, remoteDescription }),
  });
  assert.ok(res.ok, `PUT sdp: HTTP ${res.status}`);
  await waitFor(() => pc.remoteDescription !== null, { what: 'description event' });
  assert.deepEqual(JSON.parse(JSON.stringify(pc.localDescription)), localDescription);
  assert.deepEqual(JSON.parse(JSON.stringify(pc.remoteDescription)), remoteDescription);
});

test('live (stream protocol): an unreachable upstream surfaces as proxyerror → iceConnectionFailure', v2, async (t) => {
  // The sender keeps going (8 s) after the upstream closes, so relayed
  // packets meet the ICMP unreachable.
  const { proxy, session, upstream } = await scenario(t, { senderOpts: { slots: 400, srAtMs: [] } });
  const pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id });
  t.after(() => pc.close());
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
  const errors = [];
  pc.addEventListener('proxyerror', (e) => errors.push(e));
  // Closing the upstream socket makes the kernel answer relayed packets with
  // ICMP port unreachable (ECONNREFUSED on the proxy's connected socket).
  upstream.close();
  await waitFor(() => errors.length > 0, { timeoutMs: 5000, what: 'proxyerror' });
  assert.equal(errors[0].reason, 'upstream-unreachable');
  assert.equal(errors[0].callstatsFunction, 'iceConnectionFailure');
});
