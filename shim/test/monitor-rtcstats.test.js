// @jitsi/rtcstats (its RTCPeerConnection wrapper and the trace-ws channel)
// monitoring the shim on a live proxy session. The trace goes to a local
// WebSocket server standing in for rtcstats-server: it answers the protocol's
// opening sequence-number message and records every entry; the test rebuilds
// the getstats reports from rtcstats' delta compression as rtcstats-server
// does and compares them with the proxy's own figures for the SSRC.
//
// Browser globals it needs:
// - `window` (window.setInterval for its polling, window.RTCPeerConnection to
//   wrap): the global object;
// - `navigator.userAgent`: its BrowserDetection must see a supported browser
//   (Chromium, Firefox, WebKit, React Native) or it does nothing at all; a
//   Chrome string selects the spec getStats() path (useLegacy: false);
// - `window.RTCPeerConnection`: the shim's class, which rtcstats replaces with
//   its wrapper; the page then constructs the shim through the wrapper;
// - `WebSocket` with the (url, protocol, { headers }) constructor of the `ws`
//   package (trace-ws passes a User-Agent header that way; a browser ignores
//   the third argument).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer, WebSocket } from 'ws';
import { ProxyPeerConnection } from '../index.js';
import { waitFor } from './helpers/fake-proxy.js';
import { skipWithoutBinary } from './helpers/live.js';
import { registerBundlerResolve } from './helpers/bundler-resolve.js';
import { startLiveCall, settledProxyFigures, assertMonitorShows, pick, INBOUND_FIELDS, REMOTE_INBOUND_FIELDS } from './helpers/monitor-live.js';

const skip = skipWithoutBinary();
// rtcstats and @jitsi/js-utils are ES modules with extensionless imports and
// no "type": "module" (jitsi-meet bundles them).
registerBundlerResolve();

const CHROME_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const TOKEN = 'monitor-test-token';

/** rtcstats-server's side of the trace protocol, just enough to receive. */
async function startTraceServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const connections = [];
  const messages = [];
  const raw = [];
  wss.on('connection', (ws, req) => {
    connections.push({ url: req.url, protocol: ws.protocol, userAgent: req.headers['user-agent'] });
    // The server tells the client which entry it has last (none yet);
    // 'initial' lets the client send, starting with what it buffered.
    ws.send(JSON.stringify({ type: 'sn', body: { value: 0, state: 'initial' } }));
    ws.on('message', (buf) => {
      const text = buf.toString();
      raw.push(text);
      const msg = JSON.parse(text);
      // Entries other than identity carry their [name, pcId, value, time, seq] as JSON text.
      if (typeof msg.data === 'string') msg.data = JSON.parse(msg.data);
      messages.push(msg);
    });
  });
  return {
    url: `ws://127.0.0.1:${wss.address().port}`,
    connections,
    messages,
    raw,
    entries: (name, pcId) => messages.filter((m) => m.type === 'stats-entry' && m.data[0] === name && (pcId === undefined || m.data[1] === pcId)),
    close: () =>
      new Promise((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(r);
      }),
  };
}

/**
 * The full reports behind rtcstats' getstats entries (deltaCompression: a
 * member equal to the previous report's is left out, `id` always; a stats
 * object missing from an entry is gone; timestamp 0 means the entry's).
 */
function undelta(entries) {
  let state = {};
  const reports = [];
  for (const e of entries) {
    const delta = e.data[2];
    const next = {};
    for (const [id, members] of Object.entries(delta)) {
      if (id === 'timestamp') continue;
      next[id] = { ...(state[id] || {}), ...members, id };
      if (members.timestamp === 0) next[id].timestamp = delta.timestamp;
    }
    state = next;
    reports.push(state);
  }
  return reports;
}

test('@jitsi/rtcstats on a live proxy session: trace getstats = proxy figures; pc events traced', { timeout: 30000, skip }, async (t) => {
  globalThis.window = globalThis;
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: CHROME_UA }, configurable: true, writable: true });
  globalThis.WebSocket = WebSocket;
  // The proxy needs a bearer token; the page's own subclass adds it, so the
  // configuration rtcstats serializes into its `create` entry does not carry it.
  globalThis.RTCPeerConnection = class RTCPeerConnection extends ProxyPeerConnection {
    constructor(config) {
      super({ ...config, token: TOKEN });
    }
  };
  const { default: rtcstatsInit } = await import('@jitsi/rtcstats/rtcstats.js');
  const { default: traceInit } = await import('@jitsi/rtcstats/trace-ws.js');

  const server = await startTraceServer();
  const closes = [];
  const trace = traceInit({ endpoint: server.url, meetingFqn: 'shim-room', onCloseCallback: (c) => closes.push(c), useLegacy: false });
  trace.connect(false);
  rtcstatsInit({ statsEntry: trace.statsEntry }, { pollInterval: 300, useLegacy: false });
  assert.notEqual(window.RTCPeerConnection.name, 'RTCPeerConnection', 'rtcstats wrapped RTCPeerConnection');
  trace.identity('identity', null, { displayName: 'shim-monitor', confName: 'shim-room' });

  const call = await startLiveCall(t, { token: TOKEN });
  const pc = new window.RTCPeerConnection({ streamUrl: call.proxy.streamUrl, sessionId: call.session.id });
  t.after(async () => {
    pc.close();
    trace.close();
    await server.close();
  });
  assert.ok(pc instanceof ProxyPeerConnection);
  const pcId = pc.__rtcStatsId;
  assert.equal(pcId, 'PC_0');

  await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'connected' });
  const expected = await settledProxyFigures(call);
  const extract = () => {
    const last = undelta(server.entries('getstats', pcId)).at(-1) ?? {};
    const of = (type) => Object.values(last).find((s) => s.type === type && s.ssrc === call.ssrc);
    return { inbound: pick(of('inbound-rtp'), INBOUND_FIELDS), remoteInbound: pick(of('remote-inbound-rtp'), REMOTE_INBOUND_FIELDS) };
  };
  await assertMonitorShows(extract, expected, { what: '@jitsi/rtcstats trace' });
  // Several polls went out, later ones as deltas (not the whole report
  // again): the poll after the one that matched repeats no settled figure.
  const matched = server.entries('getstats', pcId).length;
  await waitFor(() => server.entries('getstats', pcId).length > matched, { timeoutMs: 2000, what: 'one more poll' });
  const polls = server.entries('getstats', pcId);
  assert.ok(polls.length >= 3, `${polls.length} getstats entries`);
  const inboundId = Object.values(undelta(polls).at(-1)).find((s) => s.type === 'inbound-rtp' && s.ssrc === call.ssrc).id;
  const lastDelta = polls.at(-1).data[2][inboundId];
  assert.ok(lastDelta, 'the stream is still in the last entry');
  assert.equal(lastDelta.packetsLost, undefined, 'an unchanged packetsLost is left out of a delta');
  assert.equal(lastDelta.type, undefined);

  // The trace channel: protocol and path of rtcstats-server, the page's user agent.
  assert.equal(server.connections.length, 1);
  assert.equal(server.connections[0].protocol, '3.1_STANDARD');
  assert.match(server.connections[0].url, /^\/shim-room\?statsSessionId=[0-9a-f-]{36}&isReconnect=false$/);
  assert.equal(server.connections[0].userAgent, CHROME_UA);
  assert.ok(server.messages.some((m) => m.type === 'identity' && m.data[2].confName === 'shim-room'));
  // The pc's life as rtcstats traces it: created with the shim's options
  // (not the token), then the states the shim mirrors from the proxy.
  const [create] = server.entries('create', pcId);
  assert.equal(create.data[2].sessionId, call.session.id);
  assert.equal(create.data[2].streamUrl, call.proxy.streamUrl);
  assert.equal(create.data[2].browserType, 'webkit');
  assert.ok(!server.raw.some((text) => text.includes(TOKEN)), 'the token never reaches the trace');
  assert.deepEqual(
    server.entries('oniceconnectionstatechange', pcId).map((m) => m.data[2]),
    ['connected'],
  );
  assert.deepEqual(server.entries('onconnectionstatechange', pcId).map((m) => m.data[2]), ['connected']);
  assert.deepEqual(server.entries('onicegatheringstatechange', pcId).map((m) => m.data[2]), ['complete']);

  // close() is traced, and polling stops.
  pc.close();
  await waitFor(() => server.entries('close', pcId).length === 1, { timeoutMs: 2000, what: 'close entry' });
  const n = server.entries('getstats', pcId).length;
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(server.entries('getstats', pcId).length, n);
});
