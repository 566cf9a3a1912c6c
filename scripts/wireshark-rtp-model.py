#!/usr/bin/env python3
"""Executable form of tests/data/README.md's "Wireshark 4.0 RTP stream analysis".

Recomputes tshark's `-z rtp,streams` columns (Pkts, Lost, Min/Mean/Max Delta,
Min/Mean/Max Jitter) from a capture, following the semantics written down in
tests/data/README.md, and compares them with a golden file produced by tshark.
It asks tshark only for the dissected header fields (which packets are RTP,
their arrival times, seq, timestamp, marker, PT), never for the statistics.

Written from the README's description, to check that description: if this
script and tshark agree on every column of a real capture, the description is
exact enough for the Rust analyzer to reproduce tshark.

Usage:
  scripts/wireshark-rtp-model.py CAPTURE [--golden FILE] [--clock PT=HZ ...] [--trace SSRC]

  --clock PT=HZ   clock rate for a dynamic payload type, as the SDP preamble
                  gives tshark (e.g. --clock 111=48000 --clock 96=90000).
  --golden FILE   compare with tshark's saved output; exit 1 on any difference.
  --trace SSRC    print the per-packet state of one stream (hex or decimal).
"""
import argparse
import subprocess
import sys

# Wireshark's table of static payload type clock rates (PT < 96); others → 0.
STATIC_CLOCK = {
    0: 8000, 1: 8000, 2: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000,
    8: 8000, 9: 8000, 10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000,
    15: 8000, 16: 11025, 17: 22050, 18: 8000, 19: 8000, 25: 90000, 26: 90000,
    28: 90000, 31: 90000, 32: 90000, 33: 90000, 34: 90000,
}
PT_CN, PT_CN_OLD = 13, 19


def packets(capture):
    fields = ["frame.time_relative", "ip.src", "udp.srcport", "ip.dst", "udp.dstport",
              "rtp.ssrc", "rtp.seq", "rtp.timestamp", "rtp.marker", "rtp.p_type"]
    cmd = ["tshark", "-n", "-r", capture, "-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp && !icmp",
           "-T", "fields"] + [x for f in fields for x in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    for line in out.splitlines():
        rel, sip, sp, dip, dp, ssrc, seq, ts, m, pt = line.split("\t")
        secs, _, frac = rel.partition(".")
        # nstime_to_msec(rel_ts): ms since the capture's first frame, as a double.
        t_ms = int(secs) * 1000 + int((frac + "000000000")[:9]) / 1e6
        yield (sip, int(sp), dip, int(dp), int(ssrc, 16)), t_ms, int(seq), int(ts), m in ("1", "True"), int(pt)


class Stream:
    def __init__(self, t, seq, ts, pt):
        self.start_seq = self.stop_seq = self.last_seq = seq
        self.time = t                  # arrival of the last in-time packet, ms
        self.first_ts = ts             # raw 32-bit RTP timestamp of the first packet
        self.last_nominal = 0.0        # nominal time (ms) of the last in-time packet with a clock
        self.pt = pt
        self.delta = 0.0
        self.jitter = 0.0
        self.max_delta, self.min_delta, self.mean_delta = 0.0, -1.0, 0.0
        self.max_jitter, self.min_jitter, self.mean_jitter = 0.0, -1.0, 0.0
        self.total = 1                 # packets so far, the first included
        self.cycles, self.under = 0, False
        self.seq_errors = 0

    def packet(self, t, seq, ts, marker, pt, dyn_clock, trace=False):
        # In time sequence: timestamp within [first_ts, first_ts + 2^31) mod 2^32.
        since_first = (ts - self.first_ts) % 2**32
        in_time = since_first < 0x80000000
        # Sequence cycles (only for in-time packets), 16-bit comparisons with the FIRST seq.
        if seq < self.start_seq and in_time and not self.under:
            self.cycles += 1
            self.under = True
        elif seq == 0 and self.stop_seq == 65535 and in_time and not self.under:
            self.cycles += 1
            self.under = True
        elif seq > self.start_seq and in_time and self.under:
            self.under = False
        # Sequence error count (the "Problems?" X).
        if in_time and self.last_seq + 1 == seq:
            self.last_seq = seq
        elif in_time and self.last_seq == 65535 and seq == 0:
            self.last_seq = seq
        elif in_time and (self.last_seq + 1 < seq or self.last_seq - seq > 0xFF00):
            self.last_seq = seq
            self.seq_errors += 1
        elif self.last_seq + 1 > seq:
            self.seq_errors += 1
        cn = pt in (PT_CN, PT_CN_OLD)
        follows_cn = self.pt in (PT_CN, PT_CN_OLD)
        self.pt = pt
        clock = STATIC_CLOCK.get(pt, 0) if pt < 96 else dyn_clock.get(pt, 0)
        current_jitter = 0.0
        if in_time:
            if clock:
                nominal = since_first / (clock // 1000)   # integer kHz: 44100 → 44
                expected = self.time + (nominal - self.last_nominal)
                d = abs(t - expected)
                current_jitter = (15 * self.jitter + d) / 16
                self.delta = t - self.time
                self.jitter = current_jitter
                self.last_nominal = nominal
            else:
                self.delta = t - self.time
        regular = not (marker or cn or not in_time or follows_cn)
        if regular:
            n = self.total
            self.max_delta = max(self.max_delta, self.delta)
            self.min_delta = self.delta if self.min_delta == -1 else min(self.min_delta, self.delta)
            self.mean_delta = (self.mean_delta * (n - 1) + self.delta) / n
            if clock:
                self.max_jitter = max(self.max_jitter, self.jitter)
                self.mean_jitter = (self.mean_jitter * (n - 1) + current_jitter) / n
                self.min_jitter = self.jitter if self.min_jitter == -1 else min(self.min_jitter, self.jitter)
        if trace:
            print(f"t={t:12.3f} seq={seq:5d} ts={ts:10d} M={int(marker)} in_time={int(in_time)} "
                  f"regular={int(regular)} delta={self.delta:8.3f} jitter={self.jitter:8.3f} "
                  f"mean_jitter={self.mean_jitter:8.3f} n={self.total}")
        if in_time:
            self.time = t
        self.stop_seq = seq            # the LAST packet's seq, not the highest
        self.total += 1

    def row(self):
        expected = self.stop_seq + self.cycles * 65536 - self.start_seq + 1
        lost = expected - self.total
        perc = lost * 100 / expected if expected else 0.0
        return [str(self.total), f"{lost} ({perc:.1f}%)",
                *(f"{v:.3f}" for v in (self.min_delta, self.mean_delta, self.max_delta,
                                       self.min_jitter, self.mean_jitter, self.max_jitter))]


def golden_rows(path):
    rows = {}
    for line in open(path):
        parts = line.split()
        if len(parts) < 16 or not parts[6].startswith("0x"):
            continue
        # Start End SrcIP SrcPort DstIP DstPort SSRC Payload... Pkts Lost (pct) 6 numbers [X]
        key = (parts[2], int(parts[3]), parts[4], int(parts[5]), int(parts[6], 16))
        tail = parts[7:]
        if tail[-1] == "X":
            tail = tail[:-1]
        nums = tail[-6:]
        lost = f"{tail[-8]} {tail[-7]}"
        rows[key] = [tail[-9], lost, *nums]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture")
    ap.add_argument("--golden")
    ap.add_argument("--clock", action="append", default=[])
    ap.add_argument("--trace")
    a = ap.parse_args()
    dyn = {int(k): int(v) for k, v in (c.split("=") for c in a.clock)}
    trace = int(a.trace, 0) if a.trace else None
    streams = {}
    for key, t, seq, ts, marker, pt in packets(a.capture):
        s = streams.get(key)
        if s is None:
            streams[key] = Stream(t, seq, ts, pt)
            if key[4] == trace:
                print(f"t={t:12.3f} seq={seq:5d} ts={ts:10d} first packet")
        else:
            s.packet(t, seq, ts, marker, pt, dyn, trace=(key[4] == trace))
    header = ["Pkts", "Lost", "MinDelta", "MeanDelta", "MaxDelta", "MinJitter", "MeanJitter", "MaxJitter"]
    gold = golden_rows(a.golden) if a.golden else {}
    bad = 0
    for key, s in streams.items():
        row = s.row()
        status = ""
        if a.golden:
            g = gold.get(key)
            status = "match" if g == row else f"DIFFERS from tshark {g}"
            bad += g != row
        print(f"{key[0]}:{key[1]} -> {key[2]}:{key[3]} 0x{key[4]:08X} " +
              " ".join(f"{h}={v}" for h, v in zip(header, row)) + (f"  [{status}]" if status else ""))
    if a.golden and (bad or len(gold) != len(streams)):
        print(f"wireshark-rtp-model: {bad} stream(s) differ; tshark has {len(gold)}, model {len(streams)}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
