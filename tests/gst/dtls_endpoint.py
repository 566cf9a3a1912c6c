#!/usr/bin/env python3
"""A GStreamer DTLS-SRTP endpoint (dtlssrtpenc/dtlssrtpdec) for tests/gstreamer_dtls.rs.

No ICE: RTP, RTCP (rtcp-mux, RFC 5761) and DTLS share one UDP socket, and
one DTLS association (a dtlssrtpenc and a dtlssrtpdec with the same
connection-id, RFC 5764 §4.1) keys SRTP and SRTCP both ways.

Sender (default, DTLS client with --dtls-client): audiotestsrc (live, 8 kHz,
20 ms) ! mulawenc ! rtppcmupay ! rtpbin; rtpbin's RTP and RTCP go through
dtlssrtpenc to --peer HOST:PORT; what comes back on the socket goes through
dtlssrtpdec, whose SRTCP output reaches rtpbin's session, which keeps the
report blocks about our SSRC in the stats of the source that reported (see
rtpbin_sender.py for where GStreamer keeps them).

Receiver (--receive, DTLS server): the socket's datagrams go through
dtlssrtpdec into rtpbin, rtppcmudepay and mulawdec (decoded buffers are
counted); rtpbin's RTCP (RR + SDES) goes out through dtlssrtpenc. It
replies to wherever the first datagram came from (a multiudpsink whose one
destination is added then), like an SFU behind a relay.

Both use the certificate and private key in --pem (PEM, ECDSA P-256: the
proxy's DTLS stack signs and verifies ECDSA) so the test knows their
fingerprints beforehand, and print the peer's certificate fingerprint
(sha-256 of the DER of dtlssrtpdec's peer-pem) when done.

The endpoint binds its socket, prints {"event": "ready", "port": P}, and
waits for a line on stdin before it starts (so the signalling is done
before the first ClientHello). It prints {"event": "done", ...} after
--seconds. Exit status: 0 on success, 2 on a pipeline error.
"""

import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstNet", "1.0")
gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib, Gst, GstNet  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtpbin_sender import PCMU_CAPS, RB_FIELDS, RtpbinEndpoint, make  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--receive", action="store_true", help="run as the receiver (DTLS server)")
    p.add_argument("--peer", default=None, help="sender: HOST:PORT its datagrams go to")
    p.add_argument("--pem", required=True, help="certificate and private key, PEM")
    p.add_argument("--dtls-client", action="store_true", help="take the DTLS client role (a=setup:active)")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rtcp-interval-ms", type=int, default=500, help="rtpbin's rtcp-min-interval")
    args = p.parse_args()
    if not args.receive and not args.peer:
        p.error("--peer is required for a sender")
    return args


def fingerprint(pem):
    """sha-256 of the certificate's DER, as SDP writes it (RFC 8122 §5)."""
    if not pem:
        return None
    der = ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class Endpoint(RtpbinEndpoint):
    parse_args = staticmethod(parse_args)

    def __init__(self, args):
        self.args = args
        self.error = None
        self.counts = {"srtp_rtp_in": 0, "srtcp_in": 0, "decoded": 0, "dtls_out": 0}
        self.rb_log = []
        self.peer_added = None
        self.pipeline = Gst.Pipeline.new(None)
        self.rtpbin = make("rtpbin", rtcp_sync_send_time=False)
        self.pipeline.add(self.rtpbin)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        gsock = Gio.Socket.new_from_fd(sock.detach())
        cid = f"{'rx' if args.receive else 'tx'}-{os.getpid()}"
        with open(args.pem) as f:
            pem = f.read()
        self.dec = make("dtlssrtpdec", connection_id=cid, pem=pem)
        self.enc = make("dtlssrtpenc", connection_id=cid, is_client=args.dtls_client)
        self.src = make("udpsrc", socket=gsock)
        if args.receive:
            self.sink = make("multiudpsink", socket=gsock, sync=False, async_=False)
        else:
            host, port = args.peer.rsplit(":", 1)
            self.sink = make("udpsink", socket=gsock, host=host, port=int(port), sync=False, async_=False)
        for e in (self.dec, self.enc, self.src, self.sink):
            self.pipeline.add(e)
        self.src.link(self.dec)
        self.enc.link(self.sink)
        self.dec.get_static_pad("rtp_src").add_probe(Gst.PadProbeType.BUFFER, self.count, "srtp_rtp_in")
        self.dec.get_static_pad("rtcp_src").add_probe(Gst.PadProbeType.BUFFER, self.count, "srtcp_in")
        self.enc.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.count, "dtls_out")
        if args.receive:
            self.src.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.learn_peer, None)
            self.build_receiver()
        else:
            self.build_sender()
        self.session = self.rtpbin.emit("get-internal-session", 0)
        self.session.set_property("rtcp-min-interval", args.rtcp_interval_ms * Gst.MSECOND)
        self.session.connect("on-receiving-rtcp", self.on_receiving_rtcp)

    def count(self, _pad, _info, name):
        self.counts[name] += 1
        return Gst.PadProbeReturn.OK

    def learn_peer(self, _pad, info, _data):
        """The receiver answers wherever the first datagram came from."""
        if self.peer_added is None:
            meta = GstNet.buffer_get_net_address_meta(info.get_buffer())
            if meta is not None:
                addr = meta.addr
                host, port = addr.get_address().to_string(), addr.get_port()
                self.sink.emit("add", host, port)
                self.peer_added = f"{host}:{port}"
        return Gst.PadProbeReturn.OK

    def build_sender(self):
        src = make("audiotestsrc", is_live=True, wave="sine", freq=440.0, samplesperbuffer=160)
        caps = make("capsfilter", caps=Gst.Caps.from_string("audio/x-raw,format=S16LE,rate=8000,channels=1"))
        enc = make("mulawenc")
        self.pay = make("rtppcmupay", pt=0, min_ptime=20 * Gst.MSECOND, max_ptime=20 * Gst.MSECOND)
        for e in (src, caps, enc, self.pay):
            self.pipeline.add(e)
        src.link(caps)
        caps.link(enc)
        enc.link(self.pay)
        self.pay.get_static_pad("src").link(self.request("send_rtp_sink_0"))
        self.rtpbin.get_static_pad("send_rtp_src_0").link(self.enc.request_pad_simple("rtp_sink_0"))
        self.request("send_rtcp_src_0").link(self.enc.request_pad_simple("rtcp_sink_0"))
        self.dec.get_static_pad("rtcp_src").link(self.request("recv_rtcp_sink_0"))
        # Nothing is sent toward the sender but reports; RTP would go nowhere.
        drop = make("fakesink", sync=False, async_=False)
        self.pipeline.add(drop)
        self.dec.get_static_pad("rtp_src").link(drop.get_static_pad("sink"))

    def build_receiver(self):
        caps = make("capsfilter", caps=Gst.Caps.from_string(PCMU_CAPS))
        self.pipeline.add(caps)
        self.dec.get_static_pad("rtp_src").link(caps.get_static_pad("sink"))
        caps.get_static_pad("src").link(self.request("recv_rtp_sink_0"))
        self.dec.get_static_pad("rtcp_src").link(self.request("recv_rtcp_sink_0"))
        self.request("send_rtcp_src_0").link(self.enc.request_pad_simple("rtcp_sink_0"))
        self.rtpbin.connect("pad-added", self.on_pad_added)

    def on_pad_added(self, _bin, pad):
        if not pad.get_name().startswith("recv_rtp_src_"):
            return
        depay = make("rtppcmudepay")
        dec = make("mulawdec")
        sink = make("fakesink", sync=False, async_=False)
        for e in (depay, dec, sink):
            self.pipeline.add(e)
            e.sync_state_with_parent()
        depay.link(dec)
        dec.link(sink)
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.count, "decoded")
        pad.link(depay.get_static_pad("sink"))

    def on_receiving_rtcp(self, _session, buf):
        for reporter, rb in self.own_report_blocks(buf):
            self.rb_log.append({"mono": time.monotonic(), "reporter": reporter, **rb})

    def ready_fields(self):
        return {"port": self.port}

    def before_playing(self):
        # The test says go once both endpoints and the call are set up.
        sys.stdin.readline()

    def done_fields(self):
        return {
            "connection_state": self.enc.get_property("connection-state").value_nick,
            "peer_fingerprint": fingerprint(self.dec.get_property("peer-pem")),
            "own_fingerprint": fingerprint(self.dec.get_property("pem")),
            "peer": self.peer_added,
            **self.counts,
        }


if __name__ == "__main__":
    sys.exit(Endpoint.main("dtls_endpoint.py", errors=(RuntimeError, OSError, GLib.Error)))
