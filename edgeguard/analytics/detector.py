"""The person detector: COCO-SSD (SSDLite MobileNetV2) on onnxruntime, CPU only.

The ONNX graph (edgeguard.analytics.model_files) takes a uint8 RGB image of any size, resizes it to
300x300 itself and returns, for 1,917 anchors, 90 class scores (sigmoid; index 0 is "person")
and decoded boxes (normalised ymin, xmin, ymax, xmax). What is left here: colour conversion, a
cheap shrink of large frames before the graph, the person scores, non-maximum suppression, and
boxes normalised to the whole frame. Accuracy and speed on real footage: docs/analytics-people.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.analytics.geometry import Box
from edgeguard.analytics.model_files import ModelError

logger = logging.getLogger(__name__)

PERSON_CLASS = 0  # COCO "person": the graph's class 0 (the background column is sliced off)
NMS_IOU = 0.5  # overlapping boxes above this IoU are the same person
MAX_DETECTIONS = 100  # at most this many people per frame (the tfjs default)
MAX_ASPECT = 4  # the image given to the graph is at most this many times input_width long
MIN_SIDE = 2  # crops thinner than this (pixels) are not worth a detection

Image = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Detection:
    """A person: the box (normalised to the whole frame) and the detector's confidence 0..1."""

    box: Box
    score: float


class PersonDetector:
    """Detects people in BGR (or grey, or BGRA) uint8 frames of any size.

    ``min_score``: confidence floor (see docs/analytics-people.md for how it was chosen).
    ``threads``: onnxruntime intra-op threads (1 on a Pi that also decodes video).
    ``input_width``: frames are shrunk (INTER_AREA, aspect kept) so that their shorter side is
    ``input_width`` pixels before they reach the graph, which resizes them to 300x300 anyway;
    this is cheaper than handing the graph a full HD frame and gives the same detections."""

    def __init__(
        self, model: Path, *, min_score: float = 0.2, threads: int = 1, input_width: int = 300
    ) -> None:
        if not 0 < min_score <= 1:
            raise ValueError(f"min_score must be in (0, 1], got {min_score}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if input_width < 32:
            raise ValueError(f"input_width must be at least 32, got {input_width}")
        self.model = Path(model)
        self.min_score = float(min_score)
        self.input_width = int(input_width)
        self._session = _open_session(self.model, threads)
        self._input, self._scores_out, self._boxes_out = _io_names(self._session, self.model)

    def detect(self, frame_bgr: Image, region: Box | None = None) -> list[Detection]:
        """People in ``frame_bgr`` (in ``region`` only, when given), best first. Boxes are
        normalised to the whole frame even when a region was given."""
        rgb = _to_rgb(frame_bgr)
        height, width = rgb.shape[:2]
        crop = Box(0.0, 0.0, 1.0, 1.0) if region is None else region
        x, y, w, h = crop.to_pixels(width, height)
        if w < MIN_SIDE or h < MIN_SIDE:
            return []
        image = self._shrink(rgb[y : y + h, x : x + w])
        scores, boxes = self._infer(image)
        keep = _select(scores, boxes, self.min_score)
        placed = Box.from_corners(x / width, y / height, (x + w) / width, (y + h) / height)
        return [Detection(_to_frame(boxes[i], placed), float(scores[i])) for i in keep]

    def _shrink(self, rgb: Image) -> Image:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.input_width / min(height, width))
        scale = min(scale, MAX_ASPECT * self.input_width / max(height, width))
        if scale >= 1.0:
            return np.ascontiguousarray(rgb)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)

    def _infer(self, rgb: Image) -> tuple[FloatArray, FloatArray]:
        feed = {self._input: rgb[np.newaxis]}
        scores, boxes = self._session.run([self._scores_out, self._boxes_out], feed)
        person = np.asarray(scores, np.float32)[0, :, PERSON_CLASS]
        return person, np.asarray(boxes, np.float32).reshape(-1, 4)


def _open_session(model: Path, threads: int) -> Any:
    import onnxruntime as ort  # here: importing counting (for Detection) stays light

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the converted graph has harmless warnings
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load the model {model}: {exc}") from exc


def _io_names(session: Any, model: Path) -> tuple[str, str, str]:
    """The input and the (scores, boxes) outputs, told apart by their shapes."""
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 2:
        raise ModelError(f"{model} is not an SSD detector (1 input, 2 outputs expected)")
    by_rank = {len(o.shape): o.name for o in outputs}
    if set(by_rank) != {3, 4}:
        raise ModelError(f"{model}: outputs of unexpected shapes {[o.shape for o in outputs]}")
    return inputs[0].name, by_rank[3], by_rank[4]


def _to_rgb(frame: Image) -> Image:
    """The frame as contiguous RGB; TypeError/ValueError for what is not a uint8 image."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError("a frame is a uint8 numpy array")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    codes = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    channels = 1 if frame.ndim == 2 else frame.shape[2] if frame.ndim == 3 else 0
    if channels not in codes:
        raise ValueError(f"a frame is HxW, HxWx1, HxWx3 or HxWx4; got shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty frame of shape {frame.shape}")
    rgb = cv2.cvtColor(np.ascontiguousarray(frame), codes[channels])
    return np.asarray(rgb, np.uint8)


def _select(scores: FloatArray, boxes: FloatArray, min_score: float) -> list[int]:
    """Indices of the boxes kept: score >= min_score, a real box, non-maximum suppression."""
    boxes = np.clip(np.nan_to_num(boxes, nan=0.0), 0.0, 1.0)
    valid = (scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    candidates = np.flatnonzero(valid)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    return nms(boxes, order, NMS_IOU, MAX_DETECTIONS)


def nms(boxes: FloatArray, order: npt.NDArray[np.intp], iou: float, limit: int) -> list[int]:
    """Greedy non-maximum suppression over ``order`` (indices, best first) of boxes given as
    (ymin, xmin, ymax, xmax): a box is dropped when it overlaps a kept one by more than ``iou``."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    rest = order
    while rest.size and len(keep) < limit:
        best, rest = int(rest[0]), rest[1:]
        keep.append(best)
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        rest = rest[overlap <= iou]
    return keep


def _to_frame(box: FloatArray, region: Box) -> Box:
    """A (ymin, xmin, ymax, xmax) box normalised to ``region`` as a Box of the whole frame."""
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return Box.from_corners(
        region.x + xmin * region.w,
        region.y + ymin * region.h,
        region.x + xmax * region.w,
        region.y + ymax * region.h,
    )
