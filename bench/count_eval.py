"""People counting per scene against hand labels, on six multi-person clips (issue 13 item 2).

For each labelled scene (intel-iot-devkit/sample-videos' GIF previews, labels in tests/data/,
how they were made in tests/data/README.md) the pipeline of `edgeguard analyze` runs with the
documented defaults, a whole-frame zone and a crowd rule (at least the scene's crowd for 1 s),
at the clip's frame rate, twice: with the detector at its default interval and on every frame
(edgeguard.lab.scenes). Printed per scene and mode: the per-frame count error (mean absolute,
bias, largest, share exact) over the whole clip and from 1 s on (after the counter's 0.5 s
confirmation), the detector's raw box count on the frames it ran, and the crowd alarm's
precision and recall against the same rule on the labels.

Nothing is tuned here: the settings are the product's defaults for every scene.

Run: .venv/bin/python bench/count_eval.py [--scene NAME] [--per-frame]   (last line: JSON)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

from edgeguard.analytics.model_files import find_person_model, sha256_of
from edgeguard.lab.footage import FootageError
from edgeguard.lab.scenes import MODES, SCENES, evaluate


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table_row(result: dict[str, Any]) -> str:
    c, w, r = (result[k] for k in ("counted", "counted_after_warmup", "raw_on_detector_frames"))
    a, over = result["crowd"]["scores"], result["crowd_plus_one"]
    return (
        f"| {result['scene']} | {result['mode']} | {result['frames']} | {result['people_max']} | "
        f"{c['mae']:.2f} | {c['bias']:+.2f} | {c['max_error']} | {c['exact']:.0%} | "
        f"{w['mae']:.2f} | {w['bias']:+.2f} | {result['detector_runs']} | {r['mae']:.2f} | "
        f"{r['bias']:+.2f} | ≥{result['crowd']['rule']['min_people']} | "
        f"{_score(a['precision'])} / {_score(a['recall'])} | "
        f"{_score(a['time_precision'])} / {_score(a['time_recall'])} | "
        f"{over['alarm_s']:.1f} s |"
    )


HEADER = (
    "| scene | detector | frames | max people | MAE | bias | max err | exact | MAE ≥1 s | "
    "bias ≥1 s | runs | raw MAE | raw bias | crowd | alarm P / R | alarm time P / R | "
    "false crowd (≥ crowd + 1) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", action="append", help="only this scene (repeatable)")
    parser.add_argument("--per-frame", action="store_true", help="print per-frame counts")
    args = parser.parse_args()
    model = find_person_model()
    scenes = [s for s in SCENES if not args.scene or s.name in args.scene]
    results: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    print(HEADER)
    for scene in scenes:
        try:
            runs = {mode: evaluate(scene, mode, model=model) for mode in MODES}
        except FootageError as exc:
            missing.append(scene.name)
            print(f"| {scene.name} | skipped: {exc} |")
            continue
        for result in runs.values():
            print(table_row(result))
        results[scene.name] = runs
    if args.per_frame:
        for name, runs in results.items():
            for mode, result in runs.items():
                frames = result["per_frame"]
                print(f"{name} {mode}: truth   {frames['truth']}")
                print(f"{name} {mode}: counted {frames['counted']}")
                print(f"{name} {mode}: raw     {frames['raw']}")
    for runs in results.values():
        for result in runs.values():
            del result["per_frame"]
    emit(
        {
            "bench": "count_eval",
            "machine": machine(),
            "model_sha256": sha256_of(model),
            "count_error_per_scene": results,
            "missing_scenes": missing,
        }
    )


if __name__ == "__main__":
    main()
