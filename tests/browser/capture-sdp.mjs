// Regenerates the browser-made SDPs of the SDP corpus (tests/data/sdp/):
// Debian's Chromium, headless, with the fake camera and microphone, makes
// a real offer (audio + video, BUNDLE, ICE gathering complete) and a
// second RTCPeerConnection answers it; with a Janus base URL, Janus's
// EchoTest answers the same offer too.
//
//   node tests/browser/capture-sdp.mjs OUT_DIR [JANUS_HTTP_BASE]
//
// Writes OUT_DIR/chromium-offer.sdp, OUT_DIR/chromium-answer.sdp,
// OUT_DIR/chromium-answer-passive.sdp (Chromium's answer to the same offer
// with a=setup:active instead of actpass) and, with Janus,
// OUT_DIR/janus-echotest-answer.sdp (bytes exactly as the browser or Janus
// gave them, CRLF line endings). Needs tests/browser/setup.sh (the
// playwright-core it installs drives /usr/bin/chromium; no browser is
// downloaded). Janus is started by hand for this, e.g. with the EchoTest
// plugin and the HTTP transport as tests/browser_rig.rs configures it.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [outDir, janusBase] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node tests/browser/capture-sdp.mjs OUT_DIR [JANUS_HTTP_BASE]');
  process.exit(2);
}

async function janus(path, body) {
  const res = await fetch(`${janusBase}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify({ transaction: Math.random().toString(36).slice(2), ...body }) : undefined,
  });
  return res.json();
}

// Janus EchoTest: a session, a handle, the offer as a message; the answer
// comes with the message's reply or on the session's long poll.
async function janusAnswer(offer) {
  const session = (await janus('', { janus: 'create' })).data.id;
  const handle = (await janus(`/${session}`, { janus: 'attach', plugin: 'janus.plugin.echotest' })).data.id;
  const sent = await janus(`/${session}/${handle}`, {
    janus: 'message',
    body: { audio: true, video: true },
    jsep: { type: 'offer', sdp: offer, trickle: false },
  });
  let answer = sent.jsep;
  const deadline = Date.now() + 20000;
  while (!answer && Date.now() < deadline) {
    const ev = await janus(`/${session}?maxev=1`);
    if (ev.jsep) answer = ev.jsep;
  }
  await janus(`/${session}`, { janus: 'destroy' });
  if (!answer) throw new Error('no answer from Janus within 20 s');
  return answer.sdp;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
  ],
});
try {
  const page = await browser.newPage();
  // getUserMedia needs a secure context: an empty page as http://localhost/
  // from playwright's request interception, as rig.mjs does.
  await page.route('http://localhost/sdp', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>sdp</title><body></body>' }),
  );
  await page.goto('http://localhost/sdp', { timeout: 15000 });
  const { offer, answer, passive } = await page.evaluate(async () => {
    const gathered = (pc) =>
      new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      });
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const a = new RTCPeerConnection();
    for (const track of stream.getTracks()) a.addTrack(track, stream);
    await a.setLocalDescription(await a.createOffer());
    await gathered(a);
    const b = new RTCPeerConnection();
    await b.setRemoteDescription(a.localDescription);
    const answerStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const track of answerStream.getTracks()) b.addTrack(track, answerStream);
    await b.setLocalDescription(await b.createAnswer());
    await gathered(b);
    // The same offer with a=setup:active (an offerer that insists on the
    // DTLS client role, RFC 5763 §5 allows it): Chromium answers passive.
    const c = new RTCPeerConnection();
    const active = a.localDescription.sdp.replaceAll('a=setup:actpass', 'a=setup:active');
    await c.setRemoteDescription({ type: 'offer', sdp: active });
    for (const track of answerStream.getTracks()) c.addTrack(track, answerStream);
    await c.setLocalDescription(await c.createAnswer());
    await gathered(c);
    return { offer: a.localDescription.sdp, answer: b.localDescription.sdp, passive: c.localDescription.sdp };
  });
  writeFileSync(join(outDir, 'chromium-offer.sdp'), offer);
  writeFileSync(join(outDir, 'chromium-answer.sdp'), answer);
  writeFileSync(join(outDir, 'chromium-answer-passive.sdp'), passive);
  console.error(`wrote chromium-offer.sdp (${offer.length} B), chromium-answer.sdp (${answer.length} B), chromium-answer-passive.sdp (${passive.length} B)`);
  if (janusBase) {
    const j = await janusAnswer(offer);
    writeFileSync(join(outDir, 'janus-echotest-answer.sdp'), j);
    console.error(`wrote janus-echotest-answer.sdp (${j.length} B)`);
  }
} finally {
  await browser.close();
}
