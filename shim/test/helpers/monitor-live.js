// A short live call through the real proxy for the monitor tests
// (monitor-*.test.js): a node sender (PCMU, every 10th slot skipped, 4 ms
// alternating delay, SRs) → rtp-middlebox → a node upstream answering SRs
// with RRs. Once the sender stops, the proxy's figures stop moving (only the
// timestamps advance), so what a monitor extracted can be compared with
// GET /v1/sessions/{id}/stats for equality, not within a tolerance.
import assert from 'node:assert/strict';
import { waitFor, sleep } from './fake-proxy.js';
import { startProxy, startUpstream, startSender, waitForSession, getJson } from './live.js';

/** The members each monitor test compares, per report type. */
export const INBOUND_FIELDS = ['packetsReceived', 'packetsLost', 'jitter', 'x-mosLq', 'x-rFactor', 'x-lossClientLeg', 'x-lossUpstreamLeg'];
export const REMOTE_INBOUND_FIELDS = ['packetsLost', 'fractionLost', 'jitter', 'roundTripTime'];

export function pick(stats, fields) {
  return stats ? Object.fromEntries(fields.map((f) => [f, stats[f]])) : undefined;
}

/**
 * Starts upstream, proxy and a ~3 s sender; resolves once the proxy has the
 * session. Everything is stopped by `t.after`.
 */
export async function startLiveCall(t, { slots = 150, token } = {}) {
  const upstream = await startUpstream({ holdMs: 30, claimedDelayMs: 10 });
  // Idle timeout well past the test's reading of the settled figures: the
  // session must still be there (connected) when the monitors are compared.
  const proxy = await startProxy({ upstreamPort: upstream.port, streamIntervalMs: 200, idleTimeoutSecs: 30, token });
  const sender = await startSender({ port: proxy.relayPort, slots, srAtMs: [500, 1500, 2500] });
  t.after(async () => {
    sender.close();
    upstream.close();
    await proxy.stop();
  });
  const session = await waitForSession(proxy.apiBase, { token });
  return { upstream, proxy, sender, session, ssrc: sender.ssrc, token };
}

/**
 * Waits for the sender to finish and the proxy's figures to settle; returns
 * the proxy's own figures for the sender's SSRC from GET /v1/sessions/{id}/stats:
 * { inbound, remoteInbound } restricted to INBOUND_FIELDS / REMOTE_INBOUND_FIELDS.
 */
export async function settledProxyFigures(call) {
  await call.sender.done;
  const url = `${call.proxy.apiBase}/v1/sessions/${call.session.id}/stats`;
  const read = async () => {
    const stats = await getJson(url, call.token);
    const of = (type) => stats.find((s) => s.type === type && s.ssrc === call.ssrc);
    return { inbound: pick(of('inbound-rtp'), INBOUND_FIELDS), remoteInbound: pick(of('remote-inbound-rtp'), REMOTE_INBOUND_FIELDS) };
  };
  // The last RR answers the SR at 2.5 s (30 ms later), before the last packet
  // (~3 s); the proxy streams a report every 200 ms. Two readings 400 ms apart
  // that agree are the final figures.
  let previous = await read();
  await waitFor(
    async () => {
      await sleep(400);
      const now = await read();
      const same = JSON.stringify(now) === JSON.stringify(previous);
      previous = now;
      return same;
    },
    { timeoutMs: 5000, intervalMs: 0, what: 'settled proxy figures' },
  );
  const { inbound, remoteInbound } = previous;
  // The figures are the traffic's, so a monitor that shows them shows something real.
  assert.equal(inbound.packetsLost, call.sender.expected.lost, JSON.stringify(inbound));
  assert.equal(inbound.packetsReceived, call.sender.expected.received);
  assert.ok(inbound.jitter > 0.001 && inbound.jitter < 0.02, `jitter ${inbound.jitter}`);
  assert.ok(inbound['x-mosLq'] > 1 && inbound['x-mosLq'] < 4.5, `x-mosLq ${inbound['x-mosLq']}`);
  assert.equal(inbound['x-lossClientLeg'], inbound.packetsLost, 'all the loss is on the client leg');
  assert.equal(inbound['x-lossUpstreamLeg'], 0);
  assert.ok(remoteInbound.fractionLost > 0.05 && remoteInbound.fractionLost < 0.15, `fractionLost ${remoteInbound.fractionLost}`);
  assert.ok(remoteInbound.roundTripTime > 0.015 && remoteInbound.roundTripTime < 0.2, `roundTripTime ${remoteInbound.roundTripTime}`);
  return previous;
}

/**
 * Polls `extract()` (what a monitor shows, shaped like settledProxyFigures'
 * result) until it equals `expected`; on timeout fails with the difference.
 */
export async function assertMonitorShows(extract, expected, { timeoutMs = 5000, what = 'monitor' } = {}) {
  try {
    await waitFor(() => JSON.stringify(extract()) === JSON.stringify(expected), { timeoutMs, intervalMs: 50, what });
  } catch {
    assert.deepEqual(extract(), expected, `${what} shows the proxy's figures`);
  }
  if (process.env.SHIM_TEST_VERBOSE === '1') console.log(`${what} = proxy: ${JSON.stringify(expected)}`);
}
