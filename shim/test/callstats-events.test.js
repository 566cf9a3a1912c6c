// callstats-js driven by the shim on a fake proxy stream (events the current
// proxy binary does not emit yet): proxy `error` events reach callstats'
// reportError through the shim's hook and come out as the matching callstats
// events; `description` events feed its SDP collection; and a pc that does not
// answer the legacy getStats(callback) stalls callstats' default stats path.
// (One callstats instance per process: callstats keeps module-level state.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyPeerConnection } from '../index.js';
import { FakeProxy, waitFor, sampleReport } from './helpers/fake-proxy.js';
import { loadCallstats, initialize, quietConsole } from './helpers/callstats-env.js';

const SID = '0-00000001000000009f3a0c11d2e45b67';
const STALL_SID = '0-0000000200000000c4d1e8f02a7b3965';
const CONFERENCE = 'shim-events-conference';

/** A pc that, like a shim without the legacy answer, never calls getStats(callback) back. */
class NoLegacyAnswerPc extends ProxyPeerConnection {
  getStats(...args) {
    if (typeof args[0] === 'function') return new Promise(() => {});
    return super.getStats(...args);
  }
}

test('callstats-js: proxy errors → reportError → callstats events; SDP; legacy path', { timeout: 60000 }, async (t) => {
  const restoreConsole = quietConsole();
  t.after(() => restoreConsole());
  const { callstats, backend } = loadCallstats({ submissionInterval: 5000, collectSDP: true });
  const callbacks = [];
  await initialize(callstats, {
    configParams: { disablePrecalltest: true, collectIP: false, collectHeadsetStats: false },
    onStats: (s) => callbacks.push(JSON.parse(JSON.stringify(s))),
  });

  const proxy = await new FakeProxy().start();
  const pc = new ProxyPeerConnection({ streamUrl: proxy.streamUrl, sessionId: SID, resync: false });
  const stalled = new NoLegacyAnswerPc({ streamUrl: proxy.streamUrl, sessionId: STALL_SID, resync: false });
  let timer;
  t.after(async () => {
    clearInterval(timer);
    pc.close();
    stalled.close();
    await proxy.stop();
  });

  // The integration under test (as in README.md): the shim's error hook calls reportError.
  const reported = [];
  pc.onproxyerror = (e) => {
    reported.push(e.reason);
    callstats.reportError(pc, CONFERENCE, e.callstatsFunction, e.error);
  };
  assert.equal(callstats.addNewFabric(pc, 'sfu', callstats.fabricUsage.multiplex, CONFERENCE, () => {}).status, 'success');
  assert.equal(callstats.addNewFabric(stalled, 'sfu-2', callstats.fabricUsage.multiplex, CONFERENCE, () => {}).status, 'success');

  await waitFor(() => proxy.streams.size === 2, { what: 'two streams' });
  for (const session of [SID, STALL_SID]) proxy.send('state', { session, iceConnectionState: 'connected', signalingState: 'stable' });
  // Reports every 200 ms, 10% loss, like the proxy's.
  let received = 0;
  let lost = 0;
  timer = setInterval(() => {
    received += 9;
    lost += 1;
    proxy.send('stats', { session: SID, report: sampleReport(SID, { ssrc: 1111, packetsReceived: received, packetsLost: lost }) });
    proxy.send('stats', { session: STALL_SID, report: sampleReport(STALL_SID, { ssrc: 2222, packetsReceived: received, packetsLost: lost }) });
  }, 200);
  await waitFor(() => backend.find('/events/fabric/setup').some((r) => r.body.remoteID === 'sfu'), { timeoutMs: 5000, what: 'fabricSetup' });

  // description → localDescription/remoteDescription → callstats' SDP and SSRC-map events.
  const offerSdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=ssrc:1111 cname:client-cname\r\na=ssrc:1111 msid:stream track\r\n';
  const answerSdp = 'v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';
  proxy.send('description', { session: SID, localDescription: { type: 'offer', sdp: offerSdp }, remoteDescription: { type: 'answer', sdp: answerSdp } });
  await waitFor(() => pc.remoteDescription !== null, { what: 'descriptions on the pc' });

  // error "idle" → applicationLog → callstats applicationErrorLog (/events/app/logs).
  proxy.send('error', { session: SID, reason: 'idle', message: 'session idle for 30 s', timestamp: Date.now() });
  await waitFor(() => backend.find('/events/app/logs').length >= 1, { what: 'applicationErrorLog request' });
  const appLog = backend.find('/events/app/logs')[0];
  assert.equal(appLog.method, 'POST');
  assert.match(appLog.url, new RegExp(`/conferences/${CONFERENCE}/ucid-\\d+/events/app/logs$`));
  assert.equal(appLog.body.eventType, 'applicationErrorLog');
  assert.equal(appLog.body.remoteID, 'sfu');
  assert.match(JSON.stringify(appLog.body), /session idle for 30 s/);
  assert.match(JSON.stringify(appLog.body), /ProxyError\(idle\)/);

  // error "consent-lost" → iceConnectionFailure → (fabric already set up) callstats iceFailed (/events/ice/status).
  proxy.send('error', { session: SID, reason: 'consent-lost', message: 'no STUN consent for 30 s', timestamp: Date.now() });
  await waitFor(() => backend.find('/events/ice/status').some((r) => r.body.eventType === 'iceFailed'), { what: 'iceFailed request' });
  const iceFailed = backend.find('/events/ice/status').find((r) => r.body.eventType === 'iceFailed');
  assert.equal(iceFailed.body.currIceConnectionState, 'failed');
  assert.equal(iceFailed.body.remoteID, 'sfu');
  assert.deepEqual(reported, ['idle', 'consent-lost']);

  // Stats: the answering pc's SSRC reaches the stats callback; the stalled one's never does.
  await waitFor(() => callbacks.some((c) => c.streams['1111']) && backend.find('/events/sdp').length >= 1, {
    timeoutMs: 12000,
    what: 'a stats callback with SSRC 1111 and the SDP submission',
  });
  // callstats' default path waits for the legacy getStats(callback) after every
  // getStats() — even the one for ICE candidates before fabricSetup.
  assert.ok(callbacks.every((c) => !c.streams['2222']), 'a pc that never answers the legacy getStats(callback) stalls callstats');
  assert.ok(!backend.find('/events/fabric/setup').some((r) => r.body.remoteID === 'sfu-2'), 'no fabricSetup for the stalled pc');
  assert.ok(backend.find('/events/fabric/statechange').some((r) => r.body.remoteID === 'sfu-2'), 'but its state changes were seen');
  const cb = callbacks.find((c) => c.streams['1111']);
  assert.equal(cb.streams['1111'].jitter, 0.004);

  const sdp = backend.find('/events/sdp')[0].body;
  assert.equal(sdp.localSDP, offerSdp);
  assert.equal(sdp.remoteSDP, answerSdp);
  // The SSRC map parsed from the SDP (a=ssrc lines) follows.
  await waitFor(() => backend.find('/events/ssrcmap').length >= 1, { what: 'ssrcMap event' });
});
