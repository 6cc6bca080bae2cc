"""Video analytics end to end: a real RTSP camera serving the real footage (36 s of the empty
room, then a person walking up to the table), the daemon as a process with a counting zone
around the table, mosquitto over TLS, and a police subscriber. The crowd rule (one person
here: the clip never has two) raises an alarm that reaches the police with its snapshot, and a
clip of >= 30 s before and >= 10 s after is kept on disk, playable by ffprobe."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.analytics.model_files import ModelError, find_person_model
from edgeguard.ids import parse_iso
from edgeguard.lab.footage import composed, locate
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site
from edgeguard.lab.rtsp_server import RtspServer, available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
TABLE = [[345, 311], [553, 311], [553, 423], [345, 423]]  # the standing table, 768x432


@pytest.fixture
def scene() -> Iterator[RtspServer]:
    try:
        find_person_model()
    except ModelError as exc:
        pytest.skip(str(exc))
    # 6 x 5.9 s of the empty room, then visit 5 (person walks in at 92 s of the original),
    # then the empty room again, so that the server's loop comes long after the clip's window
    empty = [(0.0, 5.9)] * 6
    video = composed(locate(), [*empty, (92.0, 120.5), *empty], "empty36-person5-empty36")
    with RtspServer(video) as server:
        yield server


def _ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
         "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


def _crowd(police: PoliceSubscriber) -> list[dict[str, Any]]:
    return [a for a in police.alarms() if a["kind"] == "crowd"]


def test_crowd_alarm_with_snapshot_and_clip(
    site: Site, police: PoliceSubscriber, daemons: Any, scene: RtspServer
) -> None:
    site.data["cameras"] = [
        {
            "name": "cam-er-1",
            "location": "er",
            "stream_url": scene.url,
            "analytics": {
                "frame_size": [768, 432],
                "zones": [
                    {
                        "name": "table",
                        "polygon": TABLE,
                        "crowd": {"min_people": 1, "for_s": 3, "clear_after_s": 2},
                    }
                ],
            },
        }
    ]
    site.write()
    started = time.monotonic()
    daemon: DaemonProcess = daemons(site)
    assert police.wait_for(lambda p: bool(_crowd(p)), timeout=80)
    new = _crowd(police)[0]
    assert new["message"] == "new"
    assert new["source"] == "cam-er-1-table-crowd"
    assert new["priority"] == 2
    assert new["detail"]["zone"] == "table"
    assert new["detail"]["count"] >= 1
    assert time.monotonic() - started > 35  # nobody in the first 36 s of the scene

    # the snapshot, published after the alarm and vouched for by the evidence message
    assert police.wait_for(
        lambda p: any(a["message"] == "evidence" and a["evidence"] for a in _crowd(p)), 15
    )
    kinds = [(r.kind, (r.payload or {}).get("source")) for _, r in police.received]
    first_snapshot = next(i for i, (kind, _) in enumerate(kinds) if kind == "snapshot")
    assert kinds.index(("alarm", "cam-er-1-table-crowd")) < first_snapshot
    jpeg = next(r.blob for _, r in police.received if r.kind == "snapshot" and r.blob)
    snapshot_item = next(
        item
        for a in _crowd(police)
        for item in a["evidence"]
        if item["kind"] == "snapshot" and "sha256" in item
    )
    assert snapshot_item["sha256"] == hashlib.sha256(jpeg).hexdigest()

    # the clip: >= 30 s before and >= 10 s after the alarm, listed in its evidence
    def clip_listed(p: PoliceSubscriber) -> bool:
        return any(i["kind"] == "clip" for a in _crowd(p) for i in a["evidence"])

    assert police.wait_for(clip_listed, timeout=60)
    clip = next(i for a in _crowd(police) for i in a["evidence"] if i["kind"] == "clip")
    assert "error" not in clip, clip
    alarm_at = parse_iso(new["occurred_at"]).timestamp()
    assert parse_iso(clip["taken_at"]).timestamp() <= alarm_at - 30
    assert clip["duration_s"] >= 40, clip
    rows = daemon.status()  # the daemon is alive and well after it all
    assert rows["cameras"]["cam-er-1"]["state"] == "online"
    path = next(Path(p) for p in site.directory.glob("evidence/*/cam-er-1-clip.mp4"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == clip["sha256"]
    probe = _ffprobe(path)
    assert probe["streams"][0]["codec_name"] == "h264"
    assert (probe["streams"][0]["width"], probe["streams"][0]["height"]) == (768, 432)
    assert float(probe["format"]["duration"]) >= 39.5
    assert not police.warnings()
