// @peermetrics/webrtc-stats (addConnection) monitoring the shim on a live
// proxy session: the inbound-rtp and remote-inbound-rtp entries of its
// `stats` events carry the proxy's figures for the sender's SSRC, x- members
// included.
//
// Browser globals it needs: `window` (window.setInterval for its polling; its
// constructor refuses to run when `window` is undefined) and
// `RTCPeerConnection` (addConnection rejects a pc that is not
// `instanceof RTCPeerConnection`; node has none, so the global is the shim's
// class). Nothing else unless wrapGetUserMedia/wrapGetDisplayMedia are set
// (navigator.mediaDevices).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyPeerConnection } from '../index.js';
import { waitFor } from './helpers/fake-proxy.js';
import { skipWithoutBinary } from './helpers/live.js';
import { startLiveCall, settledProxyFigures, assertMonitorShows, pick, INBOUND_FIELDS, REMOTE_INBOUND_FIELDS } from './helpers/monitor-live.js';

const skip = skipWithoutBinary();

test('@peermetrics/webrtc-stats on a live proxy session: stats events = proxy figures', { timeout: 30000, skip }, async (t) => {
  // The stand-in for the browser's global object: node's own timers.
  globalThis.window = globalThis;
  globalThis.RTCPeerConnection = ProxyPeerConnection;
  const { WebRTCStats } = await import('@peermetrics/webrtc-stats');

  const call = await startLiveCall(t);
  const pc = new ProxyPeerConnection({ streamUrl: call.proxy.streamUrl, sessionId: call.session.id });
  const webrtcStats = new WebRTCStats({ getStatsInterval: 300, remote: true });
  t.after(() => {
    webrtcStats.destroy();
    pc.close();
  });
  const events = [];
  webrtcStats.on('stats', (ev) => events.push(ev));
  const timeline = [];
  webrtcStats.on('timeline', (ev) => timeline.push(ev));
  const { connectionId } = await webrtcStats.addConnection({ pc, peerId: 'sfu' });
  assert.ok(connectionId);

  await waitFor(() => pc.iceConnectionState === 'connected', { timeoutMs: 3000, what: 'connected' });
  // While media flows: its derived loss rate (its own delta of packetsLost
  // over packetsLost + packetsReceived between two polls) sees the 10% loss.
  await waitFor(() => events.filter((e) => e.peerId === 'sfu').length >= 3, { timeoutMs: 5000, what: 'three stats events' });
  const inboundOf = (ev) => ev?.data.audio.inbound.find((r) => r.ssrc === call.ssrc);
  const remoteOf = (ev) => ev?.data.remote.audio.inbound.find((r) => r.ssrc === call.ssrc);
  const rates = events.map((e) => inboundOf(e)?.packetLossRate).filter((r) => typeof r === 'number');
  assert.ok(rates.some((r) => r > 0.03 && r < 0.25), `packetLossRate ${rates}`);

  const expected = await settledProxyFigures(call);
  // Once the figures settle, the latest event carries them unchanged.
  await assertMonitorShows(
    () => ({ inbound: pick(inboundOf(events.at(-1)), INBOUND_FIELDS), remoteInbound: pick(remoteOf(events.at(-1)), REMOTE_INBOUND_FIELDS) }),
    expected,
    { what: '@peermetrics/webrtc-stats' },
  );
  const last = events.at(-1);
  assert.equal(inboundOf(last).kind, 'audio');
  // The codec entry the proxy links is resolved into the stream (codecId → mimeType).
  assert.equal(inboundOf(last).mimeType, 'audio/PCMU');
  assert.equal(inboundOf(last).clockRate, 8000);
  // The state the shim reports reaches its timeline.
  assert.ok(
    timeline.some((e) => e.event === 'oniceconnectionstatechange' && e.data === 'connected'),
    JSON.stringify(timeline.map((e) => [e.event, e.data])),
  );
});
