// Consent loss on a live proxy session, end to end: the upstream stops
// answering the client's STUN consent checks (RFC 7675); the proxy's stream
// emits `error` reason "consent-lost"; the shim surfaces it as a `proxyerror`
// mapped to callstats' iceConnectionFailure; the integration calls
// callstats.reportError, and callstats sends its iceFailed event (captured
// from its stubbed transport). The proxy runs with consent_timeout_secs = 2
// so the test does not wait RFC 7675's 30 s.
// (One callstats instance per process: callstats keeps module-level state.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { ProxyPeerConnection } from '../index.js';
import { waitFor } from './helpers/fake-proxy.js';
import { loadCallstats, initialize, quietConsole } from './helpers/callstats-env.js';
import { skipWithoutBinary, startProxy, startSender, waitForSession } from './helpers/live.js';

const skip = skipWithoutBinary();
const CONFERENCE = 'shim-consent-conference';
const COOKIE = 0x2112a442;

/** A binding request shaped like a browser's consent check: USERNAME,
 * ICE-CONTROLLING, PRIORITY, then MESSAGE-INTEGRITY and FINGERPRINT (their
 * values are not checked by the proxy, which only forwards and times). */
function bindingRequest(txid) {
  const attr = (type, value) => {
    const pad = (4 - (value.length % 4)) % 4;
    const b = Buffer.alloc(4 + value.length + pad);
    b.writeUInt16BE(type, 0);
    b.writeUInt16BE(value.length, 2);
    value.copy(b, 4);
    return b;
  };
  const attrs = Buffer.concat([
    attr(0x0006, Buffer.from('remoteufrag:localufrag')),
    attr(0x802a, Buffer.alloc(8, 7)),
    attr(0x0024, Buffer.from([0x6e, 0x7f, 0x1e, 0xff])),
    attr(0x0008, Buffer.alloc(20, 0xaa)),
    attr(0x8028, Buffer.alloc(4, 0xbb)),
  ]);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(0x0001, 0);
  h.writeUInt16BE(attrs.length, 2);
  h.writeUInt32BE(COOKIE, 4);
  txid.copy(h, 8);
  return Buffer.concat([h, attrs]);
}

/** An upstream that answers binding requests while `answering`. */
async function stunUpstream() {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const state = { answering: true, answered: 0, sock, port: sock.address().port };
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001 || !state.answering) return;
    const resp = Buffer.alloc(20);
    resp.writeUInt16BE(0x0101, 0);
    resp.writeUInt32BE(COOKIE, 4);
    msg.copy(resp, 8, 8, 20);
    sock.send(resp, rinfo.port, rinfo.address);
    state.answered += 1;
  });
  return state;
}

test('live: upstream stops answering consent checks → error → shim → callstats iceFailed', { timeout: 60000, skip }, async (t) => {
  const restoreConsole = quietConsole();
  t.after(() => restoreConsole());
  const { callstats, backend } = loadCallstats({ submissionInterval: 5000 });
  await initialize(callstats, {
    configParams: { disablePrecalltest: true, collectIP: false, collectHeadsetStats: false },
  });

  const upstream = await stunUpstream();
  const proxy = await startProxy({ upstreamPort: upstream.port, streamIntervalMs: 200, idleTimeoutSecs: 10, consentTimeoutSecs: 2 });
  let sender;
  let pc;
  let checks;
  t.after(async () => {
    clearInterval(checks);
    pc?.close();
    sender?.close();
    upstream.sock.close();
    await proxy.stop();
  });
  sender = await startSender({ port: proxy.relayPort, slots: 1200, srAtMs: [500, 1500, 2500, 3500, 4500] });
  let n = 0;
  checks = setInterval(() => {
    const txid = Buffer.alloc(12);
    txid.writeUInt32BE(++n, 8);
    sender.send(bindingRequest(txid));
  }, 500);
  const session = await waitForSession(proxy.apiBase);
  pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: session.id });
  const errors = [];
  // The integration README.md shows: the shim's error hook calls reportError.
  pc.addEventListener('proxyerror', (e) => {
    errors.push(e.reason);
    callstats.reportError(pc, CONFERENCE, e.callstatsFunction, e.error);
  });
  assert.equal(callstats.addNewFabric(pc, 'sfu', callstats.fabricUsage.multiplex, CONFERENCE, () => {}).status, 'success');
  await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 5000, what: 'connected' });
  await waitFor(() => backend.find('/events/fabric/setup').some((r) => r.body.remoteID === 'sfu'), {
    timeoutMs: 15000,
    what: 'fabricSetup',
  });
  assert.ok(upstream.answered > 0, 'the upstream answered consent checks at first');

  // The SFU stops answering; media keeps flowing.
  upstream.answering = false;
  await waitFor(() => errors.includes('consent-lost'), { timeoutMs: 10000, what: 'consent-lost error' });
  assert.equal(pc.iceConnectionState, 'failed');
  await waitFor(() => backend.find('/events/ice/status').some((r) => r.body.eventType === 'iceFailed'), {
    timeoutMs: 10000,
    what: "callstats' iceFailed request",
  });
  const iceFailed = backend.find('/events/ice/status').find((r) => r.body.eventType === 'iceFailed');
  assert.equal(iceFailed.body.currIceConnectionState, 'failed');
  assert.equal(iceFailed.body.remoteID, 'sfu');
});
