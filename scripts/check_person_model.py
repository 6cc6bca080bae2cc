#!/usr/bin/env python3
"""Check that an ONNX file computes the same outputs as the measured person detector.

tf2onnx does not write the same bytes twice for the same network (the order and names of the
nodes its optimiser emits vary from run to run, even with PYTHONHASHSEED fixed), so a model
made again by scripts/make_person_model.sh cannot be checked by its sha256 alone. This script
runs it on a real frame kept in scripts/person-model-reference.npz (frame 150 of the
intel-iot-devkit one-by-one-person-detection clip, CC-BY-4.0, at 300x300) and compares every
output with what the measured model (sha256 f519bca3...) gave: the person score and the box of
each of the 1917 anchors, and the 200 highest scores over all 90 classes.

Needs numpy and onnxruntime only.

    check_person_model.py MODEL.onnx                  exit 0: same outputs; 1: differs; 2: error
    check_person_model.py --write-reference MODEL.onnx   (re-measure: only from the measured file)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(__file__).resolve().with_name("person-model-reference.npz")
INPUT_NAME = "image_tensor:0"
TOLERANCE = 1e-4  # float differences between CPUs and onnxruntime kernels stay far below this
TOP = 200


def run(model: Path, image: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    scores, boxes = session.run(None, {INPUT_NAME: image[None]})
    return np.asarray(scores, np.float32)[0], np.asarray(boxes, np.float32)[0, :, 0, :]


def summary(scores: np.ndarray[Any, Any], boxes: np.ndarray[Any, Any]) -> dict[str, Any]:
    flat = scores.reshape(-1)
    top = np.argsort(-flat, kind="stable")[:TOP]
    return {
        "person_scores": scores[:, 0],
        "boxes": boxes,
        "top_values": flat[top],
        "top_indices": top.astype(np.int64),
    }


def compare(actual: dict[str, Any], reference: Any) -> list[str]:
    problems = []
    for key in ("person_scores", "boxes", "top_values"):
        want = reference[key]
        got = actual[key]
        if got.shape != want.shape:
            problems.append(f"{key}: shape {got.shape}, expected {want.shape}")
            continue
        worst = float(np.max(np.abs(got - want)))
        if worst > TOLERANCE:
            problems.append(f"{key}: differs by up to {worst:.6f} (tolerance {TOLERANCE})")
    # ties between nearly equal scores may swap places: compare the sets of the clear leaders
    want_top = set(reference["top_indices"][: TOP // 2].tolist())
    got_top = set(actual["top_indices"].tolist())
    if not want_top <= got_top:
        problems.append(f"top scores: {len(want_top - got_top)} of the leading anchors differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--write-reference", action="store_true")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        with np.load(args.reference) as stored:
            reference = dict(stored)
        result = summary(*run(args.model, reference["image"]))
    except Exception as exc:
        print(f"error: cannot run {args.model}: {exc}", file=sys.stderr)
        return 2
    if args.write_reference:
        np.savez_compressed(args.reference, image=reference["image"], **result)
        print(f"wrote {args.reference}")
        return 0
    problems = compare(result, reference)
    for problem in problems:
        print(f"mismatch: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.model}: same outputs as the measured model (within {TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
