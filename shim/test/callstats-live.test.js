// callstats-js driven by the shim on a live proxy session: its stats callback
// must carry, per SSRC, the loss and jitter the proxy measured, on the default
// collectLegacyStats path, and its fabric must follow the session's states.
// (One callstats instance per process: callstats keeps module-level state.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyPeerConnection } from '../index.js';
import { waitFor } from './helpers/fake-proxy.js';
import { loadCallstats, initialize, quietConsole } from './helpers/callstats-env.js';
import { skipWithoutBinary, startProxy, startUpstream, startSender, waitForSession, getJson } from './helpers/live.js';

const skip = skipWithoutBinary();
const CONFERENCE = 'shim-live-conference';

/** A shim that remembers what callstats was given. */
class RecordingPc extends ProxyPeerConnection {
  served = [];
  legacyCalls = 0;
  getStats(...args) {
    if (typeof args[0] === 'function') this.legacyCalls += 1;
    const p = super.getStats(...args);
    if (typeof args[0] !== 'function') p.then((r) => this.served.push({ at: Date.now(), report: new Map(r) }));
    return p;
  }
}

test('callstats-js on a live proxy session: stats callback = proxy figures; fabric follows the session', { timeout: 90000, skip }, async (t) => {
  const restoreConsole = quietConsole();
  t.after(() => restoreConsole());
  const { callstats, backend } = loadCallstats({ submissionInterval: 5000 });
  const callbacks = [];
  // Default config: collectLegacyStats stays true (callstats' default).
  await initialize(callstats, {
    configParams: { disablePrecalltest: true, collectIP: false, collectHeadsetStats: false },
    onStats: (s) => callbacks.push({ at: Date.now(), stats: JSON.parse(JSON.stringify(s)) }),
  });

  const upstream = await startUpstream({ holdMs: 30, claimedDelayMs: 10 });
  const proxy = await startProxy({ upstreamPort: upstream.port, streamIntervalMs: 200, idleTimeoutSecs: 3 });
  let sender;
  let pc;
  t.after(async () => {
    pc?.close();
    sender?.close();
    upstream.close();
    await proxy.stop();
  });
  // ~17 s of PCMU (callstats polls getStats every 5 s and calls back at most
  // every 5 s: two callbacks need up to three polls), 10% loss, SR every second.
  const slots = 850;
  sender = await startSender({
    port: proxy.relayPort,
    slots,
    srAtMs: Array.from({ length: 16 }, (_, k) => 500 + 1000 * k),
  });
  const session = await waitForSession(proxy.apiBase);
  pc = new RecordingPc({ streamUrl: proxy.streamUrl, sessionId: session.id });
  const fabricCallbacks = [];
  const ret = callstats.addNewFabric(pc, 'sfu', callstats.fabricUsage.multiplex, CONFERENCE, (err, msg) => fabricCallbacks.push([err, msg]));
  assert.equal(ret.status, 'success');
  pc.addEventListener('proxyerror', (e) => callstats.reportError(pc, CONFERENCE, e.callstatsFunction, e.error));

  await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'connected' });
  await waitFor(() => callbacks.length >= 2, { timeoutMs: 25000, what: 'two stats callbacks' });
  const ssrc = String(sender.ssrc);

  // Which report did callstats process for each callback? The last one served before it.
  const servedBefore = (at) => pc.served.filter((s) => s.at <= at).at(-1).report;
  const inbound = (report) => [...report.values()].find((s) => s.type === 'inbound-rtp' && String(s.ssrc) === ssrc);
  let previous = null;
  for (const [k, cb] of callbacks.entries()) {
    const stream = cb.stats.streams[ssrc];
    assert.ok(stream, `callback ${k} reports SSRC ${ssrc}: ${JSON.stringify(cb.stats)}`);
    assert.equal(stream.statsType, 'inbound-rtp');
    assert.equal(stream.mediaType, 'audio');
    assert.equal(stream.remoteUserID, 'sfu');
    assert.equal(cb.stats.fabricState, 'established');
    const now = inbound(servedBefore(cb.at));
    // jitter: the proxy's, in seconds, unconverted.
    assert.equal(stream.jitter, now.jitter);
    assert.ok(stream.jitter > 0.001 && stream.jitter < 0.02, `jitter ${stream.jitter}`);
    if (k === 0) {
      // callstats quirk: its first interval compares a sample with itself and
      // divides the cumulative loss by itself (fraction 1 whenever loss > 0).
      assert.equal(stream.fractionLoss, 1);
    } else {
      // Interval loss over the proxy's counters between the two polls.
      const dLost = now.packetsLost - previous.packetsLost;
      const dRecv = now.packetsReceived - previous.packetsReceived;
      const expected = dLost / Math.max(dLost + dRecv, 1);
      assert.ok(Math.abs(stream.fractionLoss - expected) < 1e-9, `fractionLoss ${stream.fractionLoss} vs ${expected}`);
      // ... which is the traffic's 10% (one slot in ten skipped), within a packet or two.
      assert.ok(Math.abs(stream.fractionLoss - 0.1) < 0.02, `fractionLoss ${stream.fractionLoss}`);
      // and agrees with the fraction the upstream reported through the proxy (RR, 8-bit).
      const rir = [...servedBefore(cb.at).values()].find((s) => s.type === 'remote-inbound-rtp' && String(s.ssrc) === ssrc);
      assert.ok(Math.abs(stream.fractionLoss - rir.fractionLost) < 0.02, `vs RR fractionLost ${rir.fractionLost}`);
      // RTT measured by the proxy from SR/RR (seconds) feeds callstats' average.
      assert.ok(stream.averageRTT > 0.015 && stream.averageRTT < 0.2, `averageRTT ${stream.averageRTT}`);
    }
    previous = now;
  }
  // The default legacy path ran after every poll and did not stall it.
  assert.ok(pc.legacyCalls >= callbacks.length, `legacy getStats(callback) calls: ${pc.legacyCalls}`);

  // What callstats submitted to its (stubbed) backend carries the same figures.
  const submissions = backend.find('/stats');
  assert.ok(submissions.length >= 1, 'stats submitted');
  const lastSubmitted = submissions.at(-1).body.stats.find((s) => s.type === 'inbound-rtp' && String(s.ssrc) === ssrc);
  assert.ok(pc.served.some((s) => inbound(s.report)?.jitter === lastSubmitted.jitter && inbound(s.report).packetsLost === lastSubmitted.packetsLost));

  // And the proxy itself agrees with the last report served (same snapshot or one interval newer).
  const http = await getJson(`${proxy.apiBase}/v1/sessions/${session.id}/stats`);
  const hIn = http.find((s) => s.type === 'inbound-rtp' && String(s.ssrc) === ssrc);
  assert.ok(hIn.packetsLost >= previous.packetsLost && hIn.packetsLost - previous.packetsLost <= 30);

  // Fabric follows the session: connected → (traffic stops) disconnected → closed.
  await sender.done;
  await waitFor(() => pc.iceConnectionState === 'closed', { timeoutMs: 9000, what: 'closed' });
  await waitFor(() => backend.find('/events/fabric/statechange').length >= 4, { timeoutMs: 3000, what: 'statechange events' });
  const changes = backend
    .find('/events/fabric/statechange')
    .map((r) => r.body)
    .filter((b) => b.changedState === 'iceConnectionState')
    .map((b) => `${b.prevState}->${b.newState}`);
  assert.deepEqual(changes, ['new->connected', 'connected->disconnected', 'disconnected->closed']);
  const gathering = backend
    .find('/events/fabric/statechange')
    .map((r) => r.body)
    .filter((b) => b.changedState === 'iceGatheringState')
    .map((b) => `${b.prevState}->${b.newState}`);
  assert.deepEqual(gathering, ['new->complete']);
  assert.equal(backend.find('/events/fabric/setup').length, 1, 'fabricSetup once, on connected');
  const ice = backend.find('/events/ice/status').map((r) => r.body);
  assert.ok(ice.some((b) => b.eventType === 'iceDisruptionStart' && b.prevIceConnectionState === 'connected' && b.currIceConnectionState === 'disconnected'), JSON.stringify(ice));
  // addNewFabric's callback hears about the disconnection.
  assert.ok(fabricCallbacks.some(([err]) => err === 'appConnectivityError'), JSON.stringify(fabricCallbacks));
  // Terminated: no more stats callbacks after the close.
  const n = callbacks.length;
  await new Promise((r) => setTimeout(r, 5500));
  assert.equal(callbacks.length, n);
});
