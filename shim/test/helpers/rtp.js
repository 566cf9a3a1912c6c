// Just enough RTP/RTCP (RFC 3550) for the live tests: packet builders, a
// parser for the RTCP packets the tests exchange, and a receiver that keeps
// the A.1/A.3/A.8 statistics an RR reports.

export const NTP_UNIX_OFFSET = 2208988800;

/** 64-bit NTP timestamp of a wall-clock time (ms since the Unix epoch) as [msw, lsw]. */
export function ntpFromUnixMs(ms) {
  const secs = Math.floor(ms / 1000);
  const frac = Math.floor(((ms - secs * 1000) / 1000) * 2 ** 32);
  return [(secs + NTP_UNIX_OFFSET) >>> 0, frac >>> 0];
}

/** Middle 32 bits of an NTP timestamp (LSR / compact NTP). */
export function compactNtp(msw, lsw) {
  return (((msw & 0xffff) << 16) | (lsw >>> 16)) >>> 0;
}

export function rtpPacket({ pt = 0, seq, timestamp, ssrc, marker = false, payload }) {
  const body = payload ?? Buffer.alloc(160, 0xff); // 20 ms of PCMU silence
  const b = Buffer.alloc(12 + body.length);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | (pt & 0x7f);
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(timestamp >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  body.copy(b, 12);
  return b;
}

export function senderReport({ ssrc, ntp: [msw, lsw], rtpTimestamp, packetCount, octetCount }) {
  const b = Buffer.alloc(28);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b.writeUInt32BE(msw >>> 0, 8);
  b.writeUInt32BE(lsw >>> 0, 12);
  b.writeUInt32BE(rtpTimestamp >>> 0, 16);
  b.writeUInt32BE(packetCount >>> 0, 20);
  b.writeUInt32BE(octetCount >>> 0, 24);
  return b;
}

/** RR with one report block. fraction: 0..255; cumulativeLost: signed 24-bit. */
export function receiverReport({ ssrc, block }) {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(ssrc >>> 0, 4);
  b.writeUInt32BE(block.ssrc >>> 0, 8);
  const lost = block.cumulativeLost & 0xffffff;
  b.writeUInt32BE(((block.fraction & 0xff) << 24 | lost) >>> 0, 12);
  b.writeUInt32BE(block.extHighestSeq >>> 0, 16);
  b.writeUInt32BE(block.jitter >>> 0, 20);
  b.writeUInt32BE(block.lsr >>> 0, 24);
  b.writeUInt32BE(block.dlsr >>> 0, 28);
  return b;
}

/** RTP/RTCP demux on one port (RFC 5761): RTCP packet types 192..223 in byte 1. */
export function isRtcp(buf) {
  return buf.length >= 8 && buf[1] >= 192 && buf[1] <= 223;
}

/** Parses the SRs and RRs of a (compound) RTCP datagram. */
export function parseRtcp(buf) {
  const out = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const rc = buf[off] & 0x1f;
    const pt = buf[off + 1];
    const len = (buf.readUInt16BE(off + 2) + 1) * 4;
    if (off + len > buf.length) break;
    if (pt === 200 && len >= 28) {
      out.push({
        type: 'sr',
        ssrc: buf.readUInt32BE(off + 4),
        ntp: [buf.readUInt32BE(off + 8), buf.readUInt32BE(off + 12)],
        rtpTimestamp: buf.readUInt32BE(off + 16),
        packetCount: buf.readUInt32BE(off + 20),
        octetCount: buf.readUInt32BE(off + 24),
        rc,
      });
    } else if (pt === 201) {
      out.push({ type: 'rr', ssrc: buf.readUInt32BE(off + 4), rc });
    }
    off += len;
  }
  return out;
}

/** RFC 3550 receiver state of one source (A.1 sequence extension, A.3 loss, A.8 jitter). */
export class ReceiverStats {
  constructor(clockRate) {
    this.clockRate = clockRate;
    this.baseSeq = null;
    this.maxSeq = 0;
    this.cycles = 0;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
    this.transit = null;
    this.jitter = 0; // timestamp units, as a float
  }

  onPacket(seq, rtpTimestamp, arrivalMs) {
    if (this.baseSeq === null) {
      this.baseSeq = seq;
      this.maxSeq = seq;
    } else {
      const delta = (seq - this.maxSeq) & 0xffff;
      if (delta > 0 && delta < 0x8000) {
        if (seq < this.maxSeq) this.cycles += 0x10000;
        this.maxSeq = seq;
      }
    }
    this.received += 1;
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - rtpTimestamp;
    if (this.transit !== null) {
      const d = Math.abs(transit - this.transit);
      this.jitter += (d - this.jitter) / 16;
    }
    this.transit = transit;
  }

  get extHighestSeq() {
    return this.cycles + this.maxSeq;
  }

  get expected() {
    return this.extHighestSeq - this.baseSeq + 1;
  }

  get cumulativeLost() {
    return this.expected - this.received;
  }

  /** Fraction lost since the previous call, as the 8-bit RR field (A.3). */
  takeFraction() {
    const expectedInterval = this.expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = this.expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    if (expectedInterval === 0 || lostInterval <= 0) return 0;
    return Math.floor((lostInterval << 8) / expectedInterval);
  }
}
