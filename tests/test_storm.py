"""1,000 simultaneous alarms: all recorded, all delivered, in order, none lost."""

from __future__ import annotations

from pathlib import Path

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import InProcessDaemon, PoliceSubscriber, make_site, storm_signals

STORM = 1000


def test_thousand_simultaneous_alarms(tmp_path: Path, broker: Mosquitto) -> None:
    site = make_site(tmp_path / "storm", broker)
    with (
        PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
        InProcessDaemon(site.config()) as running,
    ):
        running.wait_connected()
        bridge = running.daemon.bridge
        assert bridge is not None
        for signal in storm_signals(STORM):
            bridge.submit(signal)
        alarms = police.wait_alarms(STORM, timeout=60)
        assert len(alarms) == STORM
        assert [a["source"] for a in alarms] == [f"storm-{i:04d}" for i in range(STORM)]
        assert [a["seq"] for a in alarms] == list(range(1, STORM + 1))
        assert len({a["event_id"] for a in alarms}) == STORM
        assert not police.warnings()
