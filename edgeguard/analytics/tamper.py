"""Camera tamper detection: covered, blinded, defocused, moved (docs/analytics-motion-tamper.md).

Per analysed frame, on a small grey frame (``width`` pixels wide) cut into a grid of cells:

- covered: the frame is dark (mean below ``dark_level``) or flat (std below ``uniform_std``),
  or nearly all the cells that had texture in the baseline have gone flat;
- blinded: the frame is bright (mean above ``bright_level``) and flat or mostly saturated;
- defocused: the median, over the textured cells, of the Laplacian energy relative to the
  baseline collapses below ``defocus_ratio`` (a median: a person covering part of the view
  leaves the other cells sharp);
- moved: the share of textured cells whose edge map no longer correlates with the reference
  (zero-mean normalised correlation per cell) exceeds ``moved_ratio``; a person walking past
  hides a part of the cells for a few seconds, a moved camera changes all of them for good.

A condition is reported (one :class:`TamperEvent`) once it has held for ``hold_s``, and
restored once it has been gone for ``hold_s``. The baseline (sharpness, texture) is learnt over
``learn_s`` after start and after each restore; the reference view (edges) is kept across a
restore, so that covering a camera, turning it and uncovering it is still reported as moved,
and follows slow changes of the scene only while the view matches it.

Pure and deterministic: no global state, no threads, no I/O; one instance per camera."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal, cast

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.analytics.motion import check_frame, small_grey

logger = logging.getLogger(__name__)

Reason = Literal["covered", "blinded", "defocused", "moved"]
PRIORITY: tuple[Reason, ...] = ("covered", "blinded", "defocused", "moved")

Floats = npt.NDArray[np.float32]

_EPS = 1e-6
_MIN_LEARN_FRAMES = 3
_TEXTURE_STD = 2.0  # a baseline cell is textured when its grey std is >= 2 x uniform_std
_EDGE_FLOOR = 4.0  # a reference cell takes part in 'moved' when its edge std is above this
_MATCH_NCC = 0.6  # a cell matches the reference when its edge correlation is at least this
_LOST_TEXTURE = 0.75  # this share of textured cells gone flat: covered
_SATURATED = 250
_BLINDED_SATURATION = 0.8  # this share of pixels saturated (with a bright mean): blinded
_ADAPT_RATE = 0.002  # per frame: the reference follows slow scene changes (~100 s at 5 fps)


@dataclass(frozen=True)
class TamperSettings:
    """Tamper stage settings (one camera)."""

    width: int = 160
    """Processing width in pixels: frames are scaled down to it (aspect kept) and made grey."""
    hold_s: float = 5.0
    """A condition must hold this long before it is reported, and be gone this long before
    it is restored."""
    learn_s: float = 10.0
    """Baseline learning (sharpness, texture) after start and after each restore."""
    dark_level: float = 20.0
    """Mean grey below this: covered."""
    uniform_std: float = 6.0
    """Grey standard deviation below this: covered (or blinded when bright)."""
    bright_level: float = 235.0
    """Mean grey above this, with a flat or saturated image: blinded."""
    defocus_ratio: float = 0.3
    """Sharpness (Laplacian energy) below this fraction of the baseline: defocused."""
    moved_ratio: float = 0.75
    """Share of the reference's textured cells whose edges no longer match: moved."""
    grid: tuple[int, int] = (8, 6)
    """Cells across and down."""

    def __post_init__(self) -> None:
        checks = [
            (self.width >= 32, "width must be >= 32"),
            (self.hold_s >= 0.0 and math.isfinite(self.hold_s), "hold_s must be >= 0"),
            (self.learn_s >= 0.0 and math.isfinite(self.learn_s), "learn_s must be >= 0"),
            (0.0 <= self.dark_level < self.bright_level <= 255.0, "need dark < bright levels"),
            (self.uniform_std > 0.0, "uniform_std must be > 0"),
            (0.0 < self.defocus_ratio < 1.0, "defocus_ratio must be in (0, 1)"),
            (0.0 < self.moved_ratio <= 1.0, "moved_ratio must be in (0, 1]"),
            (1 <= self.grid[0] <= 32 and 1 <= self.grid[1] <= 32, "grid must be 1..32 cells"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class TamperEvent:
    """A tamper condition raised (``active``) or restored."""

    active: bool
    reason: Reason
    at: float
    """The frame time at which the transition was decided (onset + hold_s or later)."""
    measures: dict[str, float]
    """The frame's measures (mean, std, sharpness, moved, ...) and ``since``: when the
    condition (or its absence, for a restore) began."""


@dataclass
class _Cells:
    """One frame's measures, whole-frame and per cell."""

    mean: float
    std: float
    saturated: float
    cell_std: Floats
    energy: Floats  # Laplacian energy per cell, normalised by the frame's brightness
    edges: Floats  # edge map (gradient magnitude, blurred), full processing size


@dataclass
class _Baseline:
    frames: int = 0
    energy_sum: Floats | None = None
    std_sum: Floats | None = None

    def add(self, cells: _Cells) -> None:
        if self.energy_sum is None or self.std_sum is None:
            self.energy_sum = cells.energy.copy()
            self.std_sum = cells.cell_std.copy()
        else:
            self.energy_sum += cells.energy
            self.std_sum += cells.cell_std
        self.frames += 1


@dataclass
class _State:
    learn_start: float
    baseline: _Baseline = field(default_factory=_Baseline)
    energy: Floats | None = None  # learnt per-cell sharpness
    textured: npt.NDArray[np.bool_] | None = None  # learnt: cells with texture
    reference: Floats | None = None  # edge map of the reference view
    pending: dict[Reason, float] = field(default_factory=dict)
    active: Reason | None = None
    clear_since: float | None = None
    last_t: float | None = None


class TamperDetector:
    """Camera tamper detector; feed it every analysed frame of one camera."""

    def __init__(self, settings: TamperSettings) -> None:
        self.settings = settings
        self._state: _State | None = None
        self._size: tuple[int, int] | None = None
        self.last_measures: dict[str, float] = {}

    @property
    def active(self) -> Reason | None:
        """The condition currently reported, or None."""
        return self._state.active if self._state else None

    @property
    def learning(self) -> bool:
        state = self._state
        return state is None or state.energy is None

    def reset(self) -> None:
        """Forget everything, including the reference view (e.g. after the camera was re-aimed
        on purpose); the next frame starts learning."""
        self._state = None
        self._size = None

    def update(self, frame_bgr: npt.NDArray[np.uint8], t: float) -> TamperEvent | None:
        """Analyse one frame (BGR, BGRA or grey, any size) taken at ``t`` seconds; an event
        only when a condition is raised or restored."""
        grey = small_grey(check_frame(frame_bgr), self.settings.width)
        size = (grey.shape[1], grey.shape[0])
        state = self._state
        if state is None or size != self._size or not math.isfinite(t):
            state = self._start(t, size)
        elif state.last_t is not None and t < state.last_t:
            logger.info("tamper: time went back (%.3f < %.3f), starting again", t, state.last_t)
            state = self._start(t, size)
        state.last_t = t
        cells = self._measure(grey)
        measures = self._evaluate(state, cells)
        self.last_measures = measures
        present = self._conditions(measures)
        self._learn(state, cells, present, t)
        return self._transition(state, present, t, measures)

    # ---- measuring

    def _start(self, t: float, size: tuple[int, int]) -> _State:
        self._size = size
        self._state = _State(learn_start=t if math.isfinite(t) else 0.0)
        return self._state

    def _cell_means(self, image: Floats) -> Floats:
        cols, rows = self.settings.grid
        return cast(Floats, cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA))

    def _measure(self, grey: npt.NDArray[np.uint8]) -> _Cells:
        mean_a, std_a = cv2.meanStdDev(grey)
        mean, std = float(mean_a[0, 0]), float(std_a[0, 0])
        saturated = float(np.count_nonzero(grey >= _SATURATED)) / grey.size
        g = grey.astype(np.float32)
        cell_mean = self._cell_means(g)
        cell_sq = self._cell_means(g * g)
        cell_std = np.sqrt(np.maximum(cell_sq - cell_mean * cell_mean, 0.0)).astype(np.float32)
        lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
        energy = self._cell_means(lap * lap) / np.float32((mean + 1.0) ** 2)
        smooth = cv2.GaussianBlur(g, (3, 3), 0)
        gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
        edges = cast(Floats, cv2.GaussianBlur(cv2.magnitude(gx, gy), (5, 5), 0))
        return _Cells(mean, std, saturated, cell_std, energy, edges)

    def _correlation(self, edges: Floats, reference: Floats) -> tuple[Floats, Floats]:
        """Per cell: the zero-mean normalised correlation of the edge maps, and the
        reference's edge standard deviation."""
        ma, mb = self._cell_means(edges), self._cell_means(reference)
        va = self._cell_means(edges * edges) - ma * ma
        vb = self._cell_means(reference * reference) - mb * mb
        cov = self._cell_means(edges * reference) - ma * mb
        ncc = cov / np.sqrt(np.maximum(va, _EPS) * np.maximum(vb, _EPS))
        return ncc.astype(np.float32), np.sqrt(np.maximum(vb, 0.0)).astype(np.float32)

    def _evaluate(self, state: _State, cells: _Cells) -> dict[str, float]:
        s = self.settings
        measures = {
            "mean": round(cells.mean, 2),
            "std": round(cells.std, 2),
            "saturated": round(cells.saturated, 3),
        }
        if state.energy is not None and state.textured is not None:
            textured = state.textured
            if textured.any():
                ratio = cells.energy[textured] / np.maximum(state.energy[textured], _EPS)
                measures["sharpness"] = round(float(np.median(ratio)), 3)
                flat = cells.cell_std[textured] < s.uniform_std
                measures["lost_texture"] = round(float(np.mean(flat)), 3)
        if state.reference is not None:
            ncc, ref_std = self._correlation(cells.edges, state.reference)
            usable = ref_std > _EDGE_FLOOR
            if int(np.count_nonzero(usable)) >= 3:
                measures["moved"] = round(float(np.mean(ncc[usable] < _MATCH_NCC)), 3)
        return measures

    def _conditions(self, m: dict[str, float]) -> set[Reason]:
        s = self.settings
        present: set[Reason] = set()
        mean, std = m["mean"], m["std"]
        bright = mean > s.bright_level
        if bright and (std < s.uniform_std or m["saturated"] >= _BLINDED_SATURATION):
            present.add("blinded")
        elif mean < s.dark_level or std < s.uniform_std:
            present.add("covered")
        elif m.get("lost_texture", 0.0) >= _LOST_TEXTURE:
            present.add("blinded" if bright else "covered")
        if m.get("sharpness", math.inf) < s.defocus_ratio:
            present.add("defocused")
        if m.get("moved", 0.0) > s.moved_ratio:
            present.add("moved")
        return present

    # ---- learning

    def _learn(self, state: _State, cells: _Cells, present: set[Reason], t: float) -> None:
        if state.active is not None or present & {"covered", "blinded"}:
            return
        if state.reference is None:
            state.reference = cells.edges.copy()
        if state.energy is None:
            state.baseline.add(cells)
            done = t - state.learn_start >= self.settings.learn_s
            if done and state.baseline.frames >= _MIN_LEARN_FRAMES:
                self._finish_learning(state)
            return
        if not present:
            cv2.accumulateWeighted(cells.edges, state.reference, _ADAPT_RATE)
            state.energy += (cells.energy - state.energy) * np.float32(_ADAPT_RATE)

    def _finish_learning(self, state: _State) -> None:
        base = state.baseline
        assert base.energy_sum is not None
        assert base.std_sum is not None
        state.energy = (base.energy_sum / np.float32(base.frames)).astype(np.float32)
        cell_std = base.std_sum / np.float32(base.frames)
        state.textured = cell_std >= _TEXTURE_STD * self.settings.uniform_std
        state.baseline = _Baseline()
        logger.debug(
            "tamper baseline learnt over %d frames, %d textured cells",
            base.frames, int(np.count_nonzero(state.textured)),
        )  # fmt: skip

    # ---- raising and restoring

    def _transition(
        self, state: _State, present: set[Reason], t: float, measures: dict[str, float]
    ) -> TamperEvent | None:
        for reason in list(state.pending):
            if reason not in present:
                del state.pending[reason]
        for reason in present:
            state.pending.setdefault(reason, t)
        if state.active is None:
            return self._maybe_raise(state, t, measures)
        return self._maybe_restore(state, present, t, measures)

    def _maybe_raise(
        self, state: _State, t: float, measures: dict[str, float]
    ) -> TamperEvent | None:
        hold = self.settings.hold_s
        for reason in PRIORITY:
            since = state.pending.get(reason)
            if since is not None and t - since >= hold:
                state.active = reason
                state.clear_since = None
                logger.info("camera tamper: %s (since %.1f s) %s", reason, since, measures)
                return TamperEvent(True, reason, t, {**measures, "since": since})
        return None

    def _maybe_restore(
        self, state: _State, present: set[Reason], t: float, measures: dict[str, float]
    ) -> TamperEvent | None:
        reason = state.active
        assert reason is not None
        if reason in present:
            state.clear_since = None
            return None
        if state.clear_since is None:
            state.clear_since = t
        if t - state.clear_since < self.settings.hold_s:
            return None
        since = state.clear_since
        logger.info("camera tamper restored: %s (normal since %.1f s)", reason, since)
        state.active = None
        state.clear_since = None
        state.energy = None
        state.textured = None
        state.baseline = _Baseline()
        state.learn_start = t
        return TamperEvent(False, reason, t, {**measures, "since": since})
