// The attacker's side of tests/browser_attacker.rs: Debian's Chromium opens
// pages that try to read and change a live rtp-middlebox session through
// the API on loopback, as any web page the operator's browser visits could.
//
//   node tests/browser/attacker.mjs CONFIG.json
//
// CONFIG.json:
//   chromium     executable (/usr/bin/chromium)
//   userDataDir  a fresh, empty directory for Chromium's profile
//   api          the API's base, e.g. "http://127.0.0.1:41234"
//   session      the live session's id (the attacker is even given it)
//   keysBody     a valid POST /v1/sessions/{id}/srtp JSON body (other keys)
//   guessedIds   ids an attacker would spray (the old sequential format)
//   allowedOrigin an origin in [api] cors_origins: the control page there
//                must be able to read, or the attempts prove nothing
//   timeoutSeconds bound on the whole run
//
// Pages:
//   cross-site   http://127.0.0.2:PORT/ from this script's own HTTP server
//   rebinding    http://evil.test:APIPORT/: the document comes from the
//                attacker (request interception); every later request to
//                that name reaches the API (--host-resolver-rules maps
//                evil.test to 127.0.0.1), as after a DNS rebinding
//   control      the allowed origin (document from request interception)
//
// Prints one JSON object to stdout: { ok, error?, attempts: [{ page, name,
// read, detail }] }. `read` is true when the page got at API data (or the
// WebSocket opened). Exits 0 when every page ran, 1 otherwise.

import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, start } from './run.mjs';

const result = { ok: false, attempts: [] };
const run = start('attacker', result);
const { cfg, log } = run;
const finish = (code) => run.finish(code);

const PAGE = '<!doctype html><title>definitely not an attacker</title><body>hello</body>';

// Runs in every page before its own scripts (page.addInitScript): the one
// WebSocket probe of the attack and the control. It resolves when the
// socket closes, when `done(data)` says a message is enough, or after 3 s.
function installProbe() {
  window.probeWebSocket = (url, done = () => false) =>
    new Promise((resolve) => {
      const r = { opened: false, messages: 0, first: '' };
      let sock;
      try {
        sock = new WebSocket(url);
      } catch (e) {
        resolve({ ...r, error: String(e) });
        return;
      }
      let timer;
      const finish = () => {
        clearTimeout(timer);
        try {
          sock.close();
        } catch {}
        resolve(r);
      };
      timer = setTimeout(finish, 3000);
      sock.onopen = () => {
        r.opened = true;
      };
      sock.onmessage = (e) => {
        r.messages += 1;
        if (!r.first) r.first = String(e.data).slice(0, 120);
        if (done(String(e.data))) finish();
      };
      sock.onclose = (e) => {
        r.code = e.code;
        finish();
      };
    });
}

// Runs inside the page: every attempt, with what it could read. `base` is
// the API as the page names it ('' for same-origin relative URLs).
async function pageAttack({ base, wsBase, session, keysBody, guessedIds }) {
  const out = [];
  const note = (name, read, detail) => out.push({ name, read, detail });
  const looksLikeData = (text) =>
    typeof text === 'string' && (text.includes(session) || text.includes('"ssrcs"') || text.includes('"event"'));

  // (a) WebSocket: browsers send Origin; a WebSocket has no CORS of its own.
  const ws = await window.probeWebSocket(`${wsBase}/v1/stream/ws`);
  note('websocket /v1/stream/ws', ws.opened || ws.messages > 0, ws);

  // Server-Sent Events.
  const sse = await new Promise((resolve) => {
    const r = { messages: 0, first: '' };
    const es = new EventSource(`${base}/v1/stream`);
    const seen = (e) => {
      r.messages += 1;
      if (!r.first) r.first = String(e.data).slice(0, 120);
    };
    for (const name of ['state', 'stats', 'description', 'message']) es.addEventListener(name, seen);
    setTimeout(() => {
      r.readyState = es.readyState;
      es.close();
      resolve(r);
    }, 2000);
  });
  note('EventSource /v1/stream', sse.messages > 0, sse);

  // (b) fetch of the session list, CORS and no-cors.
  for (const mode of ['cors', 'no-cors']) {
    try {
      const res = await fetch(`${base}/v1/sessions`, { mode });
      const text = await res.text();
      note(`fetch /v1/sessions (${mode})`, looksLikeData(text), {
        type: res.type,
        status: res.status,
        text: text.slice(0, 120),
      });
    } catch (e) {
      note(`fetch /v1/sessions (${mode})`, false, { error: String(e) });
    }
  }
  try {
    const res = await fetch(`${base}/v1/sessions/${session}/stats`, { mode: 'cors' });
    const text = await res.text();
    note('fetch stats (cors)', looksLikeData(text) || res.ok, { status: res.status, text: text.slice(0, 120) });
  } catch (e) {
    note('fetch stats (cors)', false, { error: String(e) });
  }

  // (c) Writes a page may send without a preflight: text/plain, form
  // bodies, a beacon; and a JSON one, which needs a preflight cross-site.
  const post = async (name, path, init) => {
    try {
      const res = await fetch(`${base}${path}`, { method: 'POST', ...init });
      const text = await res.text();
      note(name, res.ok && res.type !== 'opaque', { type: res.type, status: res.status, text: text.slice(0, 120) });
    } catch (e) {
      note(name, false, { error: String(e) });
    }
  };
  const srtp = `/v1/sessions/${session}/srtp`;
  await post('POST keys text/plain (no-cors)', srtp, {
    mode: 'no-cors',
    headers: { 'content-type': 'text/plain' },
    body: keysBody,
  });
  await post('POST keys text/plain (cors)', srtp, { headers: { 'content-type': 'text/plain' }, body: keysBody });
  await post('POST keys form (no-cors)', srtp, {
    mode: 'no-cors',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: keysBody,
  });
  await post('POST keys application/json (cors)', srtp, {
    headers: { 'content-type': 'application/json' },
    body: keysBody,
  });
  const beacon = navigator.sendBeacon(`${base}${srtp}`, new Blob([keysBody], { type: 'text/plain' }));
  note('sendBeacon keys text/plain', false, { queued: beacon });
  for (const id of guessedIds) {
    await post(`POST keys text/plain to guessed id ${id}`, `/v1/sessions/${id}/srtp`, {
      mode: 'no-cors',
      headers: { 'content-type': 'text/plain' },
      body: keysBody,
    });
  }
  try {
    const res = await fetch(`${base}${srtp}`, { method: 'DELETE' });
    note('DELETE keys (cors)', res.ok, { status: res.status });
  } catch (e) {
    note('DELETE keys (cors)', false, { error: String(e) });
  }
  // Let the beacon go out before the page is left.
  await new Promise((r) => setTimeout(r, 300));
  return out;
}

// The control: an allowed origin reads the list (so a failed read above is
// the API's doing, not the harness's).
async function pageControl({ base, wsBase, session }) {
  const out = [];
  try {
    const res = await fetch(`${base}/v1/sessions`);
    const text = await res.text();
    out.push({ name: 'control fetch /v1/sessions', read: text.includes(session), detail: { status: res.status } });
  } catch (e) {
    out.push({ name: 'control fetch /v1/sessions', read: false, detail: { error: String(e) } });
  }
  const ws = await window.probeWebSocket(`${wsBase}/v1/stream/ws`, (data) => data.includes(session));
  out.push({ name: 'control websocket', read: ws.opened && ws.messages > 0, detail: ws });
  return out;
}

async function main() {
  // The cross-site attacker's own server, on another loopback address.
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.2', resolve);
    run.closers.push(() => server.close());
  });
  const attackerOrigin = `http://127.0.0.2:${server.address().port}`;
  const api = new URL(cfg.api);
  const apiPort = api.port;
  log('launching chromium; attacker page at', attackerOrigin);
  run.browser = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.chromium,
    headless: true,
    timeout: 30000,
    args: [
      '--headless',
      ...CHROMIUM_ARGS,
      // The rebinding: evil.test now resolves to the API's address (and
      // good.test, the control, is in [api] allowed_hosts).
      '--host-resolver-rules=MAP evil.test 127.0.0.1, MAP good.test 127.0.0.1',
      // Chromium's own Local Network Access checks would stop pages whose
      // document came from request interception (no address: public)
      // before the API sees a request. Other browsers, older ones, or a
      // user who granted the permission do not stop them: the API's
      // checks are what this test is about.
      '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests',
    ],
  });
  const page = run.browser.pages()[0] || (await run.browser.newPage());
  await page.addInitScript(installProbe);
  page.on('console', (m) => log('page:', m.text()));
  const args = {
    session: cfg.session,
    keysBody: cfg.keysBody,
    guessedIds: cfg.guessedIds,
  };

  // Cross-site: a page on another origin names the API by its address.
  await page.goto(`${attackerOrigin}/`, { timeout: 15000 });
  for (const a of await page.evaluate(pageAttack, { ...args, base: cfg.api, wsBase: cfg.api.replace(/^http/, 'ws') })) {
    result.attempts.push({ page: 'cross-site', ...a });
  }
  log('cross-site page done');

  // Rebinding: the document came from the attacker, the name now points at
  // the API, and the page is same-origin with it.
  const evil = `http://evil.test:${apiPort}`;
  await page.route(`${evil}/`, (route) => route.fulfill({ contentType: 'text/html', body: PAGE }));
  await page.goto(`${evil}/`, { timeout: 15000 });
  for (const a of await page.evaluate(pageAttack, { ...args, base: '', wsBase: evil.replace(/^http/, 'ws') })) {
    result.attempts.push({ page: 'rebinding', ...a });
  }
  log('rebinding page done');

  // Controls: the allowed origin reads cross-origin, and a name in [api]
  // allowed_hosts reads same-origin through the same resolver path the
  // rebinding took.
  const allowed = new URL(cfg.allowedOrigin);
  await page.route(`${allowed.origin}/`, (route) => route.fulfill({ contentType: 'text/html', body: PAGE }));
  await page.goto(`${allowed.origin}/`, { timeout: 15000 });
  for (const a of await page.evaluate(pageControl, {
    session: cfg.session,
    base: cfg.api,
    wsBase: cfg.api.replace(/^http/, 'ws'),
  })) {
    result.attempts.push({ page: 'control', ...a });
  }
  const good = `http://good.test:${apiPort}`;
  await page.route(`${good}/`, (route) => route.fulfill({ contentType: 'text/html', body: PAGE }));
  await page.goto(`${good}/`, { timeout: 15000 });
  for (const a of await page.evaluate(pageControl, {
    session: cfg.session,
    base: '',
    wsBase: good.replace(/^http/, 'ws'),
  })) {
    result.attempts.push({ page: 'control', ...a, name: `${a.name} (allowed host)` });
  }
  log('control pages done');
  result.ok = true;
  finish(0);
}

main().catch((e) => {
  result.error = String(e && e.stack ? e.stack : e);
  log(result.error);
  finish(1);
});
