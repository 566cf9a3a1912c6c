// A stand-in for rtp-middlebox's HTTP API: GET /v1/stream (Server-Sent Events)
// and GET /v1/sessions, on an OS-chosen port on 127.0.0.1. Tests push events
// with send(), drop streams with dropAll(), and read what clients asked for in
// `requests`.
import http from 'node:http';

export class FakeProxy {
  constructor({ token, sessions = [], onStream } = {}) {
    this.token = token;
    this.sessions = sessions;
    this.onStream = onStream;
    this.requests = [];
    this.streams = new Set();
    this.server = http.createServer((req, res) => this.#serve(req, res));
    this.sockets = new Set();
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address();
    this.base = `http://127.0.0.1:${port}`;
    this.streamUrl = `${this.base}/v1/stream`;
    return this;
  }

  #serve(req, res) {
    const url = new URL(req.url, this.base);
    this.requests.push({ method: req.method, path: url.pathname, query: url.search, headers: req.headers, at: Date.now() });
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'missing or wrong bearer token' }));
      return;
    }
    if (url.pathname === '/v1/sessions') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.sessions));
      return;
    }
    if (url.pathname === '/v1/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      const stream = { req, res, query: url.searchParams };
      this.streams.add(stream);
      res.on('close', () => this.streams.delete(stream));
      if (this.onStream) this.onStream(stream, this);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found' }));
  }

  /** Writes one SSE event (data serialised as JSON) to every open stream. */
  send(event, data, { raw } = {}) {
    const text = raw ?? `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of this.streams) s.res.write(text);
  }

  /** Ends every open stream abruptly (the client sees the body end or reset). */
  dropAll() {
    for (const s of this.streams) s.res.destroy();
    this.streams.clear();
  }

  streamRequests() {
    return this.requests.filter((r) => r.path === '/v1/stream');
  }

  async stop() {
    this.dropAll();
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Polls `fn` until it returns a truthy value; rejects after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 3000, intervalMs = 10, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A W3C-shaped report like the proxy's for one audio stream. */
export function sampleReport(session, { ssrc = 1234, packetsReceived = 90, packetsLost = 10, jitter = 0.004, fractionLost = 0.1, rtt = 0.02, timestamp = Date.now() } = {}) {
  return [
    { id: 'T-client', type: 'transport', timestamp, packetsReceived, bytesReceived: packetsReceived * 172, 'x-leg': 'client' },
    { id: 'C-client-0', type: 'codec', timestamp, payloadType: 0, transportId: 'T-client', clockRate: 8000 },
    {
      id: `IT-client-${ssrc}`,
      type: 'inbound-rtp',
      timestamp,
      ssrc,
      kind: 'audio',
      transportId: 'T-client',
      codecId: 'C-client-0',
      packetsReceived,
      packetsLost,
      jitter,
      bytesReceived: packetsReceived * 160,
      'x-leg': 'client',
    },
    {
      id: `RIA-client-${ssrc}`,
      type: 'remote-inbound-rtp',
      timestamp,
      ssrc,
      kind: 'audio',
      transportId: 'T-client',
      packetsLost,
      fractionLost,
      jitter,
      roundTripTime: rtt,
      totalRoundTripTime: rtt,
      roundTripTimeMeasurements: 1,
      'x-leg': 'upstream',
      'x-session': session,
    },
  ];
}
