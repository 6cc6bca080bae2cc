"""Normalised geometry shared by the analytics stages: boxes, polygons and their masks.

Every coordinate is a fraction of the frame (0..1), origin at the top-left corner, x to the
right and y down, so that boxes, zones and masks do not depend on the stream's resolution.
Pure functions and frozen values only (no state, no logging)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
Polygon = tuple[Point, ...]
"""A polygon's vertices in order (either winding), normalised; at least three."""

Mask = npt.NDArray[np.uint8]

_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point vertices: 1/16 pixel


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, normalised: (x, y) its top-left corner, w and h its size."""

    x: float
    y: float
    w: float
    h: float

    @property
    def x2(self) -> float:
        return self.x + self.w

    @property
    def y2(self) -> float:
        return self.y + self.h

    @property
    def area(self) -> float:
        return max(0.0, self.w) * max(0.0, self.h)

    def centre(self) -> Point:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def feet(self) -> Point:
        """The bottom-centre point: where a person stands on the floor."""
        return (self.x + self.w / 2, self.y + self.h)

    def intersection(self, other: Box) -> float:
        """The area the two boxes share (0 when apart or only touching)."""
        w = min(self.x2, other.x2) - max(self.x, other.x)
        h = min(self.y2, other.y2) - max(self.y, other.y)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: Box) -> float:
        """Intersection over union, 0..1 (0 for two empty boxes)."""
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def intersects(self, other: Box) -> bool:
        """True when the boxes share some area or touch along an edge."""
        return (
            self.x <= other.x2 and other.x <= self.x2 and self.y <= other.y2 and other.y <= self.y2
        )

    def expanded(self, margin: float) -> Box:
        """This box grown by ``margin`` (a fraction of the frame) on every side, clipped to
        the frame; a negative margin shrinks it (never below an empty box at its centre)."""
        cx, cy = self.centre()
        w = max(0.0, self.w + 2 * margin)
        h = max(0.0, self.h + 2 * margin)
        return Box.from_corners(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box.from_corners(
            min(self.x, other.x), min(self.y, other.y), max(self.x2, other.x2),
            max(self.y2, other.y2),
        )  # fmt: skip

    def contains(self, point: Point) -> bool:
        return self.x <= point[0] <= self.x2 and self.y <= point[1] <= self.y2

    def corners(self) -> Polygon:
        return ((self.x, self.y), (self.x2, self.y), (self.x2, self.y2), (self.x, self.y2))

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels of a ``width`` x ``height`` image, at least 1x1, inside it."""
        x0 = min(width - 1, max(0, math.floor(self.x * width)))
        y0 = min(height - 1, max(0, math.floor(self.y * height)))
        x1 = min(width, max(x0 + 1, math.ceil(self.x2 * width)))
        y1 = min(height, max(y0 + 1, math.ceil(self.y2 * height)))
        return x0, y0, x1 - x0, y1 - y0

    @staticmethod
    def from_corners(x1: float, y1: float, x2: float, y2: float) -> Box:
        """The box between two corners, clipped to the frame."""
        left, right = sorted((_clamp01(x1), _clamp01(x2)))
        top, bottom = sorted((_clamp01(y1), _clamp01(y2)))
        return Box(left, top, right - left, bottom - top)

    @staticmethod
    def from_pixels(  # noqa: PLR0917
        x: float, y: float, w: float, h: float, width: int, height: int
    ) -> Box:
        """A pixel rectangle of a ``width`` x ``height`` image, normalised and clipped."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return Box.from_corners(x / width, y / height, (x + w) / width, (y + h) / height)


def merge_boxes(boxes: Iterable[Box], margin: float = 0.0) -> list[Box]:
    """Boxes that overlap (or come within ``margin`` of each other) merged into their union,
    until no two remain that do; the result is sorted by area, largest first."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        out: list[Box] = []
        for box in merged:
            for i, kept in enumerate(out):
                if box.expanded(margin / 2).intersects(kept.expanded(margin / 2)):
                    out[i] = kept.union(box)
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return sorted(merged, key=lambda b: b.area, reverse=True)


def validate_polygon(poly: Sequence[Point]) -> Polygon:
    """The polygon as a tuple, checked: at least three finite vertices inside 0..1."""
    if len(poly) < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {len(poly)}")
    out: list[Point] = []
    for vertex in poly:
        if len(vertex) != 2:
            raise ValueError(f"a vertex is (x, y), got {vertex!r}")
        x, y = float(vertex[0]), float(vertex[1])
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"vertex {vertex!r} is outside the normalised frame 0..1")
        out.append((x, y))
    return tuple(out)


def point_in_polygon(pt: Point, poly: Sequence[Point]) -> bool:
    """Even-odd rule (ray casting); points exactly on an edge count as inside."""
    px, py = pt
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if _on_segment(pt, (x1, y1), (x2, y2)):
            return True
        if (y1 > py) != (y2 > py):
            x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            if px < x_cross:
                inside = not inside
    return inside


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point, eps: float = 1e-12) -> bool:
    if abs(_cross(a, b, p)) > eps:
        return False
    return (
        min(a[0], b[0]) - eps <= p[0] <= max(a[0], b[0]) + eps
        and min(a[1], b[1]) - eps <= p[1] <= max(a[1], b[1]) + eps
    )


def segments_intersect(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    """True when the closed segments a1-a2 and b1-b2 share a point."""
    d1, d2 = _cross(b1, b2, a1), _cross(b1, b2, a2)
    d3, d4 = _cross(a1, a2, b1), _cross(a1, a2, b2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        _on_segment(a1, b1, b2)
        or _on_segment(a2, b1, b2)
        or _on_segment(b1, a1, a2)
        or _on_segment(b2, a1, a2)
    )


def box_overlaps_polygon(box: Box, poly: Sequence[Point]) -> bool:
    """True when the box and the polygon share any point (edges touching included)."""
    if not poly:
        return False
    if any(box.contains(vertex) for vertex in poly):
        return True
    corners = box.corners()
    if any(point_in_polygon(corner, poly) for corner in corners):
        return True
    edges = list(zip(corners, corners[1:] + corners[:1], strict=True))
    n = len(poly)
    return any(
        segments_intersect(a, b, poly[i], poly[(i + 1) % n]) for a, b in edges for i in range(n)
    )


def polygon_mask(polys: Sequence[Polygon], width: int, height: int) -> Mask:
    """A ``height`` x ``width`` uint8 image: 255 inside any of the polygons, 0 elsewhere.

    Vertices are scaled to the image's full extent (x=1 is the right edge of the last pixel
    column), with sub-pixel precision; a pixel belongs to a polygon when its centre does."""
    if width <= 0 or height <= 0:
        raise ValueError(f"mask size must be positive, got {width}x{height}")
    mask = np.zeros((height, width), np.uint8)
    if not polys:
        return mask
    scale = 1 << _SUBPIXEL_BITS
    contours = [
        np.array(
            [
                (round((x * width - 0.5) * scale), round((y * height - 0.5) * scale))
                for x, y in validate_polygon(poly)
            ],
            np.int32,
        )
        for poly in polys
    ]
    cv2.fillPoly(mask, contours, 255, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask
