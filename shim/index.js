// @rtp-middlebox/peerconnection-shim
//
// A read-only, duck-typed RTCPeerConnection whose state and getStats() come
// from rtp-middlebox's event stream (GET /v1/stream, Server-Sent Events).
// Analytics SDKs written for browsers (callstats.js and the like) can monitor
// a relayed RTP session through it as if it were a local peer connection.
//
// Dependency-free ES module; needs `fetch` with a streaming body (node >= 18,
// every current browser) plus EventTarget/Event (node >= 15, browsers).

/**
 * Proxy `error` reasons → the `fnName` to pass to callstats'
 * `reportError(pc, conferenceID, fnName, err)`. The names are callstats.js's
 * `webRTCFunctions` (callstats-js 3.73.16):
 * - `iceConnectionFailure`: the media path itself is gone (STUN consent lost,
 *   upstream unreachable). callstats turns it into an `iceFailed` event
 *   (`/events/ice/status`) once the fabric was set up, else `fabricSetupFailed`
 *   with reason `IceConnectionFailure`.
 * - `applicationLog`: everything the path survives or that is not a transport
 *   failure (session idled out, SRTCP authentication failures). callstats sends
 *   it as an `applicationErrorLog` event (`/events/app/logs`) — only when its
 *   auth token lists `applicationErrorLog` among the ingested events.
 * Unknown reasons map to `applicationLog`.
 */
export const CALLSTATS_FUNCTION_FOR_REASON = Object.freeze({
  'consent-lost': 'iceConnectionFailure',
  'upstream-unreachable': 'iceConnectionFailure',
  idle: 'applicationLog',
  'srtcp-auth-failure': 'applicationLog',
});

/** callstats `reportError` fnName for a proxy error reason (see the table above). */
export function callstatsFunctionFor(reason) {
  return Object.prototype.hasOwnProperty.call(CALLSTATS_FUNCTION_FOR_REASON, reason)
    ? CALLSTATS_FUNCTION_FOR_REASON[reason]
    : 'applicationLog';
}

const ICE_STATES = new Set(['new', 'checking', 'connected', 'completed', 'disconnected', 'failed', 'closed']);
const CONNECTION_STATES = new Set(['new', 'connecting', 'connected', 'disconnected', 'failed', 'closed']);
const SIGNALING_STATES = new Set([
  'stable',
  'have-local-offer',
  'have-remote-offer',
  'have-local-pranswer',
  'have-remote-pranswer',
  'closed',
]);

/** RTCPeerConnectionState implied by an RTCIceConnectionState (used when the proxy sends none). */
export function connectionStateFromIce(ice) {
  switch (ice) {
    case 'checking':
      return 'connecting';
    case 'connected':
    case 'completed':
      return 'connected';
    case 'new':
    case 'disconnected':
    case 'failed':
    case 'closed':
      return ice;
    default:
      return undefined;
  }
}

/**
 * Maplike RTCStatsReport: id → stats object (W3C webrtc-stats dictionaries,
 * spec units, proxy-only members prefixed `x-`). Values are copies: callers
 * may mutate them without touching the shim's state.
 */
export class ProxyStatsReport {
  #map;

  constructor(stats = []) {
    this.#map = new Map();
    for (const s of stats) {
      if (s && typeof s === 'object' && typeof s.id === 'string') this.#map.set(s.id, { ...s });
    }
  }

  get size() {
    return this.#map.size;
  }

  get(id) {
    return this.#map.get(id);
  }

  has(id) {
    return this.#map.has(id);
  }

  forEach(callback, thisArg) {
    for (const [k, v] of this.#map) callback.call(thisArg, v, k, this);
  }

  entries() {
    return this.#map.entries();
  }

  keys() {
    return this.#map.keys();
  }

  values() {
    return this.#map.values();
  }

  [Symbol.iterator]() {
    return this.#map.entries();
  }

  get [Symbol.toStringTag]() {
    return 'RTCStatsReport';
  }
}

/**
 * Incremental parser for the `text/event-stream` format (WHATWG HTML
 * "server-sent events"): feed decoded text with push(); it returns the events
 * completed by that text as `{event, data, id}` (event defaults to "message").
 * A `retry` field is reported through `onRetry`.
 */
export class SseParser {
  #buf = '';
  #data = [];
  #event = '';
  #sawData = false;
  #first = true;
  lastEventId = '';

  constructor({ onRetry } = {}) {
    this.onRetry = onRetry;
  }

  push(text) {
    if (this.#first && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.#first = false;
    }
    this.#buf += text;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buf);
      if (!m) break;
      // A trailing CR may be the first half of CRLF: wait for more text.
      if (m[0] === '\r' && m.index === this.#buf.length - 1) break;
      const line = this.#buf.slice(0, m.index);
      this.#buf = this.#buf.slice(m.index + m[0].length);
      const ev = this.#line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  #line(line) {
    if (line === '') {
      if (!this.#sawData) {
        this.#event = '';
        return null;
      }
      const ev = { event: this.#event || 'message', data: this.#data.join('\n'), id: this.lastEventId };
      this.#data = [];
      this.#event = '';
      this.#sawData = false;
      return ev;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        this.#sawData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value) && this.onRetry) this.onRetry(Number(value));
        break;
      default:
        break;
    }
    return null;
  }
}

/**
 * Reconnection delay before attempt `attempt` (0-based): exponential growth
 * from initialMs, capped at maxMs, minus up to `jitter` (0..1) of it at random
 * so that many shims do not reconnect in lockstep.
 */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 30000, jitter = 0.5 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  const j = Math.min(Math.max(jitter, 0), 1);
  return Math.round(base * (1 - j * random()));
}

/**
 * Report order for SDKs that key per-stream state by SSRC and direction only.
 * The proxy reports an SSRC it relays twice, as `inbound-rtp` (its own
 * counters) and as `remote-inbound-rtp` (the receiver's RRs); callstats.js
 * files both under the same inbound monitor and keeps the last one it sees, and
 * a remote-inbound-rtp (no packetsReceived) then reads as 100% interval loss.
 * Putting such inbound-rtp entries last keeps the SDK's loss and bitrate on
 * the proxy's counters. Values are untouched; only the (unspecified) maplike
 * order changes. Stable otherwise.
 */
export function sdkOrder(stats) {
  const remote = new Set(stats.filter((s) => s.type === 'remote-inbound-rtp').map((s) => s.ssrc));
  const last = (s) => s.type === 'inbound-rtp' && remote.has(s.ssrc);
  return [...stats.filter((s) => !last(s)), ...stats.filter(last)];
}

function makeEvent(type, fields) {
  const ev = new Event(type);
  for (const [k, v] of Object.entries(fields || {})) {
    Object.defineProperty(ev, k, { value: v, enumerable: true });
  }
  return ev;
}

function description(d) {
  if (!d || typeof d !== 'object' || typeof d.type !== 'string') return null;
  const sdp = typeof d.sdp === 'string' ? d.sdp : '';
  const type = d.type;
  return Object.freeze({ type, sdp, toJSON: () => ({ type, sdp }) });
}

const EVENT_HANDLERS = [
  'icecandidate',
  'icecandidateerror',
  'iceconnectionstatechange',
  'icegatheringstatechange',
  'signalingstatechange',
  'negotiationneeded',
  'track',
  'connectionstatechange',
  'datachannel',
  'proxyerror',
  'streamerror',
];

/**
 * The fake RTCPeerConnection. Construct with
 * `new ProxyPeerConnection({ streamUrl, sessionId, token?, fetch?, reconnect? })`:
 * - streamUrl: the proxy's `GET /v1/stream` URL (http://host:port/v1/stream).
 * - sessionId: the proxy session to mirror (see GET /v1/sessions).
 * - token: bearer token when the proxy's `[api] token` is set.
 * - fetch: a fetch implementation (default: globalThis.fetch).
 * - reconnect: { initialMs = 500, maxMs = 30000, jitter = 0.5 }.
 * - sessionsUrl: where to re-read the session's state after each (re)connect
 *   (default: `sessions` next to streamUrl, i.e. /v1/sessions); `resync: false`
 *   turns that off.
 * - closeGraceMs: how long the stream stays open after the session closed, for
 *   events sent along with the end (default 1000).
 * - preserveOrder: keep the proxy's order of stats objects in getStats()
 *   instead of sdkOrder() (default false).
 */
export class ProxyPeerConnection extends EventTarget {
  #opts;
  #fetch;
  #handlers = new Map();
  #report = [];
  #reportTimestamp = null;
  #closed = false;
  #sessionEnded = false;
  #abort = null;
  #sleep = null;
  #attempt = 0;
  #stateEpoch = 0;
  #initialMs;
  #graceTimer = null;

  signalingState = 'stable';
  iceConnectionState = 'new';
  iceGatheringState = 'new';
  connectionState = 'new';
  localDescription = null;
  remoteDescription = null;
  canTrickleIceCandidates = null;
  sctp = null;
  /** The last proxy `error` event's payload (reason, message, timestamp, callstatsFunction) or null. */
  lastProxyError = null;
  /** Whether the event stream is currently open. */
  streamConnected = false;
  /** How many times the event stream was opened. */
  streamConnects = 0;

  constructor(options = {}) {
    super();
    const { streamUrl, sessionId } = options;
    if (!streamUrl) throw new TypeError('ProxyPeerConnection: streamUrl is required');
    if (!sessionId) throw new TypeError('ProxyPeerConnection: sessionId is required');
    const fetchImpl = options.fetch || globalThis.fetch;
    if (typeof fetchImpl !== 'function') throw new TypeError('ProxyPeerConnection: no fetch implementation');
    // Called unbound: a browser's fetch throws "Illegal invocation" when called
    // as a method of another object.
    this.#fetch = (...args) => fetchImpl(...args);
    this.#opts = {
      streamUrl: String(streamUrl),
      sessionId: String(sessionId),
      token: options.token,
      reconnect: { initialMs: 500, maxMs: 30000, jitter: 0.5, ...(options.reconnect || {}) },
      random: options.random || Math.random,
      resync: options.resync !== false,
      sessionsUrl: options.sessionsUrl,
      closeGraceMs: options.closeGraceMs ?? 1000,
      preserveOrder: options.preserveOrder === true,
    };
    this.#initialMs = this.#opts.reconnect.initialMs;
    this.sessionId = this.#opts.sessionId;
    for (const type of EVENT_HANDLERS) {
      Object.defineProperty(this, `on${type}`, {
        configurable: true,
        enumerable: false,
        get: () => this.#handlers.get(type)?.fn ?? null,
        set: (fn) => {
          const old = this.#handlers.get(type);
          if (old) this.removeEventListener(type, old.listener);
          this.#handlers.delete(type);
          if (typeof fn === 'function') {
            const listener = (ev) => fn.call(this, ev);
            this.#handlers.set(type, { fn, listener });
            this.addEventListener(type, listener);
          }
        },
      });
    }
    this.#run();
  }

  // ---- what callstats.js and similar SDKs read --------------------------------

  /**
   * - `getStats()` / `getStats(selector)`: a promise of the latest report
   *   (ProxyStatsReport). A selector (MediaStreamTrack-ish) cannot narrow a
   *   relayed session's report, so the whole report is returned.
   * - `getStats(callback)`: Chrome's legacy callback form; answered
   *   asynchronously with `{ result: () => [] }` (no legacy stats exist).
   *   callstats.js waits for this answer after every poll unless it was
   *   initialised with `collectLegacyStats: false`.
   * - `getStats(selector, success, failure)`: the old Firefox/Temasys form;
   *   `success` gets the standard report.
   */
  getStats(selector, success, failure) {
    if (typeof selector === 'function') {
      const cb = selector;
      queueMicrotask(() => cb({ result: () => [] }));
      return Promise.resolve();
    }
    const report = this.#makeReport();
    if (typeof success === 'function') {
      queueMicrotask(() => success(report));
      void failure;
    }
    return Promise.resolve(report);
  }

  /** The most recent `stats` event's report as an array (timestamp: `reportTimestamp`). */
  get latestReport() {
    return this.#report.map((s) => ({ ...s }));
  }

  /** Timestamp (ms since epoch) of the latest report, or null before the first one. */
  get reportTimestamp() {
    return this.#reportTimestamp;
  }

  createOffer() {
    return Promise.reject(this.#readOnly('createOffer'));
  }

  createAnswer() {
    return Promise.reject(this.#readOnly('createAnswer'));
  }

  setLocalDescription() {
    return Promise.reject(this.#readOnly('setLocalDescription'));
  }

  setRemoteDescription() {
    return Promise.reject(this.#readOnly('setRemoteDescription'));
  }

  addIceCandidate() {
    return Promise.resolve();
  }

  getSenders() {
    return [];
  }

  getReceivers() {
    return [];
  }

  getTransceivers() {
    return [];
  }

  getConfiguration() {
    return {
      iceServers: [],
      iceTransportPolicy: 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      sdpSemantics: 'unified-plan',
    };
  }

  get currentLocalDescription() {
    return this.localDescription;
  }

  get currentRemoteDescription() {
    return this.remoteDescription;
  }

  get pendingLocalDescription() {
    return null;
  }

  get pendingRemoteDescription() {
    return null;
  }

  /**
   * Stops mirroring: closes the event stream and sets every state to
   * "closed". Like RTCPeerConnection.close(), fires no state events.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
    this.signalingState = 'closed';
    this.iceConnectionState = 'closed';
    this.connectionState = 'closed';
  }

  // ---- stream handling --------------------------------------------------------

  #readOnly(what) {
    const err = new Error(`${what}: ProxyPeerConnection mirrors a proxy session and cannot negotiate`);
    err.name = 'InvalidStateError';
    return err;
  }

  #makeReport() {
    return new ProxyStatsReport(this.#opts.preserveOrder ? this.#report : sdkOrder(this.#report));
  }

  #stop() {
    clearTimeout(this.#graceTimer);
    this.#abort?.abort();
    this.#abort = null;
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.resolve();
      this.#sleep = null;
    }
  }

  #headers(extra) {
    const h = { ...(extra || {}) };
    if (this.#opts.token) h.Authorization = `Bearer ${this.#opts.token}`;
    return h;
  }

  #streamUrl() {
    const u = new URL(this.#opts.streamUrl, globalThis.location?.href);
    if (!u.searchParams.has('session')) u.searchParams.set('session', this.#opts.sessionId);
    return u.toString();
  }

  async #run() {
    const onRetry = (ms) => {
      this.#initialMs = Math.min(ms, this.#opts.reconnect.maxMs);
    };
    let lastEventId = '';
    while (!this.#stopped()) {
      const ac = new AbortController();
      this.#abort = ac;
      let sawEvent = false;
      try {
        const headers = this.#headers({ Accept: 'text/event-stream', 'Cache-Control': 'no-cache' });
        if (lastEventId) headers['Last-Event-ID'] = lastEventId;
        const res = await this.#fetch(this.#streamUrl(), { headers, signal: ac.signal, cache: 'no-store' });
        if (!res.ok) {
          let body = '';
          try {
            body = await res.text();
          } catch {
            // the status says enough
          }
          throw Object.assign(new Error(`event stream answered HTTP ${res.status} ${body}`.trim()), {
            status: res.status,
          });
        }
        if (!res.body) throw new Error('event stream has no body');
        this.streamConnected = true;
        this.streamConnects += 1;
        const epoch = this.#stateEpoch;
        if (this.#opts.resync) this.#resync(epoch);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        const parser = new SseParser({ onRetry });
        parser.lastEventId = lastEventId;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
            if (!sawEvent) {
              sawEvent = true;
              this.#attempt = 0;
            }
            if (this.#closed) break;
            this.#handle(ev);
          }
          lastEventId = parser.lastEventId;
          if (this.#closed) break;
        }
        try {
          reader.cancel().catch(() => {});
        } catch {
          // already released
        }
        if (!this.#stopped()) this.#streamError({ message: 'event stream ended' });
      } catch (err) {
        if (this.#stopped()) break;
        this.#streamError({ message: String(err?.message || err), status: err?.status });
      } finally {
        this.streamConnected = false;
      }
      if (this.#stopped()) break;
      const delay = backoffDelay(
        this.#attempt,
        { ...this.#opts.reconnect, initialMs: this.#initialMs },
        this.#opts.random,
      );
      this.#attempt += 1;
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          this.#sleep = null;
          resolve();
        }, delay);
        this.#sleep = { timer, resolve };
      });
    }
  }

  /** True once mirroring should stop (close() called or the session ended). */
  #stopped() {
    return this.#closed || this.#sessionEnded;
  }

  #streamError(fields) {
    this.dispatchEvent(makeEvent('streamerror', { ...fields, attempt: this.#attempt }));
  }

  /** After a (re)connect, re-read the session's state: transitions may have happened meanwhile. */
  async #resync(epoch) {
    let sessions;
    try {
      const url = this.#opts.sessionsUrl || new URL('sessions', new URL(this.#opts.streamUrl, globalThis.location?.href)).toString();
      const res = await this.#fetch(url, { headers: this.#headers({ Accept: 'application/json' }) });
      if (!res.ok) return;
      sessions = await res.json();
    } catch {
      return;
    }
    // A state event that arrived meanwhile is newer than this answer.
    if (epoch !== this.#stateEpoch || this.#stopped() || !Array.isArray(sessions)) return;
    const s = sessions.find((x) => x && x.id === this.#opts.sessionId);
    if (s) {
      // Proxies that publish the stream's own vocabulary are taken at their word.
      const ice = ICE_STATES.has(s.iceConnectionState)
        ? s.iceConnectionState
        : s.state === 'active'
          ? 'connected'
          : 'disconnected';
      if (ice !== this.iceConnectionState) this.#applyState({ iceConnectionState: ice });
    } else if (this.iceConnectionState !== 'new') {
      this.#applyState({ iceConnectionState: 'closed', signalingState: 'closed' });
    }
  }

  #handle(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!data || typeof data !== 'object') return;
    if (data.session !== undefined && String(data.session) !== this.#opts.sessionId) return;
    switch (ev.event) {
      case 'stats':
        if (Array.isArray(data.report)) {
          this.#report = data.report.filter((s) => s && typeof s === 'object' && typeof s.id === 'string');
          const ts = this.#report.reduce((m, s) => (typeof s.timestamp === 'number' && s.timestamp > m ? s.timestamp : m), -Infinity);
          this.#reportTimestamp = Number.isFinite(ts) ? ts : Date.now();
        }
        break;
      case 'state':
        this.#stateEpoch += 1;
        this.#applyState(data);
        break;
      case 'error':
        this.#applyError(data);
        break;
      case 'description':
        this.#applyDescription(data);
        break;
      default:
        break;
    }
  }

  #applyState(data) {
    const fire = [];
    const ice = ICE_STATES.has(data.iceConnectionState) ? data.iceConnectionState : undefined;
    let conn = CONNECTION_STATES.has(data.connectionState) ? data.connectionState : undefined;
    if (conn === undefined && ice !== undefined) conn = connectionStateFromIce(ice);
    const sig = SIGNALING_STATES.has(data.signalingState) ? data.signalingState : undefined;

    if (ice !== undefined && ice !== 'new' && ice !== 'closed' && this.iceGatheringState !== 'complete') {
      this.iceGatheringState = 'complete';
      fire.push(['icegatheringstatechange']);
      // End-of-candidates, as a real connection signals when gathering completes.
      fire.push(['icecandidate', { candidate: null }]);
    }
    if (ice !== undefined && ice !== this.iceConnectionState) {
      this.iceConnectionState = ice;
      fire.push(['iceconnectionstatechange']);
    }
    if (conn !== undefined && conn !== this.connectionState) {
      this.connectionState = conn;
      fire.push(['connectionstatechange']);
    }
    if (sig !== undefined && sig !== this.signalingState) {
      this.signalingState = sig;
      fire.push(['signalingstatechange']);
    }
    // Every property is current before the first handler runs.
    for (const [type, fields] of fire) this.dispatchEvent(makeEvent(type, fields));
    if ((ice === 'closed' || conn === 'closed') && !this.#sessionEnded) {
      // A proxy session that ended never comes back: stop listening, after a
      // grace period for events the proxy sends along with the end (an `error`
      // with reason "idle", say). No reconnection from here on.
      this.#sessionEnded = true;
      this.#graceTimer = setTimeout(() => this.#stop(), this.#opts.closeGraceMs);
    }
  }

  #applyError(data) {
    const reason = typeof data.reason === 'string' ? data.reason : 'unknown';
    const message = typeof data.message === 'string' ? data.message : reason;
    const timestamp = typeof data.timestamp === 'number' ? data.timestamp : Date.now();
    const callstatsFunction = callstatsFunctionFor(reason);
    const error = new Error(message);
    error.name = `ProxyError(${reason})`;
    // The failure happened in the proxy: no JS frames worth reporting.
    error.stack = `${error.name}: ${message}`;
    this.lastProxyError = { reason, message, timestamp, callstatsFunction };
    this.dispatchEvent(
      makeEvent('proxyerror', { reason, message, timestamp, callstatsFunction, error, session: this.#opts.sessionId }),
    );
  }

  #applyDescription(data) {
    if ('localDescription' in data) this.localDescription = description(data.localDescription);
    if ('remoteDescription' in data) this.remoteDescription = description(data.remoteDescription);
  }
}

export default ProxyPeerConnection;
