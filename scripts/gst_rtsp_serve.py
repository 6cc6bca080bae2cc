"""Loopback RTSP server for tests, benchmarks and the demo: Debian's gst-rtsp-server loops an
MP4 (H.264) without re-encoding, shared by all clients like a real camera's live stream.

Runs under Debian's own interpreter (python3-gi is not in the venv):
    /usr/bin/python3 gst_rtsp_serve.py PORT FILE [MOUNT [TRANSPORT]]
                                                    ->  rtsp://127.0.0.1:PORT/MOUNT
PORT 0 lets the kernel choose. TRANSPORT `udp` or `tcp` serves RTP over that one only (a
camera that refuses the other with 461 Unsupported Transport); default `any`. The URL is
printed once the server listens; if it cannot listen, the script exits with status 2. Not
part of the daemon; no edgeguard imports."""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)  # before the subclass below: its vfunc override needs GStreamer's types
SEGMENT = Gst.SeekFlags.SEGMENT


class LoopMedia(GstRtspServer.RTSPMedia):
    def do_handle_message(self, message):
        if message.type == Gst.MessageType.SEGMENT_DONE:
            # A non-flushing segment seek: running time and RTP timestamps keep increasing.
            self.get_element().seek(
                1.0, Gst.Format.TIME, SEGMENT, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1
            )
            return True
        return GstRtspServer.RTSPMedia.do_handle_message(self, message)


def on_configure(_factory, media):
    media.set_reusable(True)
    def prepared(m):  # first segment seek: SEGMENT_DONE, not EOS
        m.get_element().seek(
            1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH | SEGMENT, Gst.SeekType.SET, 0,
            Gst.SeekType.NONE, -1,
        )

    media.connect("prepared", prepared)


def main() -> None:
    port, path = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) > 3 else "cam1"
    transport = sys.argv[4] if len(sys.argv) > 4 else "any"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    if transport == "udp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    elif transport == "tcp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_media_gtype(LoopMedia)
    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        sys.exit(2)
    url = f"rtsp://127.0.0.1:{server.get_bound_port()}/{mount}"
    # A client of our own keeps the shared media prepared, like a camera that always streams:
    # otherwise the last client leaving unprepares it, and a client arriving at that moment
    # finds it broken (seen in tests that restart their readers).
    keeper = Gst.parse_launch(
        f"rtspsrc location={url} protocols={'udp' if transport == 'udp' else 'tcp'} latency=0 "
        "! fakesink sync=false async=false"
    )
    keeper.set_state(Gst.State.PLAYING)
    print(url, flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
