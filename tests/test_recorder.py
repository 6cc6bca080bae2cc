"""Evidence clips (edgeguard.analytics.recorder): the timestamp, ring and plan logic on their
own, then the recorder against the real RTSP server (real footage, killed, frozen)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.analytics import clip_packets, clip_plan
from edgeguard.analytics import recorder as rec
from edgeguard.analytics.clip_packets import (
    PacketRing,
    RawPacket,
    Segment,
    Source,
    StoredPacket,
    TimestampFixer,
)
from edgeguard.analytics.clip_plan import plan_clip
from edgeguard.analytics.recorder import ClipRecorder, ClipResult, RecorderSettings
from edgeguard.lab.footage import locate
from edgeguard.lab.rtsp_server import RtspServer, available

TB = Fraction(1, 90000)
FRAME = 9000  # 10 fps in 1/90000

rtsp_only = pytest.mark.skipif(available() is not None, reason=str(available()))


# --- timestamps ------------------------------------------------------------------------------


def raw(pts: int | None, dts: int | None, key: bool = False, arrival: float = 0.0) -> RawPacket:
    return RawPacket(b"x" * 10, pts, dts, key, FRAME, arrival)


def test_probe_burst_without_dts_is_backfilled() -> None:
    """The real trace of FFmpeg's RTSP demuxer on this footage (B-frames): the first six
    packets have no dts, the first keyframe not even a pts."""
    fixer = TimestampFixer(FRAME, FRAME, 5 * 90000)
    trace = [
        (None, None, True),
        (36000, None, False),
        (9000, None, False),
        (18000, None, False),
        (27000, None, False),
        (72000, None, False),
    ]
    for pts, dts, key in trace:
        assert fixer.push(raw(pts, dts, key)) == []
    out = fixer.push(raw(45000, 45000))
    assert out is not None
    assert [(pts, dts) for _, pts, dts in out] == [
        (0, -9000),
        (36000, 0),
        (9000, 9000),
        (18000, 18000),
        (27000, 27000),
        (72000, 36000),
        (45000, 45000),
    ]


def test_missing_and_backward_timestamps_are_repaired() -> None:
    fixer = TimestampFixer(FRAME, 0, 5 * 90000)
    assert fixer.push(raw(0, 0, key=True)) is not None
    ((_, pts, dts),) = fixer.push(raw(None, None)) or []
    assert (pts, dts) == (9000, 9000)
    ((_, pts, dts),) = fixer.push(raw(5000, 5000)) or []  # backwards: nudged forward
    assert dts == 9001
    assert pts >= dts


def test_timestamp_jump_is_a_discontinuity() -> None:
    fixer = TimestampFixer(FRAME, 0, 5 * 90000)
    fixer.push(raw(0, 0, key=True))
    assert fixer.push(raw(10 * 90000, 10 * 90000)) is None
    assert fixer.push(raw(-10 * 90000, -10 * 90000)) is None


def test_stream_that_never_gives_dts() -> None:
    fixer = TimestampFixer(FRAME, 0, 5 * 90000)
    out: list[tuple[RawPacket, int, int]] = []
    for i in range(clip_packets.MAX_PENDING):
        out += fixer.push(raw(i * FRAME + 900, None, key=i == 0)) or []
    assert [dts for _, _, dts in out] == [900 + i * FRAME for i in range(clip_packets.MAX_PENDING)]


timestamps = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-(10**6), 10**6)),
        st.one_of(st.none(), st.integers(-(10**6), 10**6)),
        st.booleans(),
    ),
    max_size=200,
)


@given(timestamps)
@settings(max_examples=300, deadline=None)
def test_fixed_timestamps_are_muxable(trace: list[tuple[int | None, int | None, bool]]) -> None:
    """Whatever arrives: within a segment dts strictly increases and pts >= dts."""
    fixer = TimestampFixer(FRAME, FRAME, 5 * 90000)
    last: int | None = None
    for pts, dts, key in trace:
        out = fixer.push(raw(pts, dts, key))
        if out is None:
            fixer, last = TimestampFixer(FRAME, FRAME, 5 * 90000), None
            continue
        for _, p, d in out:
            assert p >= d
            assert last is None or d > last
            last = d


# --- ring and plan ---------------------------------------------------------------------------


def segment(anchor: float = 1000.0) -> Segment:
    return Segment(Source("h264", 768, 432, b"avcC", TB), anchor=anchor)


def feed(
    ring: PacketRing, seg: Segment, start_frame: int, frames: int, gop: int = 10, size: int = 100
) -> None:
    for i in range(start_frame, start_frame + frames):
        dts = i * FRAME
        packet = StoredPacket(b"x" * size, dts + FRAME, dts, i % gop == 0, FRAME)
        ring.add(seg, packet, seg.wall(dts))


def test_ring_starts_at_a_keyframe_and_keeps_the_window() -> None:
    ring = PacketRing(1 << 30)
    seg = segment()
    ring.add(seg, StoredPacket(b"p", 0, 0, False, FRAME), 1000.0)  # before any keyframe
    assert ring.packets == 0
    feed(ring, seg, 1, 200)  # 20 s
    ring.trim(seg.wall(200 * FRAME) - 4.0)
    first = ring.gops[0]
    assert first.packets[0].key
    assert seg.wall(first.packets[0].dts) <= seg.wall(200 * FRAME) - 4.0
    assert ring.span_s() < 4.0 + 1.0 + 0.2  # at most one GOP more than asked


def test_ring_bounded_by_bytes_drops_whole_gops() -> None:
    ring = PacketRing(5_000)
    feed(ring, segment(), 0, 300)
    assert ring.bytes <= 5_000
    assert ring.gops[0].packets[0].key
    assert ring.dropped_for_memory > 0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_lagging_reader_is_waited_for_before_the_clip_is_cut() -> None:
    """On a busy machine the reader can be seconds behind the camera: the clip waits until the
    ring holds the window's end (up to CATCH_UP_S), and is not cut short by the lag."""
    clock = FakeClock(1000.0)
    recorder = ClipRecorder(RecorderSettings("rtsp://cam/1"), clock=clock)
    recorder._connected = True  # what the reader thread sets
    seg = segment(1000.0)
    feed(recorder._ring, seg, 0, 100)  # up to 1010 s of wall time
    request = rec.ClipRequest(1005.0, 995.0, 1015.0, Path("clip.mp4"), lambda r, e: None)
    recorder._pending.append(request)
    clock.now = 1015.0 + rec.SETTLE_S + 0.1
    assert recorder._take_due() == []  # connected and 5 s behind: wait
    feed(recorder._ring, seg, 100, 55)  # the reader catches up past the window's end
    assert recorder._take_due() == [request]


def test_a_reader_that_never_catches_up_gets_its_clip_after_the_limit() -> None:
    clock = FakeClock(1000.0)
    recorder = ClipRecorder(RecorderSettings("rtsp://cam/1"), clock=clock)
    recorder._connected = True
    feed(recorder._ring, segment(1000.0), 0, 100)
    request = rec.ClipRequest(1005.0, 995.0, 1015.0, Path("clip.mp4"), lambda r, e: None)
    recorder._pending.append(request)
    clock.now = 1015.0 + rec.SETTLE_S + rec.CATCH_UP_S - 0.1
    assert recorder._take_due() == []
    clock.now += 0.2
    assert recorder._take_due() == [request]
    recorder._pending.append(request)
    recorder._connected = False  # a camera gone: no waiting for it
    clock.now = 1015.0 + rec.SETTLE_S
    assert recorder._take_due() == [request]


def test_plan_rebases_to_zero_and_places_segments_at_wall_time() -> None:
    ring = PacketRing(1 << 30)
    first, second = segment(1000.0), segment(1000.0 + 3.0)  # reconnected 3 s later
    feed(ring, first, 0, 20)  # 1000.0 .. 1001.9
    feed(ring, second, 50, 20)  # 1008.0 .. 1009.9 (dts restart irrelevant: wall counts)
    chosen = ring.select(1000.5, 1009.0)
    plan = plan_clip(chosen, 1001.0)
    assert plan is not None
    assert plan.packets[0].key
    assert plan.packets[0].pts == 0
    assert plan.gaps == 1
    dts = [p.dts for p in plan.packets]
    assert dts == sorted(set(dts))
    resumed = plan.packets[20]  # the first packet of the second segment
    assert resumed.key
    assert float(resumed.dts * TB) == pytest.approx(7.9, abs=0.01)
    assert plan.end_wall == pytest.approx(1009.0 + 0.2, abs=0.01)


def test_a_gap_of_a_fraction_of_frames_keeps_the_clip_on_the_frame_grid() -> None:
    """Reconnected 2.93 s later (not a whole number of frames): every dts step of the clip is
    still a whole number of frames, so FFmpeg guesses 10 fps, not 240 (as it did)."""
    ring = PacketRing(1 << 30)
    first, second = segment(1000.0), segment(1000.0 + 2.9329)
    feed(ring, first, 0, 30)
    feed(ring, second, 60, 30)
    plan = plan_clip(ring.select(1000.0, 1010.0), 1001.0)
    assert plan is not None
    steps = {b.dts - a.dts for a, b in zip(plan.packets, plan.packets[1:], strict=False)}
    assert all(step % FRAME == 0 for step in steps), steps
    resumed = plan.packets[30]  # 8.83 s after the clip's start (the first pts, at 1000.1)
    assert float(resumed.dts * TB) == pytest.approx(8.83, abs=FRAME * TB / 2 + 0.001)


def test_codec_mp4_cannot_carry_goes_to_matroska_unchanged(tmp_path: Path) -> None:
    """No re-encoding: VP8 is refused by the MP4 muxer, so the clip is the same packets in
    Matroska, with a .mkv suffix."""
    encoded = io.BytesIO()
    with av.open(encoded, "w", format="nut") as out:
        stream = out.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.gop_size = 5
        for i in range(20):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    encoded.seek(0)
    with av.open(encoded, "r", format="nut") as source_file:
        vs = source_file.streams.video[0]
        packets = [p for p in source_file.demux(vs) if p.size]
        tb = vs.time_base or TB
        source = Source(vs.codec_context.name, 64, 48, b"", tb)
        first = RawPacket(bytes(packets[0]), 0, 0, True, 1, 0.0)
        source.template = clip_plan.make_template(vs, first)
    seg = Segment(source, anchor=1000.0)
    ring = PacketRing(1 << 20)
    for p in packets:
        assert p.dts is not None
        assert p.pts is not None
        stored = StoredPacket(bytes(p), p.pts, p.dts, p.is_keyframe, p.duration or 1)
        ring.add(seg, stored, seg.wall(p.dts))
    plan = plan_clip(ring.select(0, 2000), 1000.5)
    assert plan is not None
    path, fmt, size, digest = clip_plan.write_plan(plan, tmp_path / "cam1.mp4")
    assert (path.name, fmt) == ("cam1.mkv", "matroska")
    assert size == path.stat().st_size
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with av.open(str(path)) as clip:
        assert clip.streams.video[0].codec_context.name == "vp8"
        copied = [bytes(p) for p in clip.demux(video=0) if p.size]
    assert copied == [bytes(p) for p in packets]  # the same bytes: nothing re-encoded
    assert [p.name for p in tmp_path.iterdir()] == ["cam1.mkv"]
    assert path.stat().st_mode & 0o777 == 0o640  # whatever the umask: not world-readable


def test_error_text_for_a_full_disk() -> None:
    assert clip_plan.describe_error(OSError(errno.ENOSPC, "No space left on device")) == "disk full"


# --- against the real RTSP server -------------------------------------------------------------


class Waiter:
    """Collects ``done`` callbacks."""

    def __init__(self) -> None:
        self.results: list[tuple[ClipResult | None, str | None]] = []
        self.event = threading.Event()
        self.thread: str | None = None

    def __call__(self, result: ClipResult | None, error: str | None) -> None:
        self.thread = threading.current_thread().name
        self.results.append((result, error))
        self.event.set()

    def wait(self, timeout: float) -> tuple[ClipResult | None, str | None]:
        assert self.event.wait(timeout), "clip not done in time"
        return self.results[0]


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,nb_frames",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    info: dict[str, Any] = json.loads(out.stdout)
    return info


def decode_all(path: Path) -> tuple[int, bool]:
    """(frames decoded, first frame is a keyframe); decoder errors fail the test."""
    check = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stderr == ""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), bool(frames) and frames[0].key_frame


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture
def camera() -> Iterator[RtspServer]:
    server = RtspServer(locate())
    server.start()
    # let the server's own keeper session prepare the shared media first: a client arriving
    # during that can abort gst-rtsp-server (gst_rtsp_media_get_rates: assertion failed)
    time.sleep(1.0)
    yield server
    server.thaw()
    print(f"RTSP server stderr: {server.errors()!r}")  # shown when the test failed
    server.kill()


@pytest.fixture
def recorders() -> Iterator[Callable[..., ClipRecorder]]:
    started: list[ClipRecorder] = []

    def make(url: str, **kwargs: Any) -> ClipRecorder:
        recorder = ClipRecorder(RecorderSettings(url, **kwargs))
        recorder.start()
        started.append(recorder)
        return recorder

    yield make
    for recorder in started:
        recorder.stop()


def assert_clip(result: ClipResult, low: float, high: float) -> dict[str, Any]:
    info = ffprobe(result.path)
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 768, 432)
    duration = float(info["format"]["duration"])
    assert low <= duration <= high, duration
    frames, starts_on_key = decode_all(result.path)
    assert starts_on_key
    assert frames == int(stream["nb_frames"]) == result.packets
    data = result.path.read_bytes()
    assert result.bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.codec, result.width, result.height) == ("h264", 768, 432)
    return info


@rtsp_only
def test_clip_of_the_live_stream(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    recorder = recorders(camera.url, pre_s=4, post_s=2)
    assert wait_for(lambda: recorder.stats()["buffered_s"] >= 4.5, 20)
    waiter = Waiter()
    alarm = time.time()
    recorder.request_clip(alarm, tmp_path / "ev" / "cam1.mp4", done=waiter)
    result, error = waiter.wait(15)
    assert error is None
    assert result is not None
    assert waiter.thread == "clip-writer"
    assert result.path == tmp_path / "ev" / "cam1.mp4"
    assert result.gaps == 0
    assert result.notes == ()
    assert result.start_wall <= alarm - 4 + 0.3  # timing noise of the wall mapping
    assert result.end_wall >= alarm + 2 - 0.3
    assert_clip(result, 6.0 - 1.5, 6.0 + 1.5)
    assert [p.name for p in result.path.parent.iterdir()] == ["cam1.mp4"]  # no temp left
    head = result.path.read_bytes()[:64]
    assert b"moov" in head  # faststart: the index before the media data


@rtsp_only
def test_buffer_is_bounded_by_time_and_by_bytes(
    camera: RtspServer, recorders: Callable[..., ClipRecorder]
) -> None:
    by_time = recorders(camera.url, pre_s=2)
    assert wait_for(lambda: by_time.stats()["buffered_s"] >= 2.0, 20)
    by_bytes = recorders(camera.url, pre_s=30, max_buffer_bytes=60_000)
    spans: list[float] = []
    sizes: list[int] = []

    def sample() -> bool:
        spans.append(by_time.stats()["buffered_s"])
        sizes.append(by_bytes.stats()["buffered_bytes"])
        return bool(by_bytes.stats()["dropped_for_memory"] > 0) and len(spans) > 30

    assert wait_for(sample, 30)
    assert max(spans) <= 2.0 + rec.KEEP_MARGIN_S + 1.0 + 0.3  # plus one GOP (1 s here)
    assert 0 < max(sizes) <= 60_000


@rtsp_only
def test_two_overlapping_requests(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    recorder = recorders(camera.url, pre_s=4, post_s=2)
    assert wait_for(lambda: recorder.stats()["buffered_s"] >= 4.5, 20)
    first, second = Waiter(), Waiter()
    recorder.request_clip(time.time(), tmp_path / "a" / "cam1.mp4", done=first)
    time.sleep(1.0)
    recorder.request_clip(time.time(), tmp_path / "b" / "cam1.mp4", pre_s=5, done=second)
    one, two = first.wait(15), second.wait(15)
    assert one[1] is None
    assert two[1] is None
    assert one[0] is not None
    assert two[0] is not None
    assert_clip(one[0], 4.5, 7.5)
    assert_clip(two[0], 5.5, 8.5)


@rtsp_only
def test_camera_killed_during_the_post_window(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    recorder = recorders(camera.url, pre_s=4, post_s=4, open_timeout_s=1.0)
    assert wait_for(lambda: recorder.stats()["buffered_s"] >= 4.5, 20)
    waiter = Waiter()
    recorder.request_clip(time.time(), tmp_path / "cam1.mp4", done=waiter)
    time.sleep(1.0)
    camera.kill()
    result, error = waiter.wait(15)
    assert error is None
    assert result is not None
    assert any("before the requested end" in note for note in result.notes)
    assert_clip(result, 4.0, 7.0)  # 4 s (or a GOP more) before, about 1 s after
    assert not recorder.stats()["connected"]


@rtsp_only
def test_nothing_received_gives_a_clear_error(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    url = camera.url
    camera.kill()  # the port is closed: connection refused
    recorder = recorders(url, pre_s=1, post_s=1, open_timeout_s=1.0)
    waiter = Waiter()
    recorder.request_clip(time.time(), tmp_path / "cam1.mp4", done=waiter)
    assert waiter.wait(10) == (None, "stream offline for the whole window")
    assert not (tmp_path / "cam1.mp4").exists()
    assert recorder.stats()["last_error"]


@rtsp_only
def test_frozen_camera_reconnects_and_the_clip_spans_the_gap(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    recorder = recorders(
        camera.url, pre_s=3, post_s=2, open_timeout_s=2.0, read_timeout_s=1.0, backoff_max_s=1.0
    )
    assert wait_for(lambda: recorder.stats()["buffered_s"] >= 3.5, 20)
    waiter = Waiter()
    frozen_at = time.time()
    recorder.request_clip(frozen_at, tmp_path / "cam1.mp4", post_s=9.0, done=waiter)
    camera.freeze()
    assert wait_for(lambda: not recorder.stats()["connected"], 10)
    time.sleep(1.0)
    camera.thaw()
    assert wait_for(
        lambda: recorder.stats()["connected"] and recorder.stats()["reconnects"] >= 1, 8
    )
    result, error = waiter.wait(15)
    assert error is None
    assert result is not None
    assert result.gaps >= 1
    assert any("interruption" in note for note in result.notes)
    assert_clip(result, 12.0 - 1.5, 12.0 + 1.5)  # the gap is kept as time


def test_disk_full_is_reported_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Muxing into a full disk (ENOSPC from the writer) through the recorder's own path."""
    recorder = ClipRecorder(RecorderSettings("rtsp://127.0.0.1:9/none"))
    feed(recorder._ring, segment(time.time() - 5), 0, 30)  # 3 s of packets, 5 s ago

    def full(plan: clip_plan.ClipPlan, target: Path, fmt: str) -> None:
        target.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(clip_plan, "mux", full)
    recorder.start()
    try:
        waiter = Waiter()
        recorder.request_clip(
            time.time() - 3, tmp_path / "cam1.mp4", pre_s=1, post_s=1, done=waiter
        )
        assert waiter.wait(10) == (None, "disk full")
        assert list(tmp_path.iterdir()) == []
    finally:
        recorder.stop()


def test_no_password_in_logs_or_stats(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeguard.analytics.recorder")
    recorder = ClipRecorder(
        RecorderSettings("rtsp://admin:s3cret@127.0.0.1:9/cam", open_timeout_s=1.0)
    )
    recorder.start()
    try:
        assert wait_for(lambda: recorder.stats()["last_error"] is not None, 10)
    finally:
        recorder.stop()
    assert "s3cret" not in caplog.text
    assert "s3cret" not in str(recorder.stats())
    assert "admin:***@127.0.0.1:9" in caplog.text


@rtsp_only
@pytest.mark.slow
def test_real_windows_30_s_before_and_10_s_after(
    camera: RtspServer, recorders: Callable[..., ClipRecorder], tmp_path: Path
) -> None:
    recorder = recorders(camera.url)  # the defaults: pre_s=30, post_s=10
    time.sleep(31.5)
    waiter = Waiter()
    recorder.request_clip(time.time(), tmp_path / "cam1.mp4", done=waiter)
    result, error = waiter.wait(20)
    assert error is None
    assert result is not None
    info = assert_clip(result, 39.5, 42.0)
    assert float(info["format"]["duration"]) >= 39.5
