#!/usr/bin/env python3
"""Regenerates the hand-made fuzz seeds in fuzz/seeds/<target>/.

The seeds are committed; run this only to change them:
    python3 fuzz/seeds/make_seeds.py
Every packet is built field by field below so the bytes can be reviewed.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ RTP
def rtp(pt, seq, ts, ssrc, payload, marker=False, csrcs=(), ext=None, pad=0):
    """RFC 3550 §5.1 header; ext = (profile, body bytes) padded to words."""
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext else 0) | len(csrcs)
    out = bytes([b0, (0x80 if marker else 0) | pt]) + struct.pack("!HII", seq, ts, ssrc)
    for c in csrcs:
        out += struct.pack("!I", c)
    if ext:
        profile, body = ext
        body += b"\0" * (-len(body) % 4)
        out += struct.pack("!HH", profile, len(body) // 4) + body
    out += payload
    if pad:
        out += b"\0" * (pad - 1) + bytes([pad])
    return out


# RFC 8285 one-byte elements: id 1 audio level (1 byte), id 3 abs-send-time
# (3 bytes), id 5 transport-wide seq (2 bytes).
def one_byte(*elems):
    return b"".join(bytes([(i << 4) | (len(d) - 1)]) + d for i, d in elems)


PCMU = rtp(0, 1000, 160000, 0x11111111, b"\xff" * 160)  # 172 bytes
OPUS = rtp(111, 7, 960, 0x22222222, b"\x78" * 80, ext=(0xBEDE, one_byte((1, b"\x80"))))
VP8 = rtp(96, 4242, 900000, 0x33333333, b"\x10\x00\x00\x9d\x01\x2a" + b"\x55" * 1170, marker=True,
          ext=(0xBEDE, one_byte((3, b"\x01\x02\x03"), (5, b"\x00\x07"))))
TWO_BYTE = rtp(96, 1, 0, 0x44444444, b"\x01\x02", ext=(0x1000, b"\x05\x01\x42\x00\x07\x00"))
CSRC_PAD = rtp(96, 0x1234, 65536, 0xdeadbeef, b"\x99\x98", marker=True, csrcs=(0x01020304,),
               ext=(0xBEDE, b"\x10\xaa\x00\x21\xbb\xcc"), pad=2)

for name, p in [("pcmu-172", PCMU), ("opus-ext", OPUS), ("vp8-1200-ext", VP8),
                ("two-byte-ext", TWO_BYTE), ("csrc-ext-padding", CSRC_PAD)]:
    put("rtp", name, p)


# ------------------------------------------------------------------ RTCP
def rtcp(count, pt, body):
    """RFC 3550 §6.4.1 common header; body must be word-aligned."""
    assert len(body) % 4 == 0
    return bytes([0x80 | count, pt]) + struct.pack("!H", len(body) // 4) + body


def block(ssrc, frac, lost, ehsn, jitter, lsr, dlsr):
    return struct.pack("!IIIIII", ssrc, (frac << 24) | (lost & 0xFFFFFF), ehsn, jitter, lsr, dlsr)


NTP = 0xE8A1B2C3_40000000  # some NTP time; middle 32 bits 0xB2C34000
SR = rtcp(1, 200, struct.pack("!IQIII", 0x11111111, NTP, 160000, 50, 8000)
          + block(0x55555555, 12, 3, 0x0001_0010, 40, 0, 0))
RR_ONE = rtcp(1, 201, struct.pack("!I", 0x55555555)
              + block(0x11111111, 0, 2, 1010, 17, (NTP >> 16) & 0xFFFFFFFF, 0x8000))
RR_NEG = rtcp(1, 201, struct.pack("!I", 0x55555555) + block(0x11111111, 0, -1, 70000, 0, 0, 0))


def sdes_cname(ssrc, cname):
    chunk = struct.pack("!I", ssrc) + bytes([1, len(cname)]) + cname + b"\0"
    chunk += b"\0" * (-len(chunk) % 4)
    return rtcp(1, 202, chunk)


SDES = sdes_cname(0x11111111, b"user@example.invalid")
BYE = rtcp(1, 203, struct.pack("!I", 0x11111111) + bytes([6]) + b"leave!" + b"\0")
APP = rtcp(0, 204, struct.pack("!I", 0x11111111) + b"TEST" + b"\x01\x02\x03\x04")
NACK = rtcp(1, 205, struct.pack("!IIHH", 0x55555555, 0x33333333, 4243, 0x0005))
TWCC = rtcp(15, 205, struct.pack("!IIHHI", 0x55555555, 0x33333333, 7, 2, 0x00000100)
            + b"\x20\x02\x04\x04")
PLI = rtcp(1, 206, struct.pack("!II", 0x55555555, 0x33333333))
FIR = rtcp(4, 206, struct.pack("!IIII", 0x55555555, 0, 0x33333333, 0x01000000))
REMB = rtcp(15, 206, struct.pack("!II", 0x55555555, 0) + b"REMB" + bytes([1, 0x0A, 0x12, 0x34])
            + struct.pack("!I", 0x33333333))
XR_RRTR = rtcp(0, 207, struct.pack("!I", 0x55555555) + bytes([4, 0, 0, 2]) + struct.pack("!Q", NTP))
XR_DLRR = rtcp(0, 207, struct.pack("!I", 0x11111111) + bytes([5, 0, 0, 3])
               + struct.pack("!III", 0x55555555, (NTP >> 16) & 0xFFFFFFFF, 0x4000))
XR_OTHER = rtcp(0, 207, struct.pack("!I", 0x11111111) + bytes([7, 0, 0, 1]) + b"\0\0\0\0")
PADDED_RR = bytes([0xA0, 201, 0, 2]) + struct.pack("!I", 0x55555555) + b"\0\0\0\x04"

for name, p in [("sr-sdes", SR + SDES), ("rr-one-block", RR_ONE), ("rr-sdes-nack", RR_ONE + SDES + NACK),
                ("rr-negative-loss", RR_NEG), ("sr-sdes-bye", SR + SDES + BYE), ("app", RR_ONE + APP),
                ("psfb", RR_ONE + PLI + FIR + REMB), ("twcc", TWCC), ("xr-rrtr", RR_ONE + XR_RRTR),
                ("xr-dlrr", SR + XR_DLRR + XR_OTHER), ("padded-rr", PADDED_RR)]:
    put("rtcp", name, p)


# ------------------------------------------------------------------ STUN
COOKIE = 0x2112A442


def stun(msg_type, txid, attrs):
    body = b""
    for t, v in attrs:
        body += struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)
    return struct.pack("!HHI", msg_type, len(body), COOKIE) + txid + body


TXID = bytes(range(1, 13))
BIND_REQ = stun(0x0001, TXID, [
    (0x0006, b"abcd:efgh"),               # USERNAME
    (0x0024, struct.pack("!I", 0x6E7F1EFF)),  # PRIORITY
    (0x802A, b"\x11" * 8),                # ICE-CONTROLLING
    (0x0008, b"\x22" * 20),               # MESSAGE-INTEGRITY (not checked)
    (0x8028, b"\x33" * 4),                # FINGERPRINT (not checked)
])
XOR_ADDR = struct.pack("!BBH", 0, 1, 5000 ^ (COOKIE >> 16)) + struct.pack("!I", 0xC0000201 ^ COOKIE)
BIND_RESP = stun(0x0101, TXID, [(0x0020, XOR_ADDR), (0x0008, b"\x22" * 20)])
BIND_IND = stun(0x0011, bytes(12), [])
put("stun", "binding-request", BIND_REQ)
put("stun", "binding-success", BIND_RESP)
put("stun", "binding-indication", BIND_IND)

# ------------------------------------------------------------------ classify
DTLS_HELLO = bytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 1, 0, 0, 4, 0, 0, 0, 0])
TURN_CHANNEL = struct.pack("!HH", 0x4000, 4) + b"\x01\x02\x03\x04"
ZRTP = bytes([0x10, 0, 0, 1]) + b"ZRTP" + b"\0" * 8
for name, p in [("rtp", PCMU), ("rtcp", SR + SDES), ("stun", BIND_REQ), ("dtls", DTLS_HELLO),
                ("turn-channel", TURN_CHANNEL), ("zrtp", ZRTP)]:
    put("classify", name, p)


# ------------------------------------------------------------------ engine
# fuzz_targets/engine.rs: setup byte, then records [flags, advance, len, bytes].
def rec(dgram, upstream=False, second=False, timeout=False, snapshot=False, advance=20):
    assert len(dgram) <= 255
    flags = int(upstream) | int(second) << 1 | int(timeout) << 2 | int(snapshot) << 3
    return bytes([flags, advance, len(dgram)]) + dgram


def audio_call(ssrc=0x11111111, n=12, second=False):
    out = b""
    for i in range(n):
        seq = 1000 + i if i != 5 else 1000 + 6  # a reorder
        if i == 6:
            seq = 1000 + 5
        out += rec(rtp(0, seq, 160000 + 160 * (seq - 1000), ssrc, b"\xff" * 160), second=second)
    return out


SETUP_ONE = bytes([0b0010_0100])          # one session, no idle, 2 sources per side, JSON
SETUP_TWO_IDLE = bytes([0b0011_1111])     # two sessions, idle timeout, 8 sources, JSON
scenario = (audio_call()
            + rec(SR + SDES)                                  # client SR
            + rec(STUN_REQ := BIND_REQ)                       # client STUN request
            + rec(BIND_RESP, upstream=True, advance=30)       # answered 30 ms later
            + rec(RR_ONE, upstream=True, advance=40, snapshot=True)  # RR with LSR/DLSR
            + rec(RR_ONE + XR_RRTR, upstream=True)            # upstream RRTR
            + rec(SR + XR_DLRR, advance=25)                   # client DLRR answers it
            + rec(rtp(96, 1, 0, 0x33333333, b"\x10" * 100, ext=(0xBEDE, one_byte((5, b"\0\1")))), upstream=True)
            + rec(RR_ONE + NACK + PLI + FIR + REMB)
            + rec(BYE, snapshot=True, timeout=True))
put("engine", "audio-rtcp-stun", SETUP_ONE + scenario)
# The same in auto (bits 6..7 = 1) and terminate (2) modes, then silence
# past the suppression timeout with timer ticks, so reports get generated.
ticks = b"".join(rec(b"", advance=132, timeout=True) for _ in range(8))
put("engine", "auto-generates", bytes([0b0110_0100]) + scenario + ticks + audio_call(n=4) + ticks)
put("engine", "terminate-rewrites", bytes([0b1010_0100]) + scenario + ticks)
put("engine", "mixed-two-sessions", bytes([0b1110_0101]) + scenario
    + audio_call(ssrc=0x77777777, second=True) + rec(SR + SDES, second=True)
    + rec(RR_ONE, upstream=True, second=True) + ticks)
put("engine", "two-sessions-idle",
    SETUP_TWO_IDLE + audio_call() + audio_call(ssrc=0x77777777, second=True)
    + rec(DTLS_HELLO, second=True) + rec(SR + SDES, second=True)
    + rec(b"", advance=255, timeout=True) + rec(b"", advance=255, timeout=True, snapshot=True)
    + audio_call(n=3))
put("engine", "many-ssrcs", SETUP_ONE + b"".join(
    rec(rtp(111, 5, 0, 0x1000 + k, b"\x00" * 8)) for k in range(6)) + rec(b"\x00", snapshot=True))


# ------------------------------------------------------------------ capture
def ipv4_udp(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(src), bytes(dst))
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
    return hdr + udp


def ipv6_udp(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 64, bytes(src), bytes(dst)) + udp


A, B = [192, 0, 2, 1], [198, 51, 100, 1]
A6, B6 = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1], [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [2]
ETH = bytes(6) + bytes([2, 0, 0, 0, 0, 1])
flows = []
for i in range(8):
    flows.append((ipv4_udp(A, B, 5000, 3478, rtp(0, 100 + i, 160 * i, 0x11111111, b"\xff" * 160)), i * 20_000))
flows.append((ipv4_udp(A, B, 5000, 3478, SR + SDES), 170_000))
flows.append((ipv4_udp(B, A, 3478, 5000, RR_ONE), 190_000))
flows.append((ipv4_udp(A, B, 5000, 3478, BIND_REQ), 200_000))
flows.append((ipv4_udp(B, A, 3478, 5000, BIND_RESP), 230_000))


def pcap(linktype, frames, nanos=False):
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for data, usec in frames:
        out += struct.pack("<IIII", 1700000000 + usec // 1_000_000, usec % 1_000_000 * (1000 if nanos else 1),
                           len(data), len(data)) + data
    return out


def ng_block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(linktype, frames, tsresol=None):
    shb = ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack("<HH", 0, 0)
    idb = ng_block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)
    out = shb + idb
    scale = 1000 if tsresol == 9 else 1  # if_tsresol 9: nanosecond ticks
    for data, usec in frames:
        t = (1700000000 * 1_000_000 + usec) * scale
        out += ng_block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data)
    out += ng_block(3, struct.pack("<I", len(flows[0][0])) + flows[0][0])  # simple packet block
    return out


eth = [(ETH + b"\x08\x00" + d, t) for d, t in flows]
put("capture", "eth-ipv4.pcap", pcap(1, eth))
put("capture", "raw-ipv4-nanos.pcap", pcap(101, flows, nanos=True))
sll = [(struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + d, t) for d, t in flows]
put("capture", "sll.pcap", pcap(113, sll))
sll2 = [(struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8)) + d, t) for d, t in flows]
put("capture", "sll2.pcapng", pcapng(276, sll2))
v6 = [(ETH + b"\x86\xdd" + ipv6_udp(A6, B6, 5000, 3478, d[28:]), t) for d, t in flows]
put("capture", "eth-ipv6-tsresol.pcapng", pcapng(1, v6, tsresol=9))

# ------------------------------------------------------------------ config
ROOT = os.path.dirname(os.path.dirname(HERE))
with open(os.path.join(ROOT, "config", "default.toml"), "rb") as f:
    put("config", "default.toml", f.read())
put("config", "non-mux.toml", b"""[[relay]]
listen = "[::]:5004"
upstream = "[2001:db8::1]:6004"
listen_rtcp = "[::]:5005"
upstream_rtcp = "[2001:db8::1]:6005"
rtcp = "terminate"
upstream_ports = "50000-50999"
[relay.clock_rates]
111 = 48000
"100" = 90000

[[relay]]
listen = "0.0.0.0:3479"
upstream = "127.0.0.1:13479"
rtcp = "forward"

[api]
listen = "127.0.0.1:0"

[limits]
max_sessions = 1
idle_timeout_secs = 0
max_sources_per_side = 4096
""")
put("config", "minimal.toml", b"[limits]\nmax_sessions = 10\n")


# ------------------------------------------------------------------ SDP
# sdp_rewrite: the real SDPs of tests/data/sdp/ (README.md there), each
# behind the target's options byte: 0x05 = setup active, announce IPv4.
SDP_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "data", "sdp")
for name in sorted(os.listdir(SDP_DIR)):
    if name.endswith(".sdp"):
        with open(os.path.join(SDP_DIR, name), "rb") as f:
            put("sdp_rewrite", name[:-4], b"\x05" + f.read())


# ------------------------------------------------------------------ regressions
# Minimal inputs for crashes the fuzzers found (fuzz/regressions/<target>/);
# scripts/fuzz-smoke.sh replays them before fuzzing each target.
def regression(target, name, data):
    d = os.path.join(os.path.dirname(HERE), "regressions", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# Probation run across the sequence wrap (65535 then 0): A.3 expected =
# ext_max + 1 - base_seq underflows (src/stats/receive.rs expected_in_epoch).
WRAP = [rtp(0, 65535, 0, 0x11111111, b"\xff" * 20), rtp(0, 0, 160, 0x11111111, b"\xff" * 20)]
regression("engine", "probation-across-seq-wrap", bytes([0]) + rec(WRAP[0]) + rec(WRAP[1], snapshot=True))
regression("capture", "probation-across-seq-wrap.pcap",
           pcap(101, [(ipv4_udp(A, B, 5000, 3478, p), i * 20_000) for i, p in enumerate(WRAP)]))
