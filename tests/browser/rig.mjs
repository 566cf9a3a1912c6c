// One real call for tests/browser_rig.rs: Debian's Chromium (a real
// RTCPeerConnection with the fake camera and microphone) calls Janus's
// EchoTest; the only media path is through rtp-middlebox (the test sets up
// the network namespaces, Janus and the proxy before it runs this).
//
//   node tests/browser/rig.mjs CONFIG.json
//
// CONFIG.json:
//   chromium       executable playwright launches (a wrapper that runs
//                  /usr/bin/chromium inside the client's network namespace)
//   userDataDir    a fresh, empty directory for Chromium's profile
//   janus          Janus's HTTP API base, e.g. "http://10.64.1.6:8088/janus"
//   api            the proxy's HTTP API base, e.g. "http://127.0.0.1:41234"
//   mediaSeconds   how long media flows before the senders stop
//   settleSeconds  how long after the senders stop before the figures are
//                  read (packets in flight land, the SFU's last receiver
//                  reports arrive)
//   timeoutSeconds bound on the whole run
//   calls          (optional) a call id: the offer and the answer pass
//                  through the proxy's calls API (POST /v1/calls/{id}/offer
//                  from the client, /answer from the upstream), so both
//                  DTLS handshakes end at the proxy (dtls = "terminate")
//   wrongFingerprint (optional, with calls) the offer reaches the calls API
//                  with its a=fingerprint altered, as a tampered signalling
//                  path would deliver it: the call is expected to fail. The
//                  driver waits for Chromium's connectionState to settle
//                  (failed, or 20 s), reads both sides' figures and exits
//                  0 without sending media.
//
// Prints progress to stderr and one JSON object to stdout:
//   { ok, error?, timings, offer, answer, sdpAttached: [proxy session ids],
//     states, chromium: [W3C stats...],
//     proxy: { sessions: [...], stats: { id: [W3C stats...] } },
//     samples: [{ t, chromium: [...] }],
//     renegotiation?: { ok, error?, connectionState, signalingState,
//                       chromiumSetup, janusSetup } }
// With `renegotiate` (DTLS calls) the call is renegotiated after the first
// 5 s of media: Chromium re-offers, Janus re-answers, both SDPs through the
// calls API.
// Exits 0 when the call was set up and the figures were read (whatever
// they say), 1 otherwise.

import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, sleep, start } from './run.mjs';

const run = start('rig', { ok: false });
const { cfg, log, t0, result } = run;
const finish = (code) => run.finish(code);
const timings = {};
const mark = (name) => {
  timings[name] = (Date.now() - t0) / 1000;
};

async function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, t]);
  } finally {
    clearTimeout(timer);
  }
}

async function http(method, url, body) {
  const res = await withTimeout(
    fetch(url, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    }),
    35000,
    `${method} ${url}`,
  );
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

const tx = () => Math.random().toString(36).slice(2, 12);

// Janus's HTTP API: a session, an EchoTest handle, the offer as a message,
// the answer from the session's long poll.
async function janusCall(offer) {
  const base = cfg.janus;
  const created = await http('POST', base, { janus: 'create', transaction: tx() });
  if (created.janus !== 'success') throw new Error(`janus create: ${JSON.stringify(created)}`);
  const session = `${base}/${created.data.id}`;
  const attached = await http('POST', session, {
    janus: 'attach',
    plugin: 'janus.plugin.echotest',
    transaction: tx(),
  });
  if (attached.janus !== 'success') throw new Error(`janus attach: ${JSON.stringify(attached)}`);
  const handle = `${session}/${attached.data.id}`;
  const sent = await http('POST', handle, {
    janus: 'message',
    transaction: tx(),
    body: { audio: true, video: true },
    jsep: { type: offer.type, sdp: offer.sdp, trickle: false },
  });
  if (sent.janus !== 'ack' && sent.janus !== 'event') {
    throw new Error(`janus message: ${JSON.stringify(sent)}`);
  }
  return { session, handle, answer: await janusAnswer(session, sent) };
}

// The answer to an offer just sent in a message: in the message's reply,
// or later from the session's long poll.
async function janusAnswer(session, sent) {
  if (sent.jsep) return sent.jsep;
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const evs = await http('GET', `${session}?maxev=5&rid=${Date.now()}`);
    for (const ev of Array.isArray(evs) ? evs : [evs]) {
      if (ev.janus === 'event' && ev.jsep) return ev.jsep;
      if (ev.janus === 'event' && ev.plugindata?.data?.error) {
        throw new Error(`echotest: ${ev.plugindata.data.error}`);
      }
    }
  }
  throw new Error('no answer from janus within 20 s');
}

// A renegotiation of the live call (RFC 3264 §8), as an application does
// when a track changes: Chromium's subsequent offer and Janus's answer,
// each through the calls API with the same call id.
async function renegotiate(page, janus) {
  const offer = await page.evaluate(pageReoffer);
  const toJanus = await http('POST', `${cfg.api}/v1/calls/${cfg.calls}/offer`, { sdp: offer.sdp, from: 'client' });
  const sent = await http('POST', janus.handle, {
    janus: 'message',
    transaction: tx(),
    body: { audio: true, video: true },
    jsep: { type: 'offer', sdp: toJanus.sdp, trickle: false },
  });
  if (sent.janus !== 'ack' && sent.janus !== 'event') throw new Error(`janus message: ${JSON.stringify(sent)}`);
  const answer = await janusAnswer(janus.session, sent);
  const toChromium = await http('POST', `${cfg.api}/v1/calls/${cfg.calls}/answer`, { sdp: answer.sdp, from: 'upstream' });
  const setup = (sdp) => (sdp.match(/a=setup:(\w+)/) || [])[1];
  const state = await page.evaluate(pageReanswer, { type: 'answer', sdp: toChromium.sdp });
  return { ok: true, ...state, chromiumSetup: setup(offer.sdp), janusSetup: setup(answer.sdp) };
}

// Attaches the call's SDP to the proxy's session (as an application that
// knows it would): the client's offer and the SFU's answer.
async function attachSdp(offer, answer) {
  if (!cfg.api) return 'no api';
  const sessions = await http('GET', `${cfg.api}/v1/sessions`);
  const list = Array.isArray(sessions) ? sessions : sessions.sessions || [];
  for (const s of list) {
    await http('PUT', `${cfg.api}/v1/sessions/${s.id}/sdp`, {
      localDescription: { type: offer.type, sdp: offer.sdp },
      remoteDescription: { type: answer.type, sdp: answer.sdp },
    });
  }
  return list.map((s) => s.id);
}

async function proxyFigures() {
  if (!cfg.api) return null;
  const sessions = await http('GET', `${cfg.api}/v1/sessions`);
  const list = Array.isArray(sessions) ? sessions : sessions.sessions || [];
  const stats = {};
  for (const s of list) {
    stats[s.id] = await http('GET', `${cfg.api}/v1/sessions/${s.id}/stats`);
  }
  return { sessions, stats };
}

// Runs in the page.
async function pageSetup() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: 640, height: 480, frameRate: 30 },
  });
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  window.rig = { pc, stream, states: [] };
  pc.addEventListener('connectionstatechange', () => window.rig.states.push(pc.connectionState));
  pc.ontrack = (ev) => {
    const el = document.createElement(ev.track.kind === 'video' ? 'video' : 'audio');
    el.autoplay = true;
    el.muted = true;
    el.srcObject = new MediaStream([ev.track]);
    document.body.appendChild(el);
  };
  for (const track of stream.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
    const caps = RTCRtpReceiver.getCapabilities(track.kind).codecs;
    const keep = track.kind === 'audio' ? ['audio/opus'] : ['video/vp8', 'video/rtx'];
    tr.setCodecPreferences(caps.filter((c) => keep.includes(c.mimeType.toLowerCase())));
  }
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise((resolve, reject) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(() => reject(new Error('ICE gathering did not complete within 10 s')), 10000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
}

async function pageAnswer(answer) {
  const { pc } = window.rig;
  await pc.setRemoteDescription(answer);
  const deadline = Date.now() + 20000;
  while (pc.connectionState !== 'connected') {
    if (pc.connectionState === 'failed' || Date.now() > deadline) {
      throw new Error(`connection state ${pc.connectionState} (${window.rig.states.join(' → ')})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return pc.connectionState;
}

// Runs in the page: the answer applied, the connection state once it
// failed or 20 s passed (a call that must not connect).
async function pageSettle(answer) {
  const { pc } = window.rig;
  await pc.setRemoteDescription(answer);
  const deadline = Date.now() + 20000;
  while (pc.connectionState !== 'failed' && pc.connectionState !== 'connected' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return pc.connectionState;
}

// Runs in the page: a subsequent offer on the connected call.
async function pageReoffer() {
  const { pc } = window.rig;
  await pc.setLocalDescription(await pc.createOffer());
  return { type: 'offer', sdp: pc.localDescription.sdp };
}

// Runs in the page: the subsequent answer applied; the call's states a
// second later.
async function pageReanswer(answer) {
  const { pc } = window.rig;
  await pc.setRemoteDescription(answer);
  await new Promise((r) => setTimeout(r, 1000));
  return { connectionState: pc.connectionState, signalingState: pc.signalingState };
}

async function pageStats() {
  const out = [];
  (await window.rig.pc.getStats()).forEach((s) => out.push(s));
  return out;
}

async function pageStopSenders() {
  for (const s of window.rig.pc.getSenders()) await s.replaceTrack(null);
}

async function main() {
  log('launching chromium');
  run.browser = await withTimeout(
    chromium.launchPersistentContext(cfg.userDataDir, {
      executablePath: cfg.chromium,
      headless: true,
      timeout: 30000,
      args: [
        ...CHROMIUM_ARGS,
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--autoplay-policy=no-user-gesture-required',
      ],
    }),
    40000,
    'chromium launch',
  );
  mark('launched');
  const page = run.browser.pages()[0] || (await run.browser.newPage());
  page.on('console', (m) => log('page:', m.text()));
  // getUserMedia needs a secure context: serve the (empty) page as
  // http://localhost/ from playwright's request interception, no server.
  await page.route('http://localhost/rig', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>rtp-middlebox rig</title><body></body>' }),
  );
  await page.goto('http://localhost/rig', { timeout: 15000 });
  const offer = await withTimeout(page.evaluate(pageSetup), 20000, 'offer');
  mark('offer');
  log('offer ready, candidates:', offer.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate')).join(' | '));
  // With DTLS termination the SDPs go through the proxy's calls API on
  // their way, as the application's signalling would send them.
  let toJanus = offer;
  if (cfg.calls) {
    // A tampered fingerprint: the first byte of the digest inverted.
    const posted = cfg.wrongFingerprint
      ? offer.sdp.replace(/(a=fingerprint:\S+ )([0-9A-Fa-f]{2})/g, (_, head, b) =>
          head + (0xff ^ parseInt(b, 16)).toString(16).padStart(2, '0').toUpperCase())
      : offer.sdp;
    if (cfg.wrongFingerprint && posted === offer.sdp) throw new Error('the offer has no fingerprint to alter');
    const r = await http('POST', `${cfg.api}/v1/calls/${cfg.calls}/offer`, { sdp: posted, from: 'client' });
    toJanus = { type: offer.type, sdp: r.sdp };
    result.offerToJanus = r.sdp;
  }
  const janus = await janusCall(toJanus);
  if (cfg.calls) {
    const r = await http('POST', `${cfg.api}/v1/calls/${cfg.calls}/answer`, { sdp: janus.answer.sdp, from: 'upstream' });
    result.janusAnswer = janus.answer.sdp;
    janus.answer = { type: janus.answer.type, sdp: r.sdp };
  }
  mark('answer');
  log('answer candidates:', janus.answer.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate')).join(' | '));
  result.offer = offer.sdp;
  result.answer = janus.answer.sdp;
  if (cfg.wrongFingerprint) {
    result.connectionState = await withTimeout(page.evaluate(pageSettle, janus.answer), 30000, 'settle');
    log(`connection state ${result.connectionState}`);
    await sleep(2000);
    result.chromium = await withTimeout(page.evaluate(pageStats), 10000, 'getStats');
    result.proxy = await proxyFigures();
    result.states = await page.evaluate(() => window.rig.states);
    result.ok = true;
    await hangUp(janus);
    return;
  }
  await withTimeout(page.evaluate(pageAnswer, { type: janus.answer.type, sdp: janus.answer.sdp }), 25000, 'connect');
  mark('connected');
  try {
    result.sdpAttached = await attachSdp(offer, janus.answer);
  } catch (e) {
    result.sdpAttached = `failed: ${e.message}`;
    log('attaching the SDP:', e.message);
  }
  log(`connected; media for ${cfg.mediaSeconds} s`);
  result.samples = [];
  const step = 5;
  for (let t = 0; t < cfg.mediaSeconds; t += step) {
    await sleep(Math.min(step, cfg.mediaSeconds - t) * 1000);
    const s = await withTimeout(page.evaluate(pageStats), 10000, 'getStats');
    const brief = s
      .filter((x) => x.type === 'inbound-rtp' || x.type === 'outbound-rtp')
      .map((x) => `${x.type} ${x.kind} ${x.ssrc}: ${x.packetsReceived ?? x.packetsSent}`)
      .join(', ');
    log(brief);
    result.samples.push({ t: (Date.now() - t0) / 1000, chromium: s });
    if (t === 0 && cfg.renegotiate) {
      try {
        result.renegotiation = await withTimeout(renegotiate(page, janus), 30000, 'renegotiation');
      } catch (e) {
        result.renegotiation = { ok: false, error: e.message };
      }
      log('renegotiation:', JSON.stringify(result.renegotiation));
    }
  }
  await withTimeout(page.evaluate(pageStopSenders), 10000, 'stop senders');
  mark('senders-stopped');
  log(`senders stopped; settling ${cfg.settleSeconds} s`);
  await sleep(cfg.settleSeconds * 1000);
  result.chromium = await withTimeout(page.evaluate(pageStats), 10000, 'getStats');
  mark('chromium-stats');
  result.proxy = await proxyFigures();
  mark('proxy-stats');
  result.states = await page.evaluate(() => window.rig.states);
  result.ok = true;
  await hangUp(janus);
}

// Hang up politely so Janus does not wait for its own timeouts.
async function hangUp(janus) {
  try {
    await http('POST', janus.handle, { janus: 'detach', transaction: tx() });
    await http('POST', janus.session, { janus: 'destroy', transaction: tx() });
  } catch (e) {
    log('hang-up:', e.message);
  }
}

main().then(
  () => {
    result.timings = timings;
    finish(0);
  },
  (e) => {
    result.error = e && e.stack ? e.stack : String(e);
    result.timings = timings;
    log('failed:', result.error);
    finish(1);
  },
);
