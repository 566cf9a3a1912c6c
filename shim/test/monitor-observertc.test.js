// @observertc/client-monitor-js (v4: ClientMonitor.addSource; the
// addRTCPeerConnection of earlier majors is gone) monitoring the shim on a
// live proxy session: its inbound-rtp and remote-inbound-rtp monitors hold
// the proxy's figures for the sender's SSRC (x- members included: a monitor
// Object.assign()s the whole stats entry), and its samples carry the schema's
// fields of the same figures (x- members not: the sample schema is closed).
//
// Browser globals it needs: none with `integrateNavigatorMediaDevices: false`
// (its default, true, wraps navigator.mediaDevices). Without `navigator` its
// user-agent lookup logs a warning and the browser stays unknown, which
// selects no stats adapter: the report is read as the spec's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyPeerConnection } from '../index.js';
import { waitFor } from './helpers/fake-proxy.js';
import { skipWithoutBinary } from './helpers/live.js';
import { registerBundlerResolve } from './helpers/bundler-resolve.js';
import { startLiveCall, settledProxyFigures, assertMonitorShows, pick, INBOUND_FIELDS, REMOTE_INBOUND_FIELDS } from './helpers/monitor-live.js';

const skip = skipWithoutBinary();
// Its dist/ imports '../schema/ClientSample' without an extension (bundler style).
registerBundlerResolve();

const SCHEMA_INBOUND = ['packetsReceived', 'packetsLost', 'jitter'];

test('@observertc/client-monitor-js on a live proxy session: monitors and samples = proxy figures', { timeout: 30000, skip }, async (t) => {
  const { ClientMonitor, setLogger } = await import('@observertc/client-monitor-js');
  const logged = [];
  const log = (level) => (...args) => logged.push([level, ...args.map(String)]);
  setLogger({ trace: log('trace'), debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') });

  const call = await startLiveCall(t);
  const pc = new ProxyPeerConnection({ streamUrl: call.proxy.streamUrl, sessionId: call.session.id });
  const monitor = new ClientMonitor({
    clientId: 'shim-client',
    callId: 'shim-call',
    collectingPeriodInMs: 300,
    samplingPeriodInMs: 600,
    integrateNavigatorMediaDevices: false,
  });
  t.after(() => {
    monitor.close();
    pc.close();
  });
  const samples = [];
  monitor.on('sample-created', ({ sample }) => samples.push(sample));
  const clientEvents = [];
  monitor.on('client-event', (e) => clientEvents.push(e));
  monitor.addSource(pc);

  await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'connected' });
  // While media flows, its own per-collection fractionLost (delta lost over
  // delta lost + received) sees the 10% loss.
  const inboundMonitor = () => monitor.inboundRtps.find((m) => m.ssrc === call.ssrc);
  const remoteMonitor = () => monitor.remoteInboundRtps.find((m) => m.ssrc === call.ssrc);
  const fractions = [];
  await waitFor(
    () => {
      const f = inboundMonitor()?.fractionLost;
      if (typeof f === 'number' && f > 0) fractions.push(f);
      return fractions.length >= 1;
    },
    { timeoutMs: 5000, intervalMs: 50, what: 'a non-zero fractionLost on the inbound-rtp monitor' },
  );
  assert.ok(fractions.every((f) => f > 0.03 && f < 0.4), `fractionLost ${fractions}`);

  const expected = await settledProxyFigures(call);
  // The monitors (what its detectors and score read) hold the proxy's figures.
  await assertMonitorShows(
    () => ({ inbound: pick(inboundMonitor(), INBOUND_FIELDS), remoteInbound: pick(remoteMonitor(), REMOTE_INBOUND_FIELDS) }),
    expected,
    { what: '@observertc/client-monitor-js monitors' },
  );
  // The samples it would send to an observer: same figures, schema fields only.
  const sampled = (s) => {
    const pcSample = s?.peerConnections?.find((p) => p.inboundRtps?.some((r) => r.ssrc === call.ssrc));
    return {
      inbound: pick(pcSample?.inboundRtps.find((r) => r.ssrc === call.ssrc), SCHEMA_INBOUND),
      remoteInbound: pick(pcSample?.remoteInboundRtps?.find((r) => r.ssrc === call.ssrc), REMOTE_INBOUND_FIELDS),
    };
  };
  await assertMonitorShows(() => sampled(samples.at(-1)), { inbound: pick(expected.inbound, SCHEMA_INBOUND), remoteInbound: expected.remoteInbound }, { what: '@observertc/client-monitor-js samples' });
  const lastInbound = samples.at(-1).peerConnections.flatMap((p) => p.inboundRtps).find((r) => r.ssrc === call.ssrc);
  assert.equal(lastInbound['x-mosLq'], undefined, 'samples keep to the schema');
  assert.equal(lastInbound.kind, 'audio');
  // The codec the proxy links is its codec monitor.
  assert.equal(monitor.codecs.find((c) => c.id === inboundMonitor().codecId)?.mimeType, 'audio/PCMU');
  // Its client events have the pc's opening with the shim's states at
  // addSource time. (4.0.3 never calls bind() on its RTCPeerConnection
  // binding, so no later pc event of any RTCPeerConnection reaches them:
  // a package quirk, not the shim's; the mediasoup bindings are bound.)
  const opened = clientEvents.find((e) => e.type === 'PEER_CONNECTION_OPENED');
  assert.ok(opened, JSON.stringify(clientEvents.map((e) => e.type)));
  assert.equal(opened.payload.signalingState, 'stable');
  assert.equal(logged.filter(([l]) => l === 'error').length, 0, JSON.stringify(logged.filter(([l]) => l === 'error')));
});
