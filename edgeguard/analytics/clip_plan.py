"""An evidence clip from the ring's packets: the plan (timestamps rebased to the clip, a gap kept
as time, on the frame grid) and its writing as MP4 by stream copy, fsynced, with its sha256
(docs/evidence-clips.md)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from edgeguard.analytics.clip_packets import RawPacket, Segment, Source, StoredPacket
from edgeguard.filemodes import DATA_FILE, fsync_folder, make_dir

MP4_CODECS = frozenset({"h264", "hevc"})


# --- clip plan (pure apart from the Source template) ------------------------------------------


@dataclass(frozen=True)
class OutPacket:
    data: bytes
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class ClipPlan:
    source: Source
    time_base: Fraction
    packets: list[OutPacket]
    start_wall: float
    end_wall: float
    gaps: int
    notes: tuple[str, ...]


def rescale(ticks: int, src: Fraction, dst: Fraction) -> int:
    return ticks if src == dst else round(ticks * src / dst)


def plan_clip(chosen: Sequence[tuple[Segment, StoredPacket]], alarm_wall: float) -> ClipPlan | None:
    """Timestamps rebased to the clip: the first keyframe is shown at 0; each later segment
    (after a reconnect) is placed at its wall time, so a gap in the stream is a gap in the clip
    (the last frame stays on screen). Segments whose codec parameters differ from those of the
    segment at the alarm time are left out (MP4 has one set per track)."""
    if not chosen:
        return None
    main = _alarm_segment(chosen, alarm_wall)
    notes: list[str] = []
    segments = _split_segments(chosen)
    gaps = len(segments) - 1
    kept = [s for s in segments if s[0][0].source.params == main.source.params]
    if len(kept) < len(segments):
        notes.append(f"{len(segments) - len(kept)} segment(s) with other codec parameters left out")
    tb = main.source.time_base
    first_seg, first_pkt = kept[0][0]
    wall0 = first_seg.wall(first_pkt.pts)
    packets: list[OutPacket] = []
    last_dts: int | None = None
    end_wall = wall0
    for run in kept:
        seg = run[0][0]
        stb = seg.source.time_base
        base_dts = run[0][1].dts
        offset = round((seg.wall(base_dts) - wall0) / tb)
        if last_dts is not None:
            offset = resume_on_frame_grid(offset, last_dts, packets[-1].duration)
        for _, p in run:
            dts = offset + rescale(p.dts - base_dts, stb, tb)
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
            pts = dts + rescale(p.pts - p.dts, stb, tb)
            duration = max(1, rescale(p.duration, stb, tb))
            packets.append(OutPacket(p.data, pts, dts, duration, p.key))
            last_dts = dts
            end_wall = max(end_wall, wall0 + float((pts + duration) * tb))
    return ClipPlan(main.source, tb, packets, wall0, end_wall, gaps, tuple(notes))


def resume_on_frame_grid(offset: int, last_dts: int, frame: int) -> int:
    """The first dts of a segment after a gap, a whole number of frames after the last one:
    a gap of 29.3 frames makes FFmpeg guess the clip's rate as 240 fps (its r_frame_rate
    fits every dts step), which players and ``ffmpeg -i clip`` then trip over. Rounding the
    gap to whole frames moves the resumed video by at most half a frame."""
    frames = max(1, round((offset - last_dts) / frame))
    return last_dts + frames * frame


def _alarm_segment(chosen: Sequence[tuple[Segment, StoredPacket]], alarm_wall: float) -> Segment:
    best = chosen[0][0]
    for seg, p in chosen:
        if seg.wall(p.dts) <= alarm_wall:
            best = seg
    return best


def _split_segments(
    chosen: Sequence[tuple[Segment, StoredPacket]],
) -> list[list[tuple[Segment, StoredPacket]]]:
    runs: list[list[tuple[Segment, StoredPacket]]] = []
    for item in chosen:
        if runs and runs[-1][0][0] is item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def window_notes(plan: ClipPlan, start: float, end: float, tolerance: float) -> list[str]:
    notes = []
    if plan.start_wall > start + tolerance:
        notes.append(f"starts {plan.start_wall - start:.1f} s after the requested start")
    if plan.end_wall < end - tolerance:
        notes.append(f"ends {end - plan.end_wall:.1f} s before the requested end")
    if plan.gaps:
        notes.append(f"{plan.gaps} stream interruption(s) inside the clip")
    return notes


# --- writing ----------------------------------------------------------------------------------


def mux(plan: ClipPlan, target: Path, fmt: str) -> None:
    options = {"movflags": "+faststart"} if fmt == "mp4" else {}
    with av.open(str(target), "w", format=fmt, options=options) as out:
        # opaque: the template's own (decoder) codec, so no encoder has to exist in this build
        stream = out.add_stream_from_template(plan.source.template_stream(), opaque=True)
        stream.time_base = plan.time_base
        for op in plan.packets:
            packet = Packet(op.data)
            packet.pts = op.pts
            packet.dts = op.dts
            packet.duration = op.duration
            packet.time_base = plan.time_base
            packet.is_keyframe = op.key
            packet.stream = stream
            out.mux(packet)


def write_plan(plan: ClipPlan, path: Path) -> tuple[Path, str, int, str]:
    """Mux into a temp file beside ``path``, fsync, rename, fsync the folder.
    Returns (final path, container, bytes, sha256). MP4 first; Matroska when MP4 refuses the
    codec (the path then ends in .mkv)."""
    make_dir(path.parent)
    attempts = [("mp4", path)]
    if plan.source.codec not in MP4_CODECS:
        attempts.append(("matroska", path.with_suffix(".mkv")))
    for fmt, target in attempts:
        partial = target.with_name(f".{target.name}.part")
        try:
            mux(plan, partial, fmt)
        except ValueError:  # "format does not support codec"
            partial.unlink(missing_ok=True)
            if target is attempts[-1][1]:
                raise
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.chmod(DATA_FILE)  # PyAV creates it through the umask
        size, digest = _fsync_and_hash(partial)
        partial.replace(target)
        fsync_folder(target.parent)
        return target, fmt, size, digest
    raise AssertionError("unreachable")


def _fsync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb+") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def describe_error(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if code == errno.EFBIG:
        return "file too large"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write the clip: {os.strerror(code)}"
    return f"cannot write the clip: {exc}"


def make_template(stream: VideoStream, key: RawPacket) -> InputContainer:
    """A private NUT file in memory with the stream's parameters and one keyframe, re-opened
    for reading (a header alone is not enough for the NUT demuxer)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="nut") as out:
        tstream = out.add_stream_from_template(stream)
        packet = Packet(key.data)
        packet.pts = packet.dts = 0
        packet.time_base = stream.time_base or Fraction(1, 90000)
        packet.is_keyframe = True
        packet.stream = tstream
        out.mux(packet)
    buffer.seek(0)
    return av.open(buffer, "r", format="nut")
