"""The RTSP lower transport of a camera (its config `rtsp_transport`), shared by the capture
(OpenCV's FFmpeg backend) and the clip recorder (PyAV): both hand FFmpeg its `rtsp_transport`
option, `tcp` or `udp`. No imports: it is loaded in every capture process."""

from __future__ import annotations

RTSP_TRANSPORTS = ("tcp", "udp", "auto")


class TransportChoice:
    """The transport to ask for at the next open. `tcp` and `udp` are fixed; `auto` starts
    with TCP (no loss of large key frames), takes the other after each failed open and keeps
    the one that worked: a UDP-only camera refuses TCP (461 Unsupported Transport) at once."""

    def __init__(self, mode: str) -> None:
        if mode not in RTSP_TRANSPORTS:
            raise ValueError(f"rtsp_transport {mode!r}: use one of {', '.join(RTSP_TRANSPORTS)}")
        self.mode = mode
        self.current = "tcp" if mode == "auto" else mode

    def failed(self) -> None:
        """The last open with `current` failed."""
        if self.mode == "auto":
            self.current = "udp" if self.current == "tcp" else "tcp"
