"""CLI startup time: wall time of `edgeguard --help` and `edgeguard check-config` (the example
config), each a fresh process, against `python -c pass` on the same interpreter as a baseline.

Also records which heavy modules `check-config` loads (numpy, sqlite_utils, the store, the
hardware libraries): none is expected. Prints one line per case and, last, one JSON object.
Usage: python bench/cli_startup.py [--runs 15].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "edgeguard.example.yaml"
CREDENTIALS = ("mqtt-client-key", "signing-key", "camera-password")  # named by the example
HEAVY = ("numpy", "sqlite_utils", "edgeguard.store", "gpiozero", "serial", "pymodbus", "cv2")
PROBE = (
    "import json, sys; from edgeguard.cli import main; code = main(sys.argv[1:]); "
    "print(json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr); "
    "sys.exit(code)"
)


def wall_times(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the page cache
    samples: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(p90 * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
    }


def heavy_modules_loaded(argv: list[str], env: dict[str, str]) -> list[str]:
    probe = [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv]
    done = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def _installed_example(scratch: Path, edgeguard: str) -> tuple[Path, dict[str, str]]:
    """The example config as installed: real TLS material and site key where its paths and
    credentials point (check-config loads and verifies them), in ``scratch``."""
    from edgeguard.lab.pki import DevPKI

    pki = DevPKI(scratch / "pki")
    client = pki.client("hosp-0571-01")
    credentials = scratch / "credentials"
    credentials.mkdir()
    for name in CREDENTIALS:
        (credentials / name).write_text("placeholder\n", encoding="utf-8")
    (credentials / "mqtt-client-key").write_bytes(client.key.read_bytes())
    subprocess.run(
        [edgeguard, "keygen", "--out", str(scratch / "site.key")], check=True, capture_output=True
    )
    (credentials / "signing-key").write_bytes((scratch / "site.key").read_bytes())
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("/etc/edgeguard/police-ca.crt", str(pki.ca_file))
    text = text.replace("/etc/edgeguard/client.crt", str(client.cert))
    config = scratch / "edgeguard.yaml"
    config.write_text(text, encoding="utf-8")
    return config, {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    edgeguard = str(Path(sys.executable).with_name("edgeguard"))
    with tempfile.TemporaryDirectory() as scratch:
        config, env = _installed_example(Path(scratch), edgeguard)
        cases = {
            "python_pass": [sys.executable, "-c", "pass"],
            "help": [edgeguard, "--help"],
            "check_config": [edgeguard, "check-config", str(config)],
        }
        result: dict[str, Any] = {"bench": "cli_startup", "machine": machine()}
        for key, argv in cases.items():
            result[key] = summary(wall_times(argv, args.runs, env))
            median, p90 = result[key]["median_ms"], result[key]["p90_ms"]
            label = " ".join([Path(argv[0]).name, *argv[1:2]])
            print(f"{label:<32} median {median:>7.1f} ms  p90 {p90:>7.1f} ms")
        result["check_config_heavy_modules"] = heavy_modules_loaded(
            ["check-config", str(config)], env
        )
    for key in ("help", "check_config"):
        result[f"{key}_over_python_ms"] = round(
            result[key]["median_ms"] - result["python_pass"]["median_ms"], 1
        )
    print(f"check-config loads: {result['check_config_heavy_modules'] or 'none of ' + str(HEAVY)}")
    emit(result)


if __name__ == "__main__":
    main()
