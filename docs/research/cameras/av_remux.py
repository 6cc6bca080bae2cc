import time, sys
import cv2  # import both in the same process to check for FFmpeg clashes
import av
url = sys.argv[1]; out = sys.argv[2]
t0 = time.monotonic()
inp = av.open(url, options={"rtsp_transport": "tcp", "timeout": "2000000", "analyzeduration": "500000", "probesize": "65536"}, timeout=(3.0, 2.0))
print("av open", round(time.monotonic()-t0, 3))
vs = inp.streams.video[0]
outc = av.open(out, "w")
os_ = outc.add_stream_from_template(vs)
n = 0; first = None; t0 = time.monotonic()
for pkt in inp.demux(vs):
    if pkt.dts is None:
        continue
    if first is None:
        if not pkt.is_keyframe:
            continue
        first = pkt
    pkt.stream = os_
    outc.mux(pkt)
    n += 1
    if time.monotonic() - t0 > 5:
        break
outc.close(); inp.close()
print("muxed", n, "packets")
