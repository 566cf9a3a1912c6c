// Unit tests of the shim against a fake proxy (node's http server speaking the
// /v1/stream protocol): state events, reports, reconnection, errors, token,
// session filtering, legacy getStats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ProxyPeerConnection,
  ProxyStatsReport,
  SseParser,
  backoffDelay,
  callstatsFunctionFor,
  CALLSTATS_FUNCTION_FOR_REASON,
  connectionStateFromIce,
  sdkOrder,
} from '../index.js';
import { FakeProxy, waitFor, sleep, sampleReport } from './helpers/fake-proxy.js';

const SID = '0-00000001000000009f3a0c11d2e45b67';
const OTHER = '0-0000000200000000c4d1e8f02a7b3965';
const T = { timeout: 15000 };

async function setup(t, proxyOpts = {}, pcOpts = {}) {
  const proxy = await new FakeProxy(proxyOpts).start();
  const pc = new ProxyPeerConnection({
    streamUrl: proxy.streamUrl,
    sessionId: SID,
    reconnect: { initialMs: 20, maxMs: 200 },
    closeGraceMs: 100,
    ...pcOpts,
  });
  t.after(async () => {
    pc.close();
    await proxy.stop();
  });
  return { proxy, pc };
}

test('SseParser: fields, multi-line data, comments, CRLF/CR split across chunks, retry', T, () => {
  const retries = [];
  const p = new SseParser({ onRetry: (ms) => retries.push(ms) });
  const out = [];
  const feed = (s) => out.push(...p.push(s));
  feed('\ufeff: keep-alive\n');
  feed('event: stats\r');
  feed('\ndata: {"a":');
  feed('1}\r\n\r\n');
  feed('data: line1\ndata: line2\nid: 7\n\n');
  feed('event: state\rdata:x\r\r');
  feed('retry: 1500\n\n');
  feed('event: ignored-without-data\n\n');
  feed('data: tail');
  assert.deepEqual(out, [
    { event: 'stats', data: '{"a":1}', id: '' },
    { event: 'message', data: 'line1\nline2', id: '7' },
    { event: 'state', data: 'x', id: '7' },
  ]);
  assert.deepEqual(retries, [1500]);
  assert.deepEqual(p.push('\n\n'), [{ event: 'message', data: 'tail', id: '7' }]);
});

test('backoffDelay grows exponentially, caps at maxMs, and jitter only shortens', T, () => {
  const o = { initialMs: 100, maxMs: 1000, jitter: 0.5 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 40].map((a) => backoffDelay(a, o, () => 0)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  assert.equal(backoffDelay(2, o, () => 1), 200);
  assert.equal(backoffDelay(2, { ...o, jitter: 0 }, () => 1), 400);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(3, o);
    assert.ok(d >= 400 && d <= 800, String(d));
  }
});

test('reason → callstats reportError fnName mapping', T, () => {
  assert.equal(callstatsFunctionFor('consent-lost'), 'iceConnectionFailure');
  assert.equal(callstatsFunctionFor('upstream-unreachable'), 'iceConnectionFailure');
  assert.equal(callstatsFunctionFor('idle'), 'applicationLog');
  assert.equal(callstatsFunctionFor('srtcp-auth-failure'), 'applicationLog');
  assert.equal(callstatsFunctionFor('something-new'), 'applicationLog');
  assert.equal(callstatsFunctionFor('toString'), 'applicationLog');
  assert.ok(Object.isFrozen(CALLSTATS_FUNCTION_FOR_REASON));
  assert.equal(connectionStateFromIce('checking'), 'connecting');
  assert.equal(connectionStateFromIce('completed'), 'connected');
  assert.equal(connectionStateFromIce('bogus'), undefined);
});

test('ProxyStatsReport is maplike and hands out copies', T, () => {
  const stats = sampleReport(SID);
  const r = new ProxyStatsReport(stats);
  assert.equal(r.size, stats.length);
  assert.equal(Object.prototype.toString.call(r), '[object RTCStatsReport]');
  assert.ok(r.has('IT-client-1234'));
  assert.equal(r.get('IT-client-1234').packetsLost, 10);
  assert.deepEqual([...r.keys()], stats.map((s) => s.id));
  assert.deepEqual([...r.values()].map((s) => s.type), stats.map((s) => s.type));
  assert.deepEqual([...r].map(([k]) => k), stats.map((s) => s.id));
  assert.deepEqual([...r.entries()].map(([, v]) => v.id), stats.map((s) => s.id));
  const seen = [];
  const thisArg = {};
  r.forEach(function (v, k, m) {
    assert.equal(this, thisArg);
    assert.equal(m, r);
    seen.push([k, v.type]);
  }, thisArg);
  assert.equal(seen.length, stats.length);
  r.get('IT-client-1234').packetsLost = 999;
  assert.equal(stats[2].packetsLost, 10);
});

test('constructor validates its options; the pc looks like an RTCPeerConnection', T, async (t) => {
  assert.throws(() => new ProxyPeerConnection({ sessionId: SID }), TypeError);
  assert.throws(() => new ProxyPeerConnection({ streamUrl: 'http://127.0.0.1:1/v1/stream' }), TypeError);
  const { pc } = await setup(t);
  assert.equal(pc.signalingState, 'stable');
  assert.equal(pc.iceConnectionState, 'new');
  assert.equal(pc.iceGatheringState, 'new');
  assert.equal(pc.connectionState, 'new');
  assert.equal(pc.localDescription, null);
  assert.equal(pc.remoteDescription, null);
  assert.equal(typeof pc.createOffer, 'function');
  await assert.rejects(pc.createOffer(), { name: 'InvalidStateError' });
  await assert.rejects(pc.setRemoteDescription({ type: 'offer', sdp: '' }), { name: 'InvalidStateError' });
  await pc.addIceCandidate({});
  assert.deepEqual(pc.getSenders(), []);
  assert.deepEqual(pc.getReceivers(), []);
  assert.deepEqual(pc.getTransceivers(), []);
  assert.deepEqual(pc.getConfiguration().iceServers, []);
  const empty = await pc.getStats();
  assert.equal(empty.size, 0);
});

test('state events update properties first, then fire in order; on<event> handlers work', T, async (t) => {
  const { proxy, pc } = await setup(t);
  const log = [];
  for (const type of [
    'icegatheringstatechange',
    'icecandidate',
    'iceconnectionstatechange',
    'connectionstatechange',
    'signalingstatechange',
  ]) {
    pc.addEventListener(type, (e) =>
      log.push([
        e.type,
        pc.iceGatheringState,
        pc.iceConnectionState,
        pc.connectionState,
        pc.signalingState,
        ...(e.type === 'icecandidate' ? [e.candidate] : []),
      ]),
    );
  }
  const viaProperty = [];
  pc.oniceconnectionstatechange = function (e) {
    assert.equal(this, pc);
    viaProperty.push(pc.iceConnectionState);
  };
  assert.equal(typeof pc.oniceconnectionstatechange, 'function');
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });

  proxy.send('state', { session: SID, iceConnectionState: 'connected', signalingState: 'stable' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
  assert.deepEqual(log, [
    ['icegatheringstatechange', 'complete', 'connected', 'connected', 'stable'],
    ['icecandidate', 'complete', 'connected', 'connected', 'stable', null],
    ['iceconnectionstatechange', 'complete', 'connected', 'connected', 'stable'],
    ['connectionstatechange', 'complete', 'connected', 'connected', 'stable'],
  ]);
  log.length = 0;

  // Repeated state: nothing fires.
  proxy.send('state', { session: SID, iceConnectionState: 'connected', signalingState: 'stable' });
  // An explicit connectionState wins over the one derived from ICE.
  proxy.send('state', { session: SID, iceConnectionState: 'disconnected', connectionState: 'connecting', signalingState: 'stable' });
  await waitFor(() => pc.iceConnectionState === 'disconnected', { what: 'disconnected' });
  assert.deepEqual(log, [
    ['iceconnectionstatechange', 'complete', 'disconnected', 'connecting', 'stable'],
    ['connectionstatechange', 'complete', 'disconnected', 'connecting', 'stable'],
  ]);
  log.length = 0;

  pc.oniceconnectionstatechange = null;
  assert.equal(pc.oniceconnectionstatechange, null);
  proxy.send('state', { session: SID, iceConnectionState: 'closed', signalingState: 'closed' });
  await waitFor(() => pc.signalingState === 'closed', { what: 'closed' });
  assert.deepEqual(log, [
    ['iceconnectionstatechange', 'complete', 'closed', 'closed', 'closed'],
    ['connectionstatechange', 'complete', 'closed', 'closed', 'closed'],
    ['signalingstatechange', 'complete', 'closed', 'closed', 'closed'],
  ]);
  assert.deepEqual(viaProperty, ['connected', 'disconnected']);

  // Events sent along with the end (within closeGraceMs) still arrive.
  const errors = [];
  pc.onproxyerror = (e) => errors.push(e.reason);
  proxy.send('error', { session: SID, reason: 'idle', message: 'idle for 30 s', timestamp: 1 });
  await waitFor(() => errors.length === 1, { what: 'error after closed' });
  // A closed session is terminal: the shim stops listening and does not reconnect.
  await waitFor(() => proxy.streams.size === 0 && !pc.streamConnected, { what: 'stream closed' });
  const n = proxy.streamRequests().length;
  await sleep(150);
  assert.equal(proxy.streamRequests().length, n);
});

test('stats events feed getStats(); getStats(track) resolves; legacy callback forms answer', T, async (t) => {
  const { proxy, pc } = await setup(t);
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  const report = sampleReport(SID, { timestamp: 1_700_000_000_123 });
  proxy.send('stats', { session: SID, report });
  await waitFor(() => pc.reportTimestamp !== null, { what: 'report' });
  assert.equal(pc.reportTimestamp, 1_700_000_000_123);

  const r = await pc.getStats();
  assert.ok(r instanceof ProxyStatsReport);
  assert.equal(r.size, 4);
  const inbound = [...r.values()].find((s) => s.type === 'inbound-rtp');
  assert.deepEqual(inbound, report[2]);
  const rir = r.get('RIA-client-1234');
  assert.equal(rir.fractionLost, 0.1);
  assert.equal(rir.roundTripTime, 0.02);
  assert.equal(rir['x-leg'], 'upstream');

  const track = { id: 'track-1', kind: 'audio', readyState: 'live' };
  const r2 = await pc.getStats(track);
  assert.equal(r2.size, 4);

  // Chrome legacy: getStats(callback) → { result: () => [] }
  const legacy = await new Promise((resolve) => pc.getStats(resolve));
  assert.equal(typeof legacy.result, 'function');
  assert.deepEqual(legacy.result(), []);
  // Old Firefox/Temasys form: success callback with the standard report.
  const r3 = await new Promise((resolve, reject) => pc.getStats(null, resolve, reject));
  assert.equal(r3.size, 4);

  // Spec values pass through unchanged: negative packetsLost (duplicates) stays negative.
  proxy.send('stats', { session: SID, report: sampleReport(SID, { packetsLost: -3, timestamp: 1_700_000_000_323 }) });
  await waitFor(() => pc.reportTimestamp === 1_700_000_000_323, { what: 'second report' });
  assert.equal((await pc.getStats()).get('IT-client-1234').packetsLost, -3);
  // Reports are replaced, not merged.
  proxy.send('stats', { session: SID, report: [report[0]] });
  await waitFor(async () => (await pc.getStats()).size === 1, { what: 'third report' });
});

test('session filtering: ?session= is requested and other sessions are ignored', T, async (t) => {
  const { proxy, pc } = await setup(t);
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  const [req] = proxy.streamRequests();
  assert.equal(new URLSearchParams(req.query).get('session'), SID);
  assert.equal(req.headers.accept, 'text/event-stream');
  const fired = [];
  pc.addEventListener('iceconnectionstatechange', () => fired.push(pc.iceConnectionState));
  pc.addEventListener('proxyerror', (e) => fired.push(e.reason));
  // This fake server ignores ?session=, like an older proxy would.
  proxy.send('state', { session: OTHER, iceConnectionState: 'connected', signalingState: 'stable' });
  proxy.send('stats', { session: OTHER, report: sampleReport(OTHER) });
  proxy.send('error', { session: OTHER, reason: 'idle', message: 'x', timestamp: 1 });
  proxy.send('description', { session: OTHER, localDescription: { type: 'offer', sdp: 'v=0' }, remoteDescription: null });
  proxy.send('state', { session: OTHER, iceConnectionState: 'closed', signalingState: 'closed' });
  proxy.send('stats', { session: SID, report: sampleReport(SID, { ssrc: 42 }) });
  await waitFor(() => pc.reportTimestamp !== null, { what: 'own report' });
  assert.deepEqual(fired, []);
  assert.equal(pc.iceConnectionState, 'new');
  assert.equal(pc.localDescription, null);
  assert.ok((await pc.getStats()).has('IT-client-42'));
  assert.equal(pc.streamConnected, true);
  // Garbage and unknown events are ignored too.
  proxy.send('stats', null, { raw: 'event: stats\ndata: {not json\n\n' });
  proxy.send('bogus', { session: SID });
  proxy.send('state', { session: SID, iceConnectionState: 'connected' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'own state' });
  assert.deepEqual(fired, ['connected']);
});

test('proxy error events surface as proxyerror with the callstats fnName', T, async (t) => {
  const { proxy, pc } = await setup(t);
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  const events = [];
  pc.addEventListener('proxyerror', (e) => events.push(e));
  const viaProperty = [];
  pc.onproxyerror = (e) => viaProperty.push(e.reason);
  const reasons = ['consent-lost', 'upstream-unreachable', 'srtcp-auth-failure', 'idle'];
  reasons.forEach((reason, i) =>
    proxy.send('error', { session: SID, reason, message: `m-${reason}`, timestamp: 1_700_000_000_000 + i }),
  );
  await waitFor(() => events.length === 4, { what: 'four errors' });
  assert.deepEqual(
    events.map((e) => [e.type, e.reason, e.message, e.timestamp, e.callstatsFunction, e.session]),
    [
      ['proxyerror', 'consent-lost', 'm-consent-lost', 1_700_000_000_000, 'iceConnectionFailure', SID],
      ['proxyerror', 'upstream-unreachable', 'm-upstream-unreachable', 1_700_000_000_001, 'iceConnectionFailure', SID],
      ['proxyerror', 'srtcp-auth-failure', 'm-srtcp-auth-failure', 1_700_000_000_002, 'applicationLog', SID],
      ['proxyerror', 'idle', 'm-idle', 1_700_000_000_003, 'applicationLog', SID],
    ],
  );
  assert.ok(events[0].error instanceof Error);
  assert.equal(events[0].error.message, 'm-consent-lost');
  assert.equal(events[0].error.name, 'ProxyError(consent-lost)');
  assert.deepEqual(viaProperty, reasons);
  assert.deepEqual(pc.lastProxyError, {
    reason: 'idle',
    message: 'm-idle',
    timestamp: 1_700_000_000_003,
    callstatsFunction: 'applicationLog',
  });
  // An error does not change the connection state by itself.
  assert.equal(pc.iceConnectionState, 'new');
});

test('description events set localDescription/remoteDescription', T, async (t) => {
  const { proxy, pc } = await setup(t);
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  const offer = { type: 'offer', sdp: 'v=0\r\na=ssrc:1234 cname:x\r\n' };
  const answer = { type: 'answer', sdp: 'v=0\r\n' };
  proxy.send('description', { session: SID, localDescription: offer, remoteDescription: answer });
  await waitFor(() => pc.remoteDescription !== null, { what: 'descriptions' });
  assert.equal(pc.localDescription.type, 'offer');
  assert.equal(pc.localDescription.sdp, offer.sdp);
  assert.deepEqual(JSON.parse(JSON.stringify(pc.remoteDescription)), answer);
  assert.equal(pc.currentLocalDescription, pc.localDescription);
  proxy.send('description', { session: SID, localDescription: null, remoteDescription: answer });
  await waitFor(() => pc.localDescription === null, { what: 'cleared local' });
  assert.equal(pc.remoteDescription.type, 'answer');
});

test('reconnects with exponential backoff after drops; backoff resets once events flow', T, async (t) => {
  let connections = 0;
  const proxy = await new FakeProxy({
    onStream: (stream) => {
      connections += 1;
      // The first five connections are dropped at once (no event): backoff grows.
      if (connections <= 5) setImmediate(() => stream.res.destroy());
    },
  }).start();
  const errors = [];
  const pc = new ProxyPeerConnection({
    streamUrl: proxy.streamUrl,
    sessionId: SID,
    // Delays long enough that a loaded machine's scheduling (tens of ms)
    // cannot reorder them.
    reconnect: { initialMs: 100, maxMs: 400, jitter: 0.5 },
    random: () => 0, // no jitter taken off: delays are exactly the exponential ones
    resync: false,
  });
  pc.addEventListener('streamerror', (e) => errors.push(e));
  t.after(async () => {
    pc.close();
    await proxy.stop();
  });
  // The server counts a connection when the request arrives, the shim when
  // the response headers do: wait for both.
  await waitFor(() => connections === 6 && proxy.streams.size === 1 && pc.streamConnects === 6, { timeoutMs: 5000, what: 'sixth connection' });
  const at = proxy.streamRequests().map((r) => r.at);
  const gaps = at.slice(1).map((x, i) => x - at[i]);
  // Expected 100, 200, 400, 400, 400 (capped); allow scheduling slack.
  const expected = [100, 200, 400, 400, 400];
  gaps.forEach((g, i) => assert.ok(g >= expected[i] - 5 && g < expected[i] + 120, `gap ${i}: ${g} (expected ~${expected[i]})`));
  assert.ok(gaps[1] > gaps[0] && gaps[2] > gaps[1], `gaps grow: ${gaps}`);
  assert.ok(errors.length >= 5);
  assert.equal(pc.streamConnects, 6);

  // Events flow on the sixth connection: the backoff resets, so the next drop reconnects after initialMs.
  proxy.send('state', { session: SID, iceConnectionState: 'connected' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
  const before = Date.now();
  proxy.dropAll();
  await waitFor(() => connections === 7, { what: 'seventh connection' });
  const gap = proxy.streamRequests()[6].at - before;
  // initialMs again (100), not maxMs (400).
  assert.ok(gap < 100 + 150, `reconnect after reset took ${gap} ms`);
  // State is kept across reconnects, and events keep working.
  assert.equal(pc.iceConnectionState, 'connected');
  proxy.send('state', { session: SID, iceConnectionState: 'disconnected' });
  await waitFor(() => pc.iceConnectionState === 'disconnected', { what: 'disconnected after reconnect' });
});

test('reconnects when the proxy is down at first, and after it comes back', T, async (t) => {
  // Reserve a port, then close it: the first connects are refused.
  const probe = await new FakeProxy().start();
  const port = new URL(probe.base).port;
  await probe.stop();
  const errors = [];
  const pc = new ProxyPeerConnection({
    streamUrl: `http://127.0.0.1:${port}/v1/stream`,
    sessionId: SID,
    reconnect: { initialMs: 20, maxMs: 100 },
  });
  pc.addEventListener('streamerror', (e) => errors.push(e.message));
  let proxy;
  t.after(async () => {
    pc.close();
    await proxy?.stop();
  });
  await waitFor(() => errors.length >= 2, { what: 'refused connects' });
  proxy = new FakeProxy();
  await new Promise((resolve, reject) => {
    proxy.server.once('error', reject);
    proxy.server.listen(Number(port), '127.0.0.1', resolve);
  });
  proxy.base = `http://127.0.0.1:${port}`;
  proxy.streamUrl = `${proxy.base}/v1/stream`;
  await waitFor(() => proxy.streams.size === 1, { what: 'stream after restart' });
  proxy.send('state', { session: SID, iceConnectionState: 'connected' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
});

test('bearer token is sent on the stream and sessions requests; a wrong one gets 401 and retries', T, async (t) => {
  const proxy = await new FakeProxy({ token: 's3cret', sessions: [{ id: SID, state: 'active' }] }).start();
  const good = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: SID, token: 's3cret', reconnect: { initialMs: 20, maxMs: 50 } });
  const bad = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: SID, token: 'nope', reconnect: { initialMs: 20, maxMs: 50 } });
  const badErrors = [];
  bad.addEventListener('streamerror', (e) => badErrors.push(e));
  t.after(async () => {
    good.close();
    bad.close();
    await proxy.stop();
  });
  await waitFor(() => good.streamConnected && badErrors.length >= 2, { what: 'good connected, bad refused twice' });
  assert.equal(badErrors[0].status, 401);
  assert.match(badErrors[0].message, /401/);
  assert.equal(bad.streamConnected, false);
  const authorized = proxy.requests.filter((r) => r.headers.authorization === 'Bearer s3cret');
  assert.ok(authorized.some((r) => r.path === '/v1/stream'));
  await waitFor(() => proxy.requests.some((r) => r.path === '/v1/sessions' && r.headers.authorization === 'Bearer s3cret'), {
    what: 'sessions request with token',
  });
  // The resync read the session as active.
  await waitFor(() => good.iceConnectionState === 'connected', { what: 'resynced state' });
  assert.equal(bad.iceConnectionState, 'new');
});

test('resync after reconnect: a session that vanished during the gap closes', T, async (t) => {
  const { proxy, pc } = await setup(t, { sessions: [{ id: SID, state: 'active' }] });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'resynced connected' });
  const log = [];
  pc.addEventListener('iceconnectionstatechange', () => log.push(pc.iceConnectionState));
  proxy.sessions = [{ id: SID, state: 'quiet' }];
  proxy.dropAll();
  await waitFor(() => pc.iceConnectionState === 'disconnected', { what: 'resynced disconnected' });
  proxy.sessions = [];
  proxy.dropAll();
  await waitFor(() => pc.iceConnectionState === 'closed', { what: 'resynced closed' });
  assert.deepEqual(log, ['disconnected', 'closed']);
  assert.equal(pc.signalingState, 'closed');
});

test('a state event that arrives before the resync answer wins', T, async (t) => {
  let release;
  const gate = new Promise((r) => (release = r));
  const slowFetch = async (url, init) => {
    if (String(url).includes('/v1/sessions')) await gate;
    return fetch(url, init);
  };
  const { proxy, pc } = await setup(t, { sessions: [{ id: SID, state: 'quiet' }] }, { fetch: slowFetch });
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  proxy.send('state', { session: SID, iceConnectionState: 'connected' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
  release();
  await sleep(100);
  assert.equal(pc.iceConnectionState, 'connected');
});

test('close() stops the stream and sets closed states without firing events', T, async (t) => {
  const { proxy, pc } = await setup(t);
  await waitFor(() => proxy.streams.size === 1, { what: 'stream' });
  proxy.send('state', { session: SID, iceConnectionState: 'connected' });
  await waitFor(() => pc.iceConnectionState === 'connected', { what: 'connected' });
  const fired = [];
  for (const type of ['iceconnectionstatechange', 'connectionstatechange', 'signalingstatechange']) {
    pc.addEventListener(type, () => fired.push(type));
  }
  pc.close();
  pc.close();
  assert.equal(pc.iceConnectionState, 'closed');
  assert.equal(pc.connectionState, 'closed');
  assert.equal(pc.signalingState, 'closed');
  await waitFor(() => proxy.streams.size === 0, { what: 'stream released' });
  const n = proxy.streamRequests().length;
  await sleep(100);
  assert.equal(proxy.streamRequests().length, n);
  assert.deepEqual(fired, []);
});

test('fetch is called unbound (a browser fetch rejects other receivers)', T, async (t) => {
  const receivers = [];
  const strictFetch = function (url, init) {
    receivers.push(this);
    if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
    return fetch(url, init);
  };
  const { proxy, pc } = await setup(t, { sessions: [{ id: SID, state: 'active' }] }, { fetch: strictFetch });
  await waitFor(() => pc.iceConnectionState === 'connected' && proxy.streams.size === 1, { what: 'stream and resync' });
  assert.ok(receivers.length >= 2);
});

test('getStats() order: inbound-rtp after the remote-inbound-rtp of the same SSRC (callstats keys monitors by SSRC)', T, async (t) => {
  const report = sampleReport(SID, { ssrc: 7 }).concat(sampleReport(SID, { ssrc: 8 }).slice(2, 3));
  // Proxy order: ..., IT-7, RIA-7, IT-8 (8 has no remote-inbound-rtp).
  assert.deepEqual(report.map((s) => s.id), ['T-client', 'C-client-0', 'IT-client-7', 'RIA-client-7', 'IT-client-8']);
  assert.deepEqual(sdkOrder(report).map((s) => s.id), ['T-client', 'C-client-0', 'RIA-client-7', 'IT-client-8', 'IT-client-7']);
  const { proxy, pc } = await setup(t);
  const kept = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: SID, preserveOrder: true, resync: false });
  t.after(() => kept.close());
  await waitFor(() => proxy.streams.size === 2, { what: 'streams' });
  proxy.send('stats', { session: SID, report });
  await waitFor(() => pc.reportTimestamp !== null && kept.reportTimestamp !== null, { what: 'reports' });
  assert.deepEqual([...(await pc.getStats()).keys()], sdkOrder(report).map((s) => s.id));
  assert.deepEqual([...(await kept.getStats()).keys()], report.map((s) => s.id));
  // Values are untouched either way.
  assert.deepEqual((await pc.getStats()).get('IT-client-7'), report[2]);
});
