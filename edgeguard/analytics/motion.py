"""Motion detection on a small grey frame, robust to exposure changes.

See docs/analytics-motion-tamper.md.

Per analysed frame: scale down to ``width`` (grey), blur, estimate the camera's gain against
the background model (the median pixel ratio: a person does not move the median, an
auto-exposure step or a lighting change moves every pixel), compare the frame with the
background *at the frame's exposure*, threshold, drop masked pixels, and group the changed
pixels into boxes. A change over ``lighting_change`` of the frame at once (lights switched,
IR cut filter) resets the model instead of reporting motion. The model is a running average
that learns the background at ``learn_rate``; changed pixels that have stopped changing (a
person standing still, the ghost one leaves behind) join it at ``settle_rate``.

Pure and deterministic: no global state, no threads, no I/O; one instance per camera."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike

from edgeguard.analytics.geometry import Box, Mask, Polygon, merge_boxes, polygon_mask

logger = logging.getLogger(__name__)

Grey = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

_GAIN_STEP = 8  # gain is estimated on every 8th pixel of every 8th row
_GAIN_RANGE = (16.0, 240.0)  # pixels used for the gain: neither near black nor near saturation
_GAIN_REPORT = 0.05  # a gain change above 5 % is reported as a recalibration
_GAIN_RESCALE = 0.002  # below this the models are not rescaled (noise of the estimate)
_MIN_GAIN_SAMPLES = 16
_LONGTERM_SLOWER = 10  # the empty-scene model learns 10x slower than the background


def check_frame(frame: object) -> npt.NDArray[np.uint8]:
    """The frame if it is a uint8 image (H x W, H x W x 1, x 3 or x 4); ValueError otherwise."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a frame is a numpy array, got {type(frame).__name__}")  # noqa: TRY004
    if frame.dtype != np.uint8:
        raise ValueError(f"a frame is uint8, got {frame.dtype}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError(f"a frame is H x W (x 1, 3 or 4 channels), got shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty frame, shape {frame.shape}")
    return frame


def processing_size(shape: tuple[int, ...], width: int) -> tuple[int, int]:
    """(w, h) a frame of ``shape`` is scaled to: ``width`` wide, never enlarged, aspect kept;
    very tall frames are limited to 2 x ``width`` rows."""
    h, w = int(shape[0]), int(shape[1])
    scale = min(1.0, width / w, 2 * width / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def small_grey(frame: npt.NDArray[np.uint8], width: int) -> Grey:
    """The frame scaled down to ``width`` (``processing_size``) and converted to grey.
    Scaling averages pixels (area); a frame over twice as large is first sampled down to
    twice the size (nearest), which costs a tenth of averaging a 720p or 1080p frame and
    still averages 2x2."""
    size = processing_size(frame.shape, width)
    image: MatLike = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
    if image.shape[1] > 2 * size[0] and image.shape[0] > 2 * size[1]:
        image = cv2.resize(image, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_NEAREST)
    return _grey_at(image, size, cv2.INTER_AREA)


def sampled_grey(frame: npt.NDArray[np.uint8], width: int) -> Grey:
    """The frame at its ``processing_size``, grey: motion's first step. A frame over twice as
    large is sampled (nearest) straight to that size, as Frigate does; a smaller one is
    averaged (area). Sampling reads only the rows it keeps, so its cost hardly grows with
    the input (1080p: 90 us, a third of sampling to twice the size and averaging 2x2), and
    the Gaussian blur that follows does the averaging against noise."""
    size = processing_size(frame.shape, width)
    image: MatLike = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
    if image.shape[1] > 2 * size[0] or image.shape[0] > 2 * size[1]:
        return _grey_at(image, size, cv2.INTER_NEAREST)
    return _grey_at(image, size, cv2.INTER_AREA)


def _grey_at(image: MatLike, size: tuple[int, int], interpolation: int) -> Grey:
    """``image`` grey at ``size``; nearest sampling before the colour conversion (fewer
    pixels converted), area averaging after it (one pass over the colour pixels, not two)."""
    if interpolation == cv2.INTER_NEAREST and (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[:, :, 0]
        else:
            code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
            image = cv2.cvtColor(image, code)
    if (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cast(Grey, np.ascontiguousarray(image).reshape(size[1], size[0]))


def _grid(image: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Every _GAIN_STEP-th pixel of every _GAIN_STEP-th row (a view)."""
    half = _GAIN_STEP // 2
    return image[half::_GAIN_STEP, half::_GAIN_STEP]


@dataclass(frozen=True)
class MotionSettings:
    """Motion stage settings (one camera)."""

    width: int = 320
    """Processing width in pixels: frames are scaled down to it (aspect kept) and made grey."""
    threshold: int = 25
    """Grey-level difference (0..255) from the background that makes a pixel 'changed'."""
    min_area: float = 0.002
    """Fraction of the frame a changed blob must cover to be a motion box."""
    blur: int = 5
    """Gaussian blur kernel (odd pixels at the processing width; 0 or 1: none) against noise."""
    learn_rate: float = 0.02
    """Per analysed frame: how fast the background model follows the scene (0.02 at 5 fps:
    a time constant of 10 s)."""
    lighting_change: float = 0.4
    """Fraction of the analysed pixels changed at once that means a lighting change (lights,
    IR cut filter) after exposure compensation: the model is reset, no motion reported."""
    masks: tuple[Polygon, ...] = ()
    """Areas ignored (a tree, a TV screen, a timestamp), normalised polygons."""
    contour_limit: int = 20
    """At most this many motion boxes (the largest) after merging."""
    settle_rate: float = 0.1
    """Per analysed frame: how fast changed pixels that have stopped changing join the
    background (a person standing still, the ghost a departed one leaves): ~3 s at 5 fps."""
    merge_margin: float = 0.02
    """Motion boxes closer than this (fraction of the frame) are merged into one."""
    gap_s: float = 10.0
    """A pause in the frames longer than this (or time going back) resets the model."""
    dilate: int = 2
    """3x3 dilations joining a moving person's fragments into one blob."""

    def __post_init__(self) -> None:
        checks = [
            (self.width >= 8, "width must be >= 8"),
            (1 <= self.threshold <= 254, "threshold must be 1..254"),
            (0.0 <= self.min_area < 1.0, "min_area must be 0..1"),
            (self.blur >= 0 and (self.blur <= 1 or self.blur % 2 == 1), "blur must be odd"),
            (0.0 < self.learn_rate <= 1.0, "learn_rate must be in (0, 1]"),
            (0.0 < self.settle_rate <= 1.0, "settle_rate must be in (0, 1]"),
            (0.0 < self.lighting_change <= 1.0, "lighting_change must be in (0, 1]"),
            (self.contour_limit >= 1, "contour_limit must be >= 1"),
            (self.merge_margin >= 0.0, "merge_margin must be >= 0"),
            (self.gap_s > 0.0, "gap_s must be > 0"),
            (0 <= self.dilate <= 10, "dilate must be 0..10"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class MotionResult:
    """One analysed frame's motion."""

    boxes: tuple[Box, ...]
    """Motion boxes, normalised, largest first; empty when nothing moved."""
    changed_fraction: float
    """Fraction of the analysed (unmasked) pixels that differ from the background."""
    recalibrated: bool
    """The model was (re)built or followed an exposure/lighting change on this frame."""
    motion: bool
    """True when there is at least one motion box."""
    gain: float = 1.0
    """The frame's brightness relative to the background model (1.0: unchanged exposure)."""


@dataclass
class _Model:
    """The background model at one processing size."""

    size: tuple[int, int]
    keep: Mask  # 255 where pixels are analysed (outside the masks)
    keep_count: int
    background: Floats
    longterm: Floats  # the empty scene: learnt only where nothing changed, 10x slower
    previous: Grey  # the last frame (uint8: whole grey levels)
    gain_keep: npt.NDArray[np.bool_] = field(repr=False)  # unmasked, on the gain grid


class MotionDetector:
    """Background-model motion detector; feed it every analysed frame of one camera."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._model: _Model | None = None
        self._last_t: float | None = None
        # n 3x3 dilations are one (2n+1)-square dilation, which OpenCV does in one pass
        side = 2 * settings.dilate + 1
        self._kernel = np.ones((side, side), np.uint8)

    def reset(self) -> None:
        """Forget the background: the next frame starts a new model."""
        self._model = None
        self._last_t = None

    def update(self, frame_bgr: npt.NDArray[np.uint8], t: float) -> MotionResult:
        """Analyse one frame (BGR, BGRA or grey, any size) taken at ``t`` seconds."""
        frame = check_frame(frame_bgr)
        grey = self._prepare(frame)
        size = (grey.shape[1], grey.shape[0])
        model = self._model
        if model is None or model.size != size or self._gap(t):
            self._model = self._new_model(size, grey)
            self._last_t = t
            return MotionResult((), 0.0, True, False)
        self._last_t = t
        gain = self._gain(model, grey)
        if abs(gain - 1.0) > _GAIN_RESCALE:  # follow the exposure: the models at this gain
            model.background = _rescaled(model.background, gain)
            model.longterm = _rescaled(model.longterm, gain)
        changed = self._changed(model, grey)
        count = cv2.countNonZero(changed)
        fraction = count / model.keep_count if model.keep_count else 0.0
        if fraction > self.settings.lighting_change:
            logger.debug("lighting change: %.0f %% of the frame changed", fraction * 100)
            self._model = self._new_model(size, grey)
            return MotionResult((), fraction, True, False, gain)
        boxes = self._boxes(changed, size) if count else ()
        self._learn(model, grey, changed, count)
        return MotionResult(boxes, fraction, abs(gain - 1.0) > _GAIN_REPORT, bool(boxes), gain)

    def _gap(self, t: float) -> bool:
        last = self._last_t
        if last is None:
            return False
        return not math.isfinite(t) or t < last or t - last > self.settings.gap_s

    def _prepare(self, frame: npt.NDArray[np.uint8]) -> Grey:
        grey = sampled_grey(frame, self.settings.width)
        k = self.settings.blur
        if k > 1:
            return cast(Grey, cv2.GaussianBlur(grey, (k, k), 0, borderType=cv2.BORDER_REPLICATE))
        # kept as the previous frame: never the caller's buffer (a decoder may reuse it)
        return grey.copy() if np.may_share_memory(grey, frame) else grey

    def _new_model(self, size: tuple[int, int], grey: Grey) -> _Model:
        current = grey.astype(np.float32)
        keep = cast(Mask, cv2.bitwise_not(polygon_mask(self.settings.masks, size[0], size[1])))
        return _Model(
            size=size,
            keep=keep,
            keep_count=cv2.countNonZero(keep),
            background=current.copy(),
            longterm=current.copy(),
            previous=grey,
            gain_keep=_grid(keep) > 0,
        )

    @staticmethod
    def _gain(model: _Model, grey: Grey) -> float:
        """The median ratio frame / background over a sparse grid of unmasked pixels that are
        neither near black nor near saturation: the camera's exposure change, untouched by
        anything covering less than half the frame."""
        bg = _grid(model.background)
        cur = _grid(grey).astype(np.float32)
        low, high = _GAIN_RANGE
        usable = model.gain_keep & (bg > low) & (bg < high) & (cur > low / 2) & (cur < 254.0)
        ratios = cur[usable] / bg[usable]
        if ratios.size < _MIN_GAIN_SAMPLES:
            return 1.0
        middle = ratios.size // 2  # the upper median: np.median costs 5x as much per frame
        return float(np.partition(ratios, middle)[middle])

    def _changed(self, model: _Model, grey: Grey) -> Mask:
        """Pixels that differ from the background, outside the masks (0/255). A pixel that
        differs from the background but is back to (much closer to) the empty scene, where
        a person stood and left (a 'ghost'), is not a change: the background takes it.
        Compared in whole grey levels (uint8): a quarter of the memory traffic of floats,
        and rounding by half a level is nothing against a threshold of ~25."""
        threshold = self.settings.threshold
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(model.background))
        binary = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)[1]
        changed = cast(Mask, cv2.bitwise_and(binary, model.keep))
        if not cv2.countNonZero(changed):
            return changed
        # near the empty scene: |grey - longterm| <= max(diff / 2, threshold)
        to_empty = cv2.absdiff(grey, cv2.convertScaleAbs(model.longterm))
        near_empty = cv2.bitwise_or(
            cv2.threshold(to_empty, threshold, 255, cv2.THRESH_BINARY_INV)[1],
            cv2.compare(cv2.add(to_empty, to_empty), diff, cv2.CMP_LE),
        )
        ghost = cv2.bitwise_and(near_empty, changed)
        if cv2.countNonZero(ghost):
            cv2.copyTo(grey.astype(np.float32), ghost, model.background)
            changed = cast(Mask, cv2.subtract(changed, ghost))
        return changed

    def _boxes(self, changed: Mask, size: tuple[int, int]) -> tuple[Box, ...]:
        s = self.settings
        blobs = cv2.dilate(changed, self._kernel) if s.dilate else changed
        contours = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        min_pixels = s.min_area * size[0] * size[1]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h >= min_pixels and cv2.contourArea(contour) >= min_pixels:
                boxes.append(Box.from_pixels(x, y, w, h, size[0], size[1]))
        return tuple(merge_boxes(boxes, s.merge_margin)[: s.contour_limit])

    def _learn(self, model: _Model, grey: Grey, changed: Mask, count: int) -> None:
        """Learn the background slowly, the empty scene 10x slower and only where nothing
        changed, and let changed pixels that no longer change settle in faster. The float
        models accumulate the uint8 frame directly, and the frame-to-frame difference is taken
        in uint8 (both exact: the frame is whole grey levels), so no float copy of the frame
        is made."""
        s = self.settings
        cv2.accumulateWeighted(grey, model.background, s.learn_rate)
        rate = s.learn_rate / _LONGTERM_SLOWER
        if count:
            cv2.accumulateWeighted(grey, model.longterm, rate, mask=cv2.bitwise_not(changed))
            still = cv2.threshold(
                cv2.absdiff(grey, model.previous), s.threshold / 2, 255, cv2.THRESH_BINARY_INV
            )[1]
            settle = cv2.bitwise_and(changed, still)
            cv2.accumulateWeighted(grey, model.background, s.settle_rate, mask=settle)
        else:
            cv2.accumulateWeighted(grey, model.longterm, rate)
        model.previous = grey


def _rescaled(model: Floats, gain: float) -> Floats:
    """The model times ``gain``, at most 255, in place."""
    np.multiply(model, np.float32(gain), out=model)
    return np.minimum(model, np.float32(255.0), out=model)
