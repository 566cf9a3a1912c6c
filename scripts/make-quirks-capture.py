#!/usr/bin/env python3
"""Writes tests/data/synthetic-ws-quirks.pcap: four tiny hand-built RTP streams
that exercise the corners of Wireshark 4.0's RTP stream analysis (see
tests/data/README.md). Byte-deterministic: no clock, fixed PRNG seed.

  port 6000  SSRC 0x0000000A  PCMU: a packet OLDER than the first captured one
             arrives late (seq 99 after 100), a reorder (104 before 103) and a
             duplicate (105 twice): tshark's Lost is negative (-2).
  port 6002  SSRC 0x0000000B  JPEG (static PT 26, 90 kHz), video-like frames
             with marker bits; seq 499 arrives right after the first packet 500
             with the SAME timestamp, so it is "in time" and below the first
             seq: tshark counts a sequence cycle and reports Lost = 65535.
  port 6004  SSRC 0x0000000C  PCMU across the 65535 -> 0 wrap, RTP timestamp
             wrapping 2^32 too, with a loss (0, 6), a duplicate (2), a comfort
             noise packet (PT 13, seq 3) and a late pre-wrap packet (65535 after
             1): the late packet resets Wireshark's wrap flag, so the next
             packet counts a second cycle and Lost = 65537.
  port 6006  SSRC 0x0000000D  PCMU whose third packet's timestamp is 2^31 + 320
             ticks after the first: "not in time sequence" (excluded from
             delta/jitter statistics and from the jitter estimator).

Usage: scripts/make-quirks-capture.py OUT.pcap
"""
import random
import struct
import sys


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def frame(sport, dport, payload, ident):
    src = dst = bytes([127, 0, 0, 1])
    udp_len = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    c = checksum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, c)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + udp + payload


def rtp(pt, seq, ts, ssrc, marker=False, payload_len=160):
    head = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return head + bytes(payload_len)


def main():
    rng = random.Random(1)
    base = 1_700_000_000.0
    pkts = []
    # port 6000: (seq, frame index in 20 ms units)
    for i, (seq, k) in enumerate([(100, 0), (99, -1), (101, 1), (102, 2), (104, 4), (103, 3), (105, 5), (105, 5), (106, 6)]):
        pkts.append((base + i * 0.02 + rng.uniform(0, 0.004), 40000, 6000, rtp(0, seq, 16000 + k * 160, 0xA)))
    # port 6002: (seq, frame, marker), 90 kHz, 15 fps
    for i, (seq, f, m) in enumerate([(500, 0, False), (499, 0, False), (501, 0, True), (502, 1, False),
                                     (503, 1, True), (505, 2, True), (504, 2, False), (506, 3, True)]):
        pkts.append((base + i * 0.03 + rng.uniform(0, 0.003), 40002, 6002, rtp(26, seq, 90000 + f * 6000, 0xB, m)))
    # port 6004: (seq, 20 ms index, pt)
    for i, (seq, k, pt) in enumerate([(65533, 0, 0), (65534, 1, 0), (1, 4, 0), (65535, 2, 0), (2, 5, 0), (2, 5, 0),
                                      (3, 6, 13), (4, 7, 0), (5, 8, 0), (7, 10, 0), (8, 11, 0)]):
        pkts.append((base + i * 0.02 + rng.uniform(0, 0.005), 40004, 6004,
                     rtp(pt, seq, 4294967000 + k * 160, 0xC, payload_len=1 if pt == 13 else 160)))
    # port 6006: (seq, timestamp offset)
    for i, (seq, off) in enumerate([(10, 0), (11, 160), (12, 0x80000000 + 320), (13, 480), (14, 640)]):
        pkts.append((base + i * 0.02 + rng.uniform(0, 0.004), 40006, 6006, rtp(0, seq, 1000 + off, 0xD)))
    pkts.sort(key=lambda p: p[0])
    with open(sys.argv[1], "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (t, sport, dport, payload) in enumerate(pkts):
            fr = frame(sport, dport, payload, i)
            us = int(round(t * 1e6))
            out.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(fr), len(fr)) + fr)


if __name__ == "__main__":
    main()
