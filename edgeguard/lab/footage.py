"""Real footage for tests, benchmarks and the demo (never used by the daemon itself).

The clip is intel-iot-devkit/sample-videos' one-by-one-person-detection.mp4 (CC-BY-4.0, Intel;
credited in README.md). It is looked for beside the repository (``../shared/data``), then in the
user's cache; when absent it is downloaded once from GitHub and its sha256 checked."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgeguard.analytics.model_files import sha256_of

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Footage:
    name: str
    sha256: str
    url: str | None


PERSON_CLIP = Footage(
    "one-by-one-person-detection.mp4",
    "a5964aa259099a482a8b360ffc2c57b5a30f84d5919236a4dad01f8e929ac07c",
    "https://github.com/intel-iot-devkit/sample-videos/raw/master/one-by-one-person-detection.mp4",
)


class FootageError(RuntimeError):
    """The footage could not be found or fetched."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeguard" / "footage"


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("EDGEGUARD_SHARED"):
        dirs.append(Path(os.environ["EDGEGUARD_SHARED"]) / "data")
    dirs += [REPO_ROOT.parent / "shared" / "data", Path("/work/shared/data"), cache_dir()]
    return dirs


def locate(footage: Footage = PERSON_CLIP, *, download: bool = True) -> Path:
    """The clip's path, checked against its sha256; downloaded into the cache when absent."""
    for folder in search_dirs():
        candidate = folder / footage.name
        if candidate.is_file():
            if sha256_of(candidate) == footage.sha256:
                return candidate
            logger.warning("%s: sha256 mismatch, ignored", candidate)
    if not download or footage.url is None:
        raise FootageError(f"{footage.name} not found in {', '.join(map(str, search_dirs()))}")
    return _download(footage)


def _download(footage: Footage) -> Path:
    target = cache_dir() / footage.name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    assert footage.url is not None
    logger.info("downloading %s", footage.url)
    try:
        with urllib.request.urlopen(footage.url, timeout=60) as response, partial.open("wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as exc:
        raise FootageError(f"could not download {footage.url}: {exc}") from exc
    if sha256_of(partial) != footage.sha256:
        partial.unlink()
        raise FootageError(f"{footage.url}: sha256 mismatch; not used")
    partial.replace(target)
    return target


H264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-bf", "0"]


def _encoded(target: Path, ffmpeg_args: list[str]) -> Path:
    """``target`` made once by ffmpeg (Debian's) into the cache, through a partial file."""
    partial = target.with_name(target.stem + ".part.mp4")
    command = ["ffmpeg", "-loglevel", "error", "-y", *ffmpeg_args, str(partial)]
    subprocess.run(command, check=True, timeout=600)
    partial.replace(target)
    return target


def scaled(source: Path, width: int, height: int, fps: int | None = None) -> Path:
    """A copy of ``source`` re-encoded to ``width``x``height`` H.264 (for benchmarks at camera
    resolutions), made once with Debian's ffmpeg and kept in the cache."""
    suffix = f"-{width}x{height}" + (f"-{fps}fps" if fps else "")
    target = cache_dir() / f"{source.stem}{suffix}.mp4"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    vf = f"scale={width}:{height}" + (f",fps={fps}" if fps else "")
    args = ["-i", str(source), "-vf", vf, *H264, "-profile:v", "main", "-pix_fmt", "yuv420p"]
    return _encoded(target, args)


def composed(source: Path, segments: list[tuple[float, float]], name: str) -> Path:
    """A clip made of ``segments`` (start, end seconds) of ``source`` one after the other,
    re-encoded to H.264 (GOP 2 s, no B-frames), made once and kept in the cache. Tests use it
    to put a scene at a known time, e.g. a long empty stretch before a person walks in."""
    target = cache_dir() / f"{source.stem}-{name}.mp4"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    listing = target.with_suffix(".txt")
    lines = [
        f"file '{source}'\ninpoint {start:.3f}\noutpoint {end:.3f}\n" for start, end in segments
    ]
    listing.write_text("".join(lines), encoding="utf-8")
    concat = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    _encoded(target, [*concat, *H264, "-pix_fmt", "yuv420p", "-r", "10"])
    listing.unlink()
    return target
