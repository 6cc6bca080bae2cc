"""Loopback RTSP server (Debian gst-rtsp-server via python3-gi) that loops an mp4 without re-encoding.
Run with Debian's /usr/bin/python3: python3 gst_rtsp.py PORT [FILE]  -> rtsp://127.0.0.1:PORT/cam1"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
PORT = sys.argv[1] if len(sys.argv) > 1 else "8554"
FILE = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/data/one-by-one-person-detection.mp4"
SEG = Gst.SeekFlags.SEGMENT


class LoopMedia(GstRtspServer.RTSPMedia):
    def do_handle_message(self, message):
        if message.type == Gst.MessageType.SEGMENT_DONE:
            # non-flushing segment seek: running time (and RTP timestamps) keep increasing
            self.get_element().seek(1.0, Gst.Format.TIME, SEG, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)
            return True
        return GstRtspServer.RTSPMedia.do_handle_message(self, message)


def on_configure(_factory, media):
    # First segment seek once prerolled so the pipeline emits SEGMENT_DONE instead of EOS.
    def prepared(m):
        m.get_element().seek(1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH | SEG,
                             Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)
    media.connect("prepared", prepared)


server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(PORT)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( filesrc location="{FILE}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )')
factory.set_shared(True)
factory.set_media_gtype(LoopMedia)
factory.connect("media-configure", on_configure)
server.get_mount_points().add_factory("/cam1", factory)
server.attach(None)
print(f"rtsp://127.0.0.1:{PORT}/cam1", flush=True)
GLib.MainLoop().run()
