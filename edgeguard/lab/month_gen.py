"""A realistic month written into a real site store, seeded: presses at the hospital's points
with police acknowledgements and dispatches after human delays, resets by the operators,
snapshots, camera outages with their camera_offline alarms, police-link outages, appliance
restarts, test presses, and camera motion as filler up to a number of ledger rows.

Rows are written by the daemon's own code (AlarmBook on a Store) under a simulated clock, so
the ledger is what a month on a real appliance leaves. ``GeneratedMonth`` is the ground truth
the report tests compare with (tests/test_reports.py)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import itertools
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeguard import alarms as alarms_module
from edgeguard import store as store_module
from edgeguard import store_outbox
from edgeguard.alarm_model import (
    Action,
    AlarmKind,
    DeviceState,
    DeviceStatus,
    InputSignal,
    PoliceAction,
)
from edgeguard.alarms import AlarmBook
from edgeguard.config import EdgeguardConfig
from edgeguard.ids import iso_ms
from edgeguard.payloads import PoliceAck
from edgeguard.signing import Signer
from edgeguard.store import Store

# (input, location, zone, camera, kind, presses a month per unit of `busy`)
POINTS = (
    ("er-panic", "er-triage", "ER", "cam-er-1", "panic", 6.0),
    ("er-duress", "er-resus", "ER", "cam-er-2", "duress", 2.0),
    ("reg-panic", "registration", "registration", "cam-reg", "panic", 3.0),
    ("cashier-duress", "cashier-1", "cashier", "cam-cashier", "duress", 1.5),
    ("pharm-panic", "pharmacy", "pharmacy", "cam-pharm", "panic", 1.0),
    ("psych-panic", "psych-ward", "psychiatry", "cam-psych", "panic", 2.5),
    ("gate-panic", "main-entrance", "entrance", "cam-gate", "panic", 1.0),
)
LABELS = {
    "er-triage": "急诊分诊台",
    "er-resus": "急诊抢救室",
    "registration": "门诊挂号大厅",
    "cashier-1": "收费处 1 号窗口",
    "pharmacy": "门诊药房",
    "psych-ward": "精神科病区护士站",
    "main-entrance": "医院正门",
}
POLICE = ("110指挥中心 王警官", "110指挥中心 李警官", "城西派出所 赵警官")
OPERATORS = ("监控中心 张三", "监控中心 李四", "保卫科 王五")
PATH_DEVICE = "uplink-primary"


def lab_config(key_dir: Path) -> EdgeguardConfig:
    """A hospital of seven alarm points, seven cameras, one police link (receipts on)."""
    return EdgeguardConfig.model_validate(lab_config_data(key_dir))


def write_lab_config(key_dir: Path) -> Path:
    """The same config as a YAML file in ``key_dir`` (for the `edgeguard report` command)."""
    path = key_dir / "edgeguard.yaml"
    path.write_text(yaml.safe_dump(lab_config_data(key_dir), allow_unicode=True), "utf-8")
    return path


def lab_config_data(key_dir: Path) -> dict[str, Any]:
    key_dir.mkdir(parents=True, exist_ok=True)
    locations = {
        loc: {"label": LABELS[loc], "building": "门诊楼", "zone": zone, "cameras": [cam]}
        for _, loc, zone, cam, _, _ in POINTS
    }
    return {
        "site": {"id": "lab-hospital", "name": "实验医院（市第二人民医院）"},
        "signing": {"private_key": str(key_dir / "site.key")},
        "receipts": {"police_keys": [str(key_dir / "police-receipts.pub")]},
        "store": {"path": str(key_dir / "edgeguard.db")},
        "locations": locations,
        "inputs": [
            {"type": "simulated", "name": name, "location": loc, "kind": kind}
            for name, loc, _, _, kind, _ in POINTS
        ],
        "cameras": [
            {"name": cam, "location": loc, "stream_url": f"rtsp://127.0.0.1:9/{cam}"}
            for _, loc, _, cam, _, _ in POINTS
        ],
    }


@dataclass(slots=True)
class TrueAlarm:
    """What the generator did to one alarm (times in UTC; None: never happened)."""

    event_id: str
    kind: str
    source: str
    location: str
    pressed: datetime
    delivered: datetime | None = None
    received: datetime | None = None
    acknowledged: datetime | None = None
    dispatched: datetime | None = None
    reset: datetime | None = None
    reset_by: str | None = None
    snapshots: int = 0


@dataclass(slots=True)
class GeneratedMonth:
    config: EdgeguardConfig
    store_path: Path
    alarms: list[TrueAlarm] = field(default_factory=list)
    outages: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    appliance_down: list[tuple[datetime, datetime]] = field(default_factory=list)
    ledger_rows: int = 0


@contextlib.contextmanager
def simulated_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """The daemon's modules read the time through ``utc_now``: here it is the month's."""
    modules = (store_module, alarms_module, store_outbox)
    saved = [module.utc_now for module in modules]
    for module in modules:
        module.utc_now = clock  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.utc_now = original  # type: ignore[attr-defined]


class _Schedule:
    """Actions in time order; each runs with the clock at its moment."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.now = datetime(1970, 1, 1, tzinfo=UTC)

    def at(self, moment: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (moment, next(self._order), action))

    def run(self, store: Store) -> None:
        while self._heap:  # one transaction a day: fast, and still durable
            day = self._heap[0][0].toordinal()
            with store.transaction():
                while self._heap and self._heap[0][0].toordinal() == day:
                    moment, _, action = heapq.heappop(self._heap)
                    self.now = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
                    action()


class MonthGenerator:
    def __init__(
        self, store: Store, config: EdgeguardConfig, start: datetime, end: datetime, seed: int
    ) -> None:
        self.store, self.config, self.start, self.end = store, config, start, end
        self.rng = random.Random(seed)
        self.book = AlarmBook(config, Signer(Ed25519PrivateKey.generate()))
        self.book.seq.load(store.current_seq())
        self.schedule = _Schedule()
        self.result = GeneratedMonth(config, store.path)
        self.link_down: list[tuple[datetime, datetime]] = []

    # --- the plan ---------------------------------------------------------------------------
    def plan(self, busy: float, motion_rows: int) -> None:
        before = self.start - timedelta(hours=1)
        self.schedule.at(before, self._boot)
        self._plan_link_outages()
        self._plan_restarts()
        for point in POINTS:
            self._plan_presses(point, busy)
            self._plan_camera_outages(point[3], point[1])
        self._plan_tests()
        self._plan_motion(motion_rows)

    def _uniform(self, start: datetime | None = None, end: datetime | None = None) -> datetime:
        first, last = start or self.start, end or self.end
        return first + timedelta(seconds=self.rng.uniform(0, (last - first).total_seconds()))

    def _plan_link_outages(self) -> None:
        for _ in range(3):
            begin = self._uniform()
            end = begin + timedelta(seconds=self.rng.lognormvariate(5.0, 1.0))
            self.link_down.append((begin, end))
            self.schedule.at(begin, lambda: self._device(PATH_DEVICE, DeviceState.OFFLINE))
            self.schedule.at(end, lambda: self._device(PATH_DEVICE, DeviceState.ONLINE))
            self.result.outages.setdefault(PATH_DEVICE, []).append((begin, end))

    def _plan_restarts(self) -> None:
        for _ in range(2):  # an upgrade, a power cut
            stop = self._uniform()
            start = stop + timedelta(seconds=self.rng.uniform(20, 300))
            self.schedule.at(stop, lambda: self._system("system.stop"))
            self.schedule.at(start, lambda: self._system("system.start"))
            self.result.appliance_down.append((stop, start))

    def _plan_presses(self, point: tuple[str, str, str, str, str, float], busy: float) -> None:
        name, location, _, camera, kind, rate = point
        count = max(1, round(rate * busy))
        gap = (self.end - self.start).total_seconds() / count
        moment = self.start + timedelta(seconds=self.rng.uniform(0, gap))
        for _ in range(count):
            moment = self._night_weighted(moment)
            if moment >= self.end:
                break
            reset = self._plan_press(name, location, camera, kind, moment)
            moment = max(moment + timedelta(seconds=self.rng.expovariate(1 / gap)), reset)
            moment += timedelta(seconds=60)

    def _night_weighted(self, moment: datetime) -> datetime:
        """Violence in the ER peaks at night: a daytime press moves into the evening half the
        time (local UTC+8 hours 20-04)."""
        local_hour = (moment.hour + 8) % 24
        if 6 <= local_hour < 18 and self.rng.random() < 0.5:
            moment += timedelta(hours=14)
        return moment

    def _plan_press(
        self, name: str, location: str, camera: str, kind: str, pressed: datetime
    ) -> datetime:
        rng, truth = self.rng, TrueAlarm("", kind, name, location, pressed)
        self.result.alarms.append(truth)
        delivered = self._link_up_after(pressed + timedelta(milliseconds=rng.uniform(3, 40)))
        received = delivered + timedelta(milliseconds=rng.uniform(15, 400))
        acked = (
            None
            if rng.random() < 0.03
            else received + timedelta(seconds=rng.lognormvariate(3.2, 0.6))
        )
        dispatched = (
            acked + timedelta(seconds=rng.lognormvariate(4.8, 0.5))
            if acked is not None and rng.random() < 0.7
            else None
        )
        reset = pressed + timedelta(seconds=rng.lognormvariate(6.4, 0.7))
        leave_open = rng.random() < 0.02 and reset > self.end - timedelta(days=3)
        truth.delivered, truth.received = delivered, received
        truth.acknowledged, truth.dispatched = acked, dispatched
        self.schedule.at(pressed, lambda: self._press(truth, camera))
        self.schedule.at(pressed + timedelta(seconds=1.2), lambda: self._release(truth))
        self.schedule.at(delivered, lambda: self._delivered(truth))
        self.schedule.at(received, lambda: self._received(truth))
        for stage, moment in (("acknowledged", acked), ("dispatched", dispatched)):
            if moment is not None:
                self.schedule.at(moment, self._acker(truth, stage, moment))
        if not leave_open:
            truth.reset, truth.reset_by = reset, rng.choice(OPERATORS)
            self.schedule.at(reset, lambda: self._reset(truth))
        return reset

    def _link_up_after(self, moment: datetime) -> datetime:
        for begin, end in self.link_down:
            if begin <= moment < end:
                return end + timedelta(milliseconds=self.rng.uniform(200, 1500))
        return moment

    def _plan_camera_outages(self, camera: str, location: str) -> None:
        for _ in range(self.rng.randint(1, 4)):
            begin = self._uniform()
            end = min(begin + timedelta(seconds=self.rng.lognormvariate(6.0, 1.4)), self.end)
            self.schedule.at(begin, functools.partial(self._camera, camera, location, False))
            self.schedule.at(end, functools.partial(self._camera, camera, location, True))
            self.result.outages.setdefault(camera, []).append((begin, end))

    def _plan_tests(self) -> None:
        for name, location, *_ in POINTS:  # the monthly walk round, kept out of statistics
            moment = self._uniform()
            truth = TrueAlarm("", AlarmKind.TEST.value, name, location, moment)
            self.schedule.at(moment, functools.partial(self._test_press, truth))

    def _plan_motion(self, rows: int) -> None:
        cameras = [(cam, loc) for _, loc, _, cam, _, _ in POINTS]
        for index in range(rows):
            camera, location = cameras[index % len(cameras)]
            moment = self._uniform()
            self.schedule.at(moment, functools.partial(self._motion, camera, location, index))

    # --- the actions (run by the schedule, the clock at their moment) -----------------------
    def _boot(self) -> None:
        self._system("system.start")
        for name, *_ in POINTS:
            self._device(name, DeviceState.ONLINE)
        for *_, camera, _, _ in POINTS:
            self._device(camera, DeviceState.ONLINE)
        self._device(PATH_DEVICE, DeviceState.ONLINE)

    def _system(self, kind: str) -> None:
        self.store.append_event(kind, data={"site": self.config.site.id})

    def _device(self, device: str, state: DeviceState) -> None:
        self.book.device_status(self.store, DeviceStatus(device, state, {}))

    def _signal(self, truth: TrueAlarm, action: Action) -> Any:
        kind = AlarmKind(truth.kind)
        return self.book.apply_signal(
            self.store,
            InputSignal(
                truth.source,
                action,
                kind,
                4 if kind is AlarmKind.TEST else 1,
                truth.location,
                self.schedule.now,
            ),
        )

    def _press(self, truth: TrueAlarm, camera: str) -> None:
        change = self._signal(truth, Action.ACTIVE)
        truth.event_id = change.alarm.event_id
        self._pending[truth.event_id] = [row.id for row in change.outbox]
        jpeg = hashlib.sha256(truth.event_id.encode()).hexdigest()
        item = {
            "camera": camera,
            "kind": "snapshot",
            "path": f"{camera}.jpg",
            "sha256": jpeg,
            "bytes": self.rng.randint(40_000, 120_000),
            "taken_at": iso_ms(self.schedule.now),
        }
        self.book.add_evidence(self.store, truth.event_id, [(item, None)])
        truth.snapshots += 1

    def _release(self, truth: TrueAlarm) -> None:
        self._signal(truth, Action.NORMAL)

    def _delivered(self, truth: TrueAlarm) -> None:
        self.book.delivered(self.store, self._pending.pop(truth.event_id, []))

    def _received(self, truth: TrueAlarm) -> None:
        record = self.store.alarm(truth.event_id)
        if record is not None and record.first_seq is not None:
            self.book.received(self.store, truth.event_id, record.first_seq)

    def _acker(self, truth: TrueAlarm, stage: str, moment: datetime) -> Callable[[], None]:
        by = self.rng.choice(POLICE)

        def ack() -> None:
            action = PoliceAction(stage)
            self.book.police_ack(
                self.store, PoliceAck(event_id=truth.event_id, state=action, by=by, at=moment)
            )

        return ack

    def _reset(self, truth: TrueAlarm) -> None:
        self.book.reset(self.store, truth.event_id, truth.reset_by or "operator")

    def _camera(self, camera: str, location: str, online: bool) -> None:
        self._device(camera, DeviceState.ONLINE if online else DeviceState.OFFLINE)
        action = Action.NORMAL if online else Action.ACTIVE
        kind = AlarmKind.CAMERA_OFFLINE
        self.book.apply_signal(
            self.store, InputSignal(camera, action, kind, 3, location, self.schedule.now)
        )

    def _test_press(self, truth: TrueAlarm) -> None:
        if self.store.open_alarm_for_source(truth.source) is not None:
            return  # a real alarm holds the point: the installer tests another day
        self._signal(truth, Action.ACTIVE)  # a test clears itself when the button is let go
        self._signal(truth, Action.NORMAL)

    def _motion(self, camera: str, location: str, index: int) -> None:
        self.store.append_event(
            "camera.motion",
            source=camera,
            location=location,
            occurred_at=self.schedule.now,
            data={"active": index % 2 == 0, "via": "analytics"},
        )

    _pending: dict[str, list[int]]

    def run(self) -> GeneratedMonth:
        self._pending = {}
        noisy = logging.getLogger("edgeguard.alarms")
        level = noisy.level
        noisy.setLevel(logging.ERROR)  # thousands of ALARM lines say nothing here
        try:
            with simulated_clock(lambda: self.schedule.now):
                self.schedule.run(self.store)
        finally:
            noisy.setLevel(level)
        self.result.ledger_rows = self.store.head()[0]
        return self.result


def generate_month(
    folder: Path,
    start: datetime,
    end: datetime,
    *,
    seed: int = 1,
    busy: float = 1.0,
    motion_rows: int = 0,
) -> GeneratedMonth:
    """A month from ``start`` to ``end`` (UTC) in ``folder``/edgeguard.db. ``busy`` scales the
    presses (1.0: about 17 a month, a calm hospital); ``motion_rows`` adds camera motion rows."""
    config = lab_config(folder)
    store = Store(Path(config.store.path))
    try:
        generator = MonthGenerator(store, config, start, end, seed)
        generator.plan(busy, motion_rows)
        return generator.run()
    finally:
        store.close()
