#!/usr/bin/env python3
"""A GStreamer rtpbin PCMU endpoint for tests/gstreamer_rtcp.rs.

Sender (default): audiotestsrc (live, 8 kHz mono, 160 samples = 20 ms per
buffer) ! mulawenc ! rtppcmupay ! rtpbin, sending RTP to HOST:PORT and RTCP
(SR + SDES) to HOST:PORT+1 from a local even/odd port pair (P, P+1), and
receiving RTCP on P+1: one socket is shared by the RTCP udpsrc and udpsink,
so the Receiver Reports that come back reach rtpbin's session, which is
where GStreamer computes the report-block statistics and the round trip.

Receiver (--receive): rtpbin receiving RTP on P and RTCP on P+1 and sending
its RTCP (RR + SDES) from P+1 to --rtcp-dest.

--media video (either role): VP8 instead of PCMU, payload type 96 on a
90 kHz clock; the sender encodes videotestsrc (live, 320x240, 15 fps,
vp8enc in real-time mode) and rtpvp8pay splits frames into MTU-sized
packets. The receiver's remote source stats ("remote_sources") carry its
own RFC 3550 A.8 "jitter" (clock units) for the stream it received.

Output on stdout, one JSON object per line:
  {"event": "ready", "rtp_port": P, "rtcp_port": P+1}      once the sockets are bound
  {"event": "done", ...}                                    after --seconds

Where GStreamer keeps report blocks (rtpsession.c, rtp_session_process_rb):
a report block about one of our SSRCs updates the RTPSource of the *reporter*
(the SSRC that sent the SR/RR), not our own sender source. So "have-rb",
"rb-fractionlost", "rb-packetslost", "rb-exthighestseq", "rb-jitter",
"rb-lsr", "rb-dlsr" and "rb-round-trip" (1/65536 s, computed by
rtp_source_process_rb as arrival - LSR - DLSR) appear in the stats of the
remote source that reported; "done" lists them under "reports", one per
reporter, next to our own sender source ("sender": "packets-sent", ...).
"rb_log" has every report block about us as it arrived (parsed from the
RTCP rtpbin received), "rtt_log" every new rb-round-trip value the session
reported (sampled every --sample-ms). A receiver's "jitter_log" has every
new A.8 "jitter" of the streams it receives, sampled the same way; "mono"
in it and in "rb_log" is time.monotonic() (CLOCK_MONOTONIC: one clock for
every process), so two endpoints' logs line up.

SRTP (SDES keys, AES_CM_128_HMAC_SHA1_80 for RTP and RTCP): --srtp-key HEX
(30 bytes: master key || salt) protects what this endpoint sends (srtpenc
after rtpbin's send pads); --srtp-peer-key HEX opens what it receives
(srtpdec before rtpbin's receive pads, keys given through its request-key
signal for every SSRC, the proxy's own included). "done" then also counts
"srtp_rtp_in"/"srtcp_in" buffers that srtpdec let through.

Exit status: 0 on success, 2 on a pipeline error (message on stderr).
"""

import argparse
import json
import socket
import struct
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib, Gst  # noqa: E402

RB_FIELDS = (
    "have-rb",
    "rb-fractionlost",
    "rb-packetslost",
    "rb-exthighestseq",
    "rb-jitter",
    "rb-lsr",
    "rb-dlsr",
    "rb-round-trip",
)

PCMU_CAPS = "application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0"
VP8_CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="remote host (sender: where RTP/RTCP go)")
    p.add_argument("--port", type=int, default=0, help="sender: remote RTP port (RTCP on PORT+1)")
    p.add_argument("--local-port", type=int, default=0, help="local even RTP port (RTCP on +1); 0 = any free pair")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--receive", action="store_true", help="run as an rtpbin receiver")
    p.add_argument("--media", choices=("audio", "video"), default="audio", help="PCMU audio or VP8 video")
    p.add_argument("--rtcp-dest", default=None, help="receiver: HOST:PORT its RTCP goes to")
    p.add_argument("--seqnum-offset", type=int, default=-1, help="sender: first RTP sequence number (-1 = random)")
    p.add_argument("--rtcp-interval-ms", type=int, default=1000, help="rtpbin's rtcp-min-interval")
    p.add_argument("--sample-ms", type=int, default=100, help="how often the session stats are sampled")
    p.add_argument("--srtp-key", default=None, help="hex master key||salt protecting what we send (SRTP)")
    p.add_argument("--srtp-peer-key", default=None, help="hex master key||salt protecting what we receive")
    args = p.parse_args()
    if not args.receive and not args.port:
        p.error("--port is required for a sender")
    if args.receive and not args.rtcp_dest:
        p.error("--rtcp-dest is required for a receiver")
    return args


def bind_pair(host, port):
    """Two UDP sockets on an even port P and P+1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(256):
        a = socket.socket(family, socket.SOCK_DGRAM)
        try:
            a.bind((host, port))
        except OSError:
            a.close()
            if port:
                raise
            continue
        p = a.getsockname()[1]
        if p % 2 == 0:
            b = socket.socket(family, socket.SOCK_DGRAM)
            try:
                b.bind((host, p + 1))
                return a, b
            except OSError:
                b.close()
                if port:
                    raise
        a.close()
        if port:
            raise OSError(f"RTP port {port} must be even")
    raise OSError(f"no free even/odd port pair on {host}")


def gsocket(sock):
    """Hands a Python socket's descriptor to GIO (which then owns it)."""
    return Gio.Socket.new_from_fd(sock.detach())


def make(factory, **props):
    e = Gst.ElementFactory.make(factory, None)
    if e is None:
        raise RuntimeError(f"GStreamer element {factory!r} is not installed")
    for k, v in props.items():
        # `async` is a Python keyword: spelled `async_` by the callers.
        e.set_property(k.rstrip("_").replace("_", "-"), v)
    return e


def to_plain(s):
    """A GstStructure's plain (bool/number/string) fields as a dict."""
    out = {}
    for i in range(s.n_fields()):
        name = s.nth_field_name(i)
        try:
            v = s.get_value(name)
        except TypeError:
            continue
        if isinstance(v, (bool, int, float, str)):
            out[name] = v
    return out


def report_blocks(data):
    """(reporter SSRC, report block) pairs of the SRs and RRs in an RTCP compound."""
    out = []
    off = 0
    while off + 4 <= len(data):
        first, pt, length = struct.unpack_from("!BBH", data, off)
        size = (length + 1) * 4
        if first >> 6 != 2 or off + size > len(data):
            break
        count = first & 0x1F
        if pt in (200, 201) and size >= 8:
            reporter = struct.unpack_from("!I", data, off + 4)[0]
            rb = off + 8 + (20 if pt == 200 else 0)
            for _ in range(count):
                if rb + 24 > off + size:
                    break
                ssrc, lost_word, ext, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, rb)
                lost = lost_word & 0xFFFFFF
                if lost & 0x800000:
                    lost -= 1 << 24
                out.append(
                    (
                        reporter,
                        {
                            "ssrc": ssrc,
                            "fraction": lost_word >> 24,
                            "lost": lost,
                            "ext_seq": ext,
                            "jitter": jitter,
                            "lsr": lsr,
                            "dlsr": dlsr,
                        },
                    )
                )
                rb += 24
        off += size
    return out


SRTP_PARAMS = (
    "srtp-cipher=(string)aes-128-icm, srtp-auth=(string)hmac-sha1-80, "
    "srtcp-cipher=(string)aes-128-icm, srtcp-auth=(string)hmac-sha1-80"
)


def srtp_caps(media, hex_key, extra=""):
    """Caps carrying SDES key material the way srtpdec reads it."""
    return Gst.Caps.from_string(f"{media}, srtp-key=(buffer){hex_key}, {SRTP_PARAMS}{extra}")


class RtpbinEndpoint:
    """What every rtpbin endpoint of the tests does alike (this script's and
    dtls_endpoint.py's): pads, the session's source stats, the report
    blocks about its own SSRCs in received RTCP, errors, and main()."""

    def request(self, name):
        pad = self.rtpbin.request_pad_simple(name)
        if pad is None:
            raise RuntimeError(f"rtpbin refused pad {name}")
        return pad

    def source_stats(self):
        return [to_plain(s.get_property("stats")) for s in self.session.get_property("sources")]

    def own_report_blocks(self, buf):
        """(reporter, block) for every report block of an RTCP buffer that
        is about one of this endpoint's own SSRCs."""
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            return []
        try:
            blocks = report_blocks(bytes(info.data))
        finally:
            buf.unmap(info)
        own = {s["ssrc"] for s in self.source_stats() if s.get("internal")}
        return [(reporter, rb) for reporter, rb in blocks if rb["ssrc"] in own]

    # What a subclass adds: the ready line's ports, a wait before playing
    # (dtls_endpoint.py waits for the test's go), timers once playing, and
    # the done line's own fields.
    def ready_fields(self):
        return {}

    def before_playing(self):
        pass

    def on_playing(self):
        pass

    def done_fields(self):
        return {}

    def run(self):
        """Prints `ready`, plays the pipeline for --seconds (or until an
        error or EOS), then prints `done` (see `finish`)."""
        print(json.dumps({"event": "ready", **self.ready_fields()}), flush=True)
        self.before_playing()
        loop = GLib.MainLoop()
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message, loop)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.error = "pipeline refused to start"
            return self.finish()
        self.t0 = time.monotonic()
        self.on_playing()
        GLib.timeout_add(int(self.args.seconds * 1000), lambda: loop.quit() or False)
        loop.run()
        return self.finish()

    def finish(self):
        """The `done` line: the session's own and remote sources, the report
        blocks about its own SSRCs, the subclass's fields and any error."""
        sources = self.source_stats()
        internal = [s for s in sources if s.get("internal")]
        remote = [s for s in sources if not s.get("internal")]
        t0 = getattr(self, "t0", None)
        out = {
            "event": "done",
            "mode": "receive" if self.args.receive else "send",
            "seconds": round(time.monotonic() - t0, 3) if t0 is not None else 0.0,
            **self.ready_fields(),
            "ssrc": internal[0]["ssrc"] if internal else None,
            "sender": internal[0] if internal else None,
            "reports": [{"ssrc": s["ssrc"], **{f: s.get(f) for f in RB_FIELDS}} for s in remote if s.get("have-rb")],
            "remote_sources": remote,
            "rb_log": self.rb_log,
            **self.done_fields(),
            "error": self.error,
        }
        self.pipeline.set_state(Gst.State.NULL)
        print(json.dumps(out), flush=True)
        return 2 if self.error else 0

    def on_message(self, _bus, msg, loop):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            self.error = f"{err.message} ({dbg})"
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()
        return True

    @classmethod
    def main(cls, name, errors=(RuntimeError, OSError)):
        """Builds the endpoint from the command line (the subclass's
        `parse_args`) and runs it; exit 2 on a set-up or pipeline error
        (reported on stderr)."""
        args = cls.parse_args()
        Gst.init(None)
        try:
            endpoint = cls(args)
        except errors as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 2
        code = endpoint.run()
        if endpoint.error:
            print(f"{name}: {endpoint.error}", file=sys.stderr)
        return code


class Endpoint(RtpbinEndpoint):
    parse_args = staticmethod(parse_args)

    def __init__(self, args):
        self.args = args
        self.error = None
        self.t0 = time.monotonic()
        self.rb_log = []
        self.rtt_log = []
        self.jitter_log = []
        self.last_rb = {}
        self.rtcp_received = 0
        self.srtp_counts = {"srtp_rtp_in": 0, "srtcp_in": 0}
        self.enc = None
        self.dec = None
        self.pipeline = Gst.Pipeline.new(None)
        self.rtpbin = make("rtpbin")
        self.pipeline.add(self.rtpbin)
        local = "::" if ":" in args.host else "0.0.0.0"
        if args.host in ("127.0.0.1", "::1", "localhost"):
            local = "::1" if args.host == "::1" else "127.0.0.1"
        rtp_sock, rtcp_sock = bind_pair(local, args.local_port)
        self.rtp_port = rtp_sock.getsockname()[1]
        self.rtcp_port = self.rtp_port + 1
        rtp_g, rtcp_g = gsocket(rtp_sock), gsocket(rtcp_sock)
        self.pay = None
        if args.receive:
            self.build_receiver(rtp_g, rtcp_g)
        else:
            self.build_sender(rtp_g, rtcp_g)
        self.session = self.rtpbin.emit("get-internal-session", 0)
        self.session.set_property("rtcp-min-interval", args.rtcp_interval_ms * Gst.MSECOND)
        self.session.connect("on-receiving-rtcp", self.on_receiving_rtcp)
        # No Python handler on "on-sending-rtcp": it runs after rtpbin has
        # stamped an SR's NTP time / an RR's DLSR and before the packet
        # leaves, so waiting for the GIL there would inflate every RTT.

    def add(self, *elements):
        for e in elements:
            self.pipeline.add(e)

    def make_enc(self):
        """srtpenc with our key (what we send)."""
        key = Gst.Buffer.new_wrapped(bytes.fromhex(self.args.srtp_key))
        self.enc = make(
            "srtpenc",
            rtp_cipher="aes-128-icm",
            rtp_auth="hmac-sha1-80",
            rtcp_cipher="aes-128-icm",
            rtcp_auth="hmac-sha1-80",
        )
        self.enc.set_property("key", key)
        self.add(self.enc)
        return self.enc

    def make_dec(self):
        """srtpdec opening what we receive with the peer's key, for any SSRC."""
        self.dec = make("srtpdec")
        hex_key = self.args.srtp_peer_key
        self.dec.connect("request-key", lambda _dec, _ssrc: srtp_caps("application/x-srtp", hex_key))
        self.add(self.dec)
        for pad, name in (("rtp_src", "srtp_rtp_in"), ("rtcp_src", "srtcp_in")):
            self.dec.get_static_pad(pad).add_probe(Gst.PadProbeType.BUFFER, self.count, name)
        return self.dec

    def count(self, _pad, _info, name):
        self.srtp_counts[name] += 1
        return Gst.PadProbeReturn.OK

    def link_via_enc(self, rtpbin_pad, kind, sink):
        """rtpbin pad → srtpenc (when keyed) → udpsink."""
        if self.enc is None:
            rtpbin_pad.link(sink.get_static_pad("sink"))
            return
        rtpbin_pad.link(self.enc.request_pad_simple(f"{kind}_sink_0"))
        self.enc.get_static_pad(f"{kind}_src_0").link(sink.get_static_pad("sink"))

    def build_sender(self, rtp_g, rtcp_g):
        a = self.args
        if a.media == "video":
            src = make("videotestsrc", is_live=True, pattern="ball")
            caps = make("capsfilter", caps=Gst.Caps.from_string("video/x-raw,width=320,height=240,framerate=15/1"))
            enc = make("vp8enc", deadline=1, target_bitrate=400000, keyframe_max_dist=30)
            self.pay = make("rtpvp8pay", pt=96, mtu=1200)
        else:
            src = make("audiotestsrc", is_live=True, wave="sine", freq=440.0, samplesperbuffer=160)
            caps = make("capsfilter", caps=Gst.Caps.from_string("audio/x-raw,format=S16LE,rate=8000,channels=1"))
            enc = make("mulawenc")
            self.pay = make("rtppcmupay", pt=0, min_ptime=20 * Gst.MSECOND, max_ptime=20 * Gst.MSECOND)
        if a.seqnum_offset >= 0:
            self.pay.set_property("seqnum-offset", a.seqnum_offset)
        rtp_sink = make("udpsink", socket=rtp_g, host=a.host, port=a.port, sync=True, async_=False)
        rtcp_sink = make("udpsink", socket=rtcp_g, host=a.host, port=a.port + 1, sync=False, async_=False)
        rtcp_caps = "application/x-srtcp" if a.srtp_peer_key else "application/x-rtcp"
        rtcp_src = make("udpsrc", socket=rtcp_g, caps=Gst.Caps.from_string(rtcp_caps))
        self.add(src, caps, enc, self.pay, rtp_sink, rtcp_sink, rtcp_src)
        src.link(caps)
        caps.link(enc)
        enc.link(self.pay)
        self.pay.get_static_pad("src").link(self.request("send_rtp_sink_0"))
        if a.srtp_key:
            self.make_enc()
        self.link_via_enc(self.rtpbin.get_static_pad("send_rtp_src_0"), "rtp", rtp_sink)
        self.link_via_enc(self.request("send_rtcp_src_0"), "rtcp", rtcp_sink)
        if a.srtp_peer_key:
            dec = self.make_dec()
            rtcp_src.get_static_pad("src").link(dec.get_static_pad("rtcp_sink"))
            dec.get_static_pad("rtcp_src").link(self.request("recv_rtcp_sink_0"))
        else:
            rtcp_src.get_static_pad("src").link(self.request("recv_rtcp_sink_0"))

    def build_receiver(self, rtp_g, rtcp_g):
        host, port = self.args.rtcp_dest.rsplit(":", 1)
        host = host.strip("[]")
        keyed = self.args.srtp_peer_key is not None
        media_caps = VP8_CAPS if self.args.media == "video" else PCMU_CAPS
        rtp_caps = media_caps.replace("application/x-rtp", "application/x-srtp") if keyed else media_caps
        rtcp_caps = "application/x-srtcp" if keyed else "application/x-rtcp"
        rtp_src = make("udpsrc", socket=rtp_g, caps=Gst.Caps.from_string(rtp_caps))
        rtcp_src = make("udpsrc", socket=rtcp_g, caps=Gst.Caps.from_string(rtcp_caps))
        rtcp_sink = make("udpsink", socket=rtcp_g, host=host, port=int(port), sync=False, async_=False)
        self.add(rtp_src, rtcp_src, rtcp_sink)
        if keyed:
            dec = self.make_dec()
            rtp_src.get_static_pad("src").link(dec.get_static_pad("rtp_sink"))
            rtcp_src.get_static_pad("src").link(dec.get_static_pad("rtcp_sink"))
            dec.get_static_pad("rtp_src").link(self.request("recv_rtp_sink_0"))
            dec.get_static_pad("rtcp_src").link(self.request("recv_rtcp_sink_0"))
        else:
            rtp_src.get_static_pad("src").link(self.request("recv_rtp_sink_0"))
            rtcp_src.get_static_pad("src").link(self.request("recv_rtcp_sink_0"))
        if self.args.srtp_key:
            self.make_enc()
        self.link_via_enc(self.request("send_rtcp_src_0"), "rtcp", rtcp_sink)
        self.rtpbin.connect("pad-added", self.on_pad_added)

    def on_pad_added(self, _bin, pad):
        if not pad.get_name().startswith("recv_rtp_src_"):
            return
        sink = make("fakesink", sync=False, async_=False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def on_receiving_rtcp(self, _session, buf):
        self.rtcp_received += 1
        t = round(time.monotonic() - self.t0, 4)
        mono = time.monotonic()
        for reporter, rb in self.own_report_blocks(buf):
            self.rb_log.append({"t": t, "mono": mono, "reporter": reporter, **rb})

    def sample(self):
        for s in self.source_stats():
            if not s.get("internal") and s.get("is-sender") and self.args.receive:
                jitter = s.get("jitter")
                last = self.jitter_log[-1] if self.jitter_log else None
                if jitter is not None and (last is None or (last["ssrc"], last["jitter"]) != (s["ssrc"], jitter)):
                    self.jitter_log.append({"mono": time.monotonic(), "ssrc": s["ssrc"], "jitter": jitter})
            if s.get("internal") or not s.get("have-rb"):
                continue
            key = tuple(s.get(f) for f in ("rb-exthighestseq", "rb-lsr", "rb-dlsr", "rb-packetslost"))
            if self.last_rb.get(s["ssrc"]) != key:
                self.last_rb[s["ssrc"]] = key
                rtt = s.get("rb-round-trip", 0)
                self.rtt_log.append(
                    {
                        "t": round(time.monotonic() - self.t0, 4),
                        "reporter": s["ssrc"],
                        "rb-exthighestseq": s.get("rb-exthighestseq"),
                        "rb-round-trip": rtt,
                        "rtt_ms": rtt * 1000.0 / 65536.0,
                    }
                )
        return True

    def ready_fields(self):
        return {"rtp_port": self.rtp_port, "rtcp_port": self.rtcp_port}

    def on_playing(self):
        GLib.timeout_add(self.args.sample_ms, self.sample)

    def finish(self):
        self.sample()
        return super().finish()

    def done_fields(self):
        out = {
            "rtt_log": self.rtt_log,
            "jitter_log": self.jitter_log,
            "rtcp_received": self.rtcp_received,
            **self.srtp_counts,
            "session": to_plain(self.session.get_property("stats")),
        }
        if self.pay is not None:
            out["seqnum_offset"] = self.pay.get_property("seqnum-offset")
            out["last_seqnum"] = self.pay.get_property("seqnum")
        return out


if __name__ == "__main__":
    sys.exit(Endpoint.main("rtpbin_sender.py"))
