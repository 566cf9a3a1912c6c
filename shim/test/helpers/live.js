// Live-test plumbing: runs the real rtp-middlebox binary, a node "upstream"
// that answers SRs with RRs, and a node "sender" that streams PCMU with a
// known loss and jitter pattern. Everything on 127.0.0.1 with OS-chosen ports.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  rtpPacket,
  senderReport,
  receiverReport,
  parseRtcp,
  isRtcp,
  ntpFromUnixMs,
  compactNtp,
  ReceiverStats,
} from './rtp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SHIM_DIR = path.resolve(here, '..', '..');

export function proxyBinary() {
  return path.resolve(SHIM_DIR, process.env.RTP_MIDDLEBOX_BIN || '../target/debug/rtp-middlebox');
}

/**
 * `skip` option for tests that need the binary: a reason string when it is
 * missing, unless SHIM_REQUIRE_BINARY=1 (scripts/test-shim.sh) makes them run
 * and fail instead.
 */
export function skipWithoutBinary() {
  if (haveProxyBinary() || process.env.SHIM_REQUIRE_BINARY === '1') return false;
  return `no proxy binary at ${proxyBinary()} (set RTP_MIDDLEBOX_BIN or cargo build)`;
}

export function haveProxyBinary() {
  try {
    fs.accessSync(proxyBinary(), fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function bindUdp() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/**
 * Starts the proxy in front of `upstreamPort`. Resolves with
 * { relayPort, apiBase, streamUrl, stop(), stderr() } once both listen lines
 * were printed.
 */
export async function startProxy({
  upstreamPort,
  streamIntervalMs = 200,
  idleTimeoutSecs = 3,
  consentTimeoutSecs,
  token,
  timeoutMs = 10000,
}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtp-middlebox-shim-'));
  const config = path.join(dir, 'proxy.toml');
  fs.writeFileSync(
    config,
    [
      '[[relay]]',
      'listen = "127.0.0.1:0"',
      `upstream = "127.0.0.1:${upstreamPort}"`,
      'rtcp = "forward"',
      'upstream_bind = "127.0.0.1"',
      '',
      '[api]',
      'listen = "127.0.0.1:0"',
      `stream_interval_ms = ${streamIntervalMs}`,
      ...(token ? [`token = "${token}"`] : []),
      ...(consentTimeoutSecs ? [`consent_timeout_secs = ${consentTimeoutSecs}`] : []),
      '',
      '[limits]',
      `idle_timeout_secs = ${idleTimeoutSecs}`,
      '',
    ].join('\n'),
  );
  const child = spawn(
    proxyBinary(),
    ['run', '--config', config, '--api-listen', '127.0.0.1:0', '--workers', '1', '--quiet'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Never outlive the test process, even if a test dies before its cleanup.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stderr = '';
  let exited = null;
  const exitedP = new Promise((resolve) => child.once('exit', (code, signal) => resolve((exited = { code, signal }))));
  const ready = new Promise((resolve, reject) => {
    let relayPort;
    let apiBase;
    const timer = setTimeout(() => reject(new Error(`proxy did not start in ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      relayPort ??= stderr.match(/relay listening on 127\.0\.0\.1:(\d+)/)?.[1];
      apiBase ??= stderr.match(/api listening on (http:\/\/127\.0\.0\.1:\d+)\//)?.[1];
      if (relayPort && apiBase) {
        clearTimeout(timer);
        resolve({ relayPort: Number(relayPort), apiBase });
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exitedP.then((x) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited (${JSON.stringify(x)}):\n${stderr}`));
    });
  });
  const stop = async () => {
    process.off('exit', killOnExit);
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitedP;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { relayPort, apiBase } = await ready;
    return { relayPort, apiBase, streamUrl: `${apiBase}/v1/stream`, stop, stderr: () => stderr, pid: child.pid };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The upstream (an SFU stand-in): an RFC 3550 receiver that answers every SR
 * with an RR after `holdMs`, claiming a DLSR of only `claimedDelayMs`, so the
 * proxy measures an RTT of about holdMs - claimedDelayMs on a loopback path.
 */
export async function startUpstream({ ssrc = 0x5eed0001, clockRate = 8000, holdMs = 30, claimedDelayMs = 10 } = {}) {
  const sock = await bindUdp();
  const sources = new Map();
  const rrsSent = [];
  const srsSeen = [];
  const timers = new Set();
  let closed = false;
  sock.on('message', (msg, rinfo) => {
    const now = Date.now();
    if (!isRtcp(msg)) {
      if (msg.length < 12) return;
      const src = msg.readUInt32BE(8);
      if (!sources.has(src)) sources.set(src, new ReceiverStats(clockRate));
      sources.get(src).onPacket(msg.readUInt16BE(2), msg.readUInt32BE(4), now);
      return;
    }
    for (const p of parseRtcp(msg)) {
      if (p.type !== 'sr') continue;
      srsSeen.push({ ...p, at: now });
      const stats = sources.get(p.ssrc);
      if (!stats) continue;
      const t = setTimeout(() => {
        timers.delete(t);
        const block = {
          ssrc: p.ssrc,
          fraction: stats.takeFraction(),
          cumulativeLost: stats.cumulativeLost,
          extHighestSeq: stats.extHighestSeq,
          jitter: Math.round(stats.jitter),
          lsr: compactNtp(p.ntp[0], p.ntp[1]),
          dlsr: Math.round((claimedDelayMs / 1000) * 65536),
        };
        rrsSent.push({ ...block, at: Date.now() });
        sock.send(receiverReport({ ssrc, block }), rinfo.port, rinfo.address);
      }, holdMs);
      timers.add(t);
    }
  });
  return {
    port: sock.address().port,
    sources,
    rrsSent,
    srsSeen,
    close() {
      for (const t of timers) clearTimeout(t);
      if (!closed) sock.close();
      closed = true;
    },
  };
}

/**
 * The client: PCMU (PT 0, 8000 Hz) in 20 ms packets of 160 timestamp units.
 * Slot i is lost on the client leg when `skip(i)` (a deterministic loss
 * pattern: the sender sends it, the network drops it, so the SRs' packet
 * count includes it, RFC 3550 §6.4.1) and is sent `offsetMs(i)` late (a
 * deterministic arrival-jitter pattern). SRs go out at the given times (ms
 * after start).
 */
export async function startSender({
  port,
  ssrc = 0x0c11e000,
  slots = 171,
  skip = (i) => i % 10 === 9,
  offsetMs = (i) => (i % 2) * 4,
  srAtMs = [500, 1500, 2500],
  seq0 = 1000,
  ts0 = 160000,
} = {}) {
  const sock = await bindUdp();
  const start = Date.now();
  let sentPackets = 0;
  let sentOctets = 0;
  let lastSentAt = null;
  let firstSentAt = null;
  const received = [];
  sock.on('message', (msg) => received.push(msg));
  let closed = false;
  const timers = new Set();
  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, Math.max(0, start + ms - Date.now()));
    timers.add(t);
  };
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  let lastSlot = slots - 1;
  while (lastSlot > 0 && skip(lastSlot)) lastSlot -= 1;
  for (let i = 0; i < slots; i++) {
    later(i * 20 + offsetMs(i), () => {
      // Counted as sent either way; a skipped slot is dropped on the wire.
      sentPackets += 1;
      sentOctets += 160;
      if (skip(i)) return;
      const pkt = rtpPacket({ seq: seq0 + i, timestamp: ts0 + 160 * i, ssrc, marker: i === 0 });
      sock.send(pkt, port, '127.0.0.1');
      lastSentAt = Date.now();
      firstSentAt ??= lastSentAt;
      if (i === lastSlot) resolveDone();
    });
  }
  for (const at of srAtMs) {
    later(at, () => {
      const now = Date.now();
      const sr = senderReport({
        ssrc,
        ntp: ntpFromUnixMs(now),
        rtpTimestamp: ts0 + Math.round(((now - start) * 8000) / 1000),
        packetCount: sentPackets,
        octetCount: sentOctets,
      });
      sock.send(sr, port, '127.0.0.1');
    });
  }
  // Loss after the last packet sent is not detectable: count skips before it.
  const lost = Array.from({ length: lastSlot }, (_, i) => i).filter(skip).length;
  return {
    ssrc,
    start,
    done,
    expected: { slots, lost, received: lastSlot + 1 - lost },
    get sentPackets() {
      return sentPackets;
    },
    get lastSentAt() {
      return lastSentAt;
    },
    get firstSentAt() {
      return firstSentAt;
    },
    received,
    /** Sends any datagram from the sender's socket (same 5-tuple, same session). */
    send(buf) {
      if (!closed) sock.send(buf, port, '127.0.0.1');
    },
    close() {
      for (const t of timers) clearTimeout(t);
      if (!closed) sock.close();
      closed = true;
    },
  };
}

export async function getJson(url, token) {
  const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Polls GET /v1/sessions until a session exists; resolves with the first one. */
export async function waitForSession(apiBase, { timeoutMs = 3000, token } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const sessions = await getJson(`${apiBase}/v1/sessions`, token);
    if (sessions.length > 0) return sessions[0];
    if (Date.now() > end) throw new Error('no session appeared');
    await new Promise((r) => setTimeout(r, 20));
  }
}
