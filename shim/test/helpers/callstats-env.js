// Runs the real callstats-js bundle in node: the few browser globals it
// touches (a Chrome on Linux), and an in-process stand-in for its backend
// behind a fake XMLHttpRequest. Every request callstats makes is recorded in
// `backend.requests` ({method, url, path, headers, body}); nothing leaves the
// process.
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';

const require = createRequire(import.meta.url);

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

export class FakeCallstatsBackend {
  constructor({ ingestedEvents, submissionInterval = 5000, collectSDP = true } = {}) {
    this.requests = [];
    this.ingestedEvents = ingestedEvents ?? [
      'applicationErrorLog',
      'sdpSubmissionEvent',
      'mediaPlaybackStart',
      'mediaPlaybackSuspended',
      'oneWayMediaStart',
      'oneWayMediaStop',
      'circuitBreaker',
      'connectedDeviceList',
      'activeDeviceList',
      'dominantSpeaker',
    ];
    this.submissionInterval = submissionInterval;
    this.collectSDP = collectSDP;
    this.ucIds = 0;
  }

  /** Answers one request: [status, body object]. */
  handle(method, url, body) {
    const u = new URL(url);
    if (u.pathname.endsWith('/authenticate')) {
      const form = new URLSearchParams(body || '');
      const [appID, ...rest] = (form.get('client_id') || '@').split('@').reverse();
      const userID = rest.reverse().join('@');
      const payload = {
        // callstats keeps the app id as a number and compares it with ===.
        appID: /^\d+$/.test(appID) ? Number(appID) : appID,
        userID,
        submissionInterval: this.submissionInterval,
        collectSDP: this.collectSDP,
        ingestedEvents: this.ingestedEvents,
        expiry: new Date(Date.now() + 3600e3).toISOString(),
      };
      const jwt = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.sig`;
      return [
        200,
        {
          access_token: jwt,
          token_type: 'bearer',
          expires_in: 3600,
          metadata: { urls: { events: 'https://events.fake.invalid/v1/apps', stats: 'https://stats.fake.invalid/v1/apps' } },
        },
      ];
    }
    if (u.pathname.endsWith('/clockSync')) return [200, { now: Date.now() }];
    if (method === 'POST' && u.hostname === 'events.fake.invalid') {
      // userJoined is POSTed to .../conferences/<id> and gets the conference's ucID.
      if (/\/conferences\/[^/]+\/?$/.test(u.pathname)) return [200, { status: 'success', ucID: `ucid-${++this.ucIds}` }];
      return [200, { status: 'success' }];
    }
    if (method === 'POST' && u.hostname === 'stats.fake.invalid') return [200, { status: 'success' }];
    return [404, { status: 'error', msg: 'not found' }];
  }

  /** Recorded requests whose path ends with `suffix` (e.g. "/events/app/logs"). */
  find(suffix) {
    return this.requests.filter((r) => r.path.endsWith(suffix));
  }
}

function makeXhrClass(backend) {
  return class FakeXMLHttpRequest {
    constructor() {
      this.readyState = 0;
      this.status = 0;
      this.response = '';
      this.responseText = '';
      this.timeout = 0;
      this.headers = {};
      this.onload = null;
      this.onreadystatechange = null;
      this.ontimeout = null;
      this.onerror = null;
    }

    open(method, url) {
      this.method = method;
      this.url = url;
      this.readyState = 1;
    }

    setRequestHeader(k, v) {
      this.headers[k] = v;
    }

    send(body) {
      let parsed = body;
      if (typeof body === 'string' && (this.headers['Content-Type'] || '').includes('json')) {
        try {
          parsed = JSON.parse(body);
        } catch {
          parsed = body;
        }
      }
      const u = new URL(this.url);
      backend.requests.push({ method: this.method, url: this.url, path: u.pathname, headers: { ...this.headers }, body: parsed, at: Date.now() });
      const [status, res] = backend.handle(this.method, this.url, body);
      setTimeout(() => {
        this.status = status;
        this.response = this.responseText = JSON.stringify(res);
        this.readyState = 4;
        this.onreadystatechange?.();
        this.onload?.();
      }, 1);
    }

    abort() {}
  };
}

class MemoryStorage {
  #m = new Map();
  getItem(k) {
    return this.#m.has(k) ? this.#m.get(k) : null;
  }
  setItem(k, v) {
    this.#m.set(k, String(v));
  }
  removeItem(k) {
    this.#m.delete(k);
  }
  clear() {
    this.#m.clear();
  }
}

const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';

/**
 * Installs the browser globals callstats-js reads and returns a fresh
 * callstats instance plus the backend it talks to. Call once per process
 * (callstats keeps module-level state).
 */
export function loadCallstats(backendOptions) {
  const backend = new FakeCallstatsBackend(backendOptions);
  const g = globalThis;
  const define = (name, value) => Object.defineProperty(g, name, { value, configurable: true, writable: true });
  define('window', g);
  define('self', g);
  define('navigator', {
    userAgent: CHROME_UA,
    appVersion: CHROME_UA.slice('Mozilla/'.length),
    vendor: 'Google Inc.',
    platform: 'Linux x86_64',
    onLine: true,
    language: 'en-US',
    // No devices: callstats' device-list polling finds nothing to report.
    mediaDevices: { enumerateDevices: () => Promise.resolve([]), addEventListener() {}, removeEventListener() {} },
  });
  define('document', {
    createElement: () => ({ style: {}, setAttribute() {}, appendChild() {}, addEventListener() {} }),
    createEvent: () => ({ initEvent() {} }),
    getElementById: () => null,
    documentElement: { style: {} },
    addEventListener() {},
    removeEventListener() {},
    readyState: 'complete',
  });
  define('location', { href: 'http://localhost/', protocol: 'http:', host: 'localhost', hostname: 'localhost' });
  define('localStorage', new MemoryStorage());
  define('sessionStorage', new MemoryStorage());
  define('XMLHttpRequest', makeXhrClass(backend));
  if (!g.crypto?.subtle) define('crypto', webcrypto);
  // callstats only uses RTCPeerConnection for instanceof checks and its own
  // pre-call test / IP collection (switched off by the tests' config params).
  define('RTCPeerConnection', function RTCPeerConnection() {
    throw new Error('no WebRTC in node');
  });
  if (typeof g.addEventListener !== 'function') {
    const target = new EventTarget();
    define('addEventListener', target.addEventListener.bind(target));
    define('removeEventListener', target.removeEventListener.bind(target));
  }
  const factory = require('callstats-js');
  const callstats = typeof factory === 'function' ? factory() : factory;
  return { callstats, backend };
}

/** callstats.initialize() wrapped in a promise of its csInitCallback's first answer. */
export function initialize(callstats, { appId = '123456789', appSecret = 'c2VjcmV0LWZvci10ZXN0cw==', userId = 'shim-user', configParams = {}, onStats } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('callstats initialize: no csInitCallback')), 10000);
    const ret = callstats.initialize(
      appId,
      appSecret,
      userId,
      (status, msg) => {
        clearTimeout(timer);
        if (status === 'success') resolve(msg);
        else reject(new Error(`callstats initialize: ${status} ${msg}`));
      },
      onStats,
      configParams,
    );
    if (ret?.status !== 'success') {
      clearTimeout(timer);
      reject(new Error(`callstats initialize returned ${JSON.stringify(ret)}`));
    }
  });
}

/** Silences callstats' console chatter unless SHIM_TEST_VERBOSE is set. */
export function quietConsole() {
  if (process.env.SHIM_TEST_VERBOSE) return () => {};
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
  const captured = [];
  for (const k of Object.keys(saved)) console[k] = (...args) => captured.push([k, ...args]);
  const restore = () => Object.assign(console, saved);
  restore.captured = captured;
  return restore;
}
