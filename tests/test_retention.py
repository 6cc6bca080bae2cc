"""Retention of evidence folders (edgeguard.cameras.retention): the deletion order as
properties of plan_prune, then prune() on a real folder tree with symlinks in it."""

from __future__ import annotations

import logging
import os
import random
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.cameras import retention
from edgeguard.cameras.retention import (
    DAY_S,
    EvidenceEntry,
    RetentionPolicy,
    plan_prune,
    prune,
    scan,
)

NOW = 1_800_000_000.0


def entry(
    event_id: str, priority: int, age_days: float, size: int, root: Path = Path("/ev")
) -> EvidenceEntry:
    return EvidenceEntry(root / event_id, event_id, priority, NOW - age_days * DAY_S, size)


def uuid7_at(epoch: float) -> str:
    """A UUIDv7 whose embedded timestamp is ``epoch``."""
    value = (int(epoch * 1000) << 80) | (0x7 << 76) | (0b10 << 62) | random.getrandbits(62)
    return str(uuid.UUID(int=value))


# --- the order, by example --------------------------------------------------------------------


def ids(plan: list[EvidenceEntry]) -> list[str]:
    return [e.event_id for e in plan]


def test_under_quota_nothing_is_deleted() -> None:
    entries = [entry("a", 5, 400, 10), entry("b", 1, 1, 10)]
    assert plan_prune(entries, RetentionPolicy(quota_bytes=20), NOW) == []


def test_max_days_deletes_regardless_of_priority_and_quota() -> None:
    entries = [entry("old-p1", 1, 200, 10), entry("new-p5", 5, 1, 10)]
    policy = RetentionPolicy(quota_bytes=10**9, max_days=180)
    assert ids(plan_prune(entries, policy, NOW)) == ["old-p1"]


def test_quota_order() -> None:
    entries = [
        entry("p1-old", 1, 200, 10),
        entry("p2-old", 2, 150, 10),
        entry("p3-young", 3, 5, 10),
        entry("p5-young-new", 5, 1, 10),
        entry("p5-young-older", 5, 2, 10),
        entry("p4-old", 4, 100, 10),
        entry("p3-old", 3, 120, 10),
        entry("p1-young", 1, 3, 10),
    ]
    policy = RetentionPolicy(quota_bytes=0, keep_days=90)
    assert ids(plan_prune(entries, policy, NOW)) == [
        "p4-old",  # ordinary evidence past keep_days: lower priority first
        "p3-old",
        "p5-young-older",  # then ordinary evidence within keep_days: P5, older first
        "p5-young-new",
        "p3-young",
        "p2-old",  # alarms' evidence (P1/P2) last: past keep_days first
        "p1-old",
        "p1-young",
    ]


def test_stops_as_soon_as_the_total_fits() -> None:
    entries = [entry("a", 5, 10, 50), entry("b", 5, 5, 50), entry("c", 1, 1, 50)]
    assert ids(plan_prune(entries, RetentionPolicy(quota_bytes=100), NOW)) == ["a"]


def test_grace_protects_folders_being_written() -> None:
    fresh = EvidenceEntry(Path("/ev/x"), "x", 5, NOW - 10, 1000)
    policy = RetentionPolicy(quota_bytes=0, grace_s=300)
    assert plan_prune([fresh], policy, NOW) == []


# --- the order, as properties -----------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[EvidenceEntry], RetentionPolicy]:
    count = draw(st.integers(0, 25))
    entries = [
        EvidenceEntry(
            Path(f"/ev/e{i}"),
            f"e{i}",
            draw(st.integers(1, 5)),
            NOW - draw(st.floats(0, 400 * DAY_S, allow_nan=False)),
            draw(st.integers(0, 1000)),
        )
        for i in range(count)
    ]
    policy = RetentionPolicy(
        quota_bytes=draw(st.integers(0, 10_000)),
        keep_days=draw(st.sampled_from([0.0, 30.0, 90.0, 365.0])),
        max_days=draw(st.one_of(st.none(), st.sampled_from([60.0, 180.0, 1000.0]))),
        grace_s=draw(st.sampled_from([0.0, 300.0, 5 * DAY_S])),
    )
    return entries, policy


def is_alarm(e: EvidenceEntry) -> bool:
    return e.priority in (1, 2)


def young(e: EvidenceEntry, policy: RetentionPolicy) -> bool:
    return NOW - e.created < policy.keep_days * DAY_S


def expired(e: EvidenceEntry, policy: RetentionPolicy) -> bool:
    return policy.max_days is not None and NOW - e.created > policy.max_days * DAY_S


def in_grace(e: EvidenceEntry, policy: RetentionPolicy) -> bool:
    return NOW - e.created < policy.grace_s


@given(cases())
@settings(max_examples=500, deadline=None)
def test_plan_properties(case: tuple[list[EvidenceEntry], RetentionPolicy]) -> None:
    entries, policy = case
    plan = plan_prune(entries, policy, NOW)
    planned = {e.event_id for e in plan}
    assert len(planned) == len(plan)
    assert planned <= {e.event_id for e in entries}
    left = [e for e in entries if e.event_id not in planned]
    total = sum(e.bytes for e in left)
    for_quota = [e for e in plan if not expired(e, policy)]

    # 1. everything past max_days goes, and only it is deleted without the quota asking
    assert all(e.event_id in planned for e in entries if expired(e, policy))
    # 2. the total fits whenever possible: if not, only folders in their grace period are left
    assert total <= policy.quota_bytes or all(in_grace(e, policy) for e in left)
    # 3. no more than needed: before the last quota deletion the total did not fit
    if for_quota:
        assert total + for_quota[-1].bytes > policy.quota_bytes
    assert not any(in_grace(e, policy) for e in for_quota)

    candidates_left = [e for e in left if not in_grace(e, policy)]
    for d in for_quota:
        for r in candidates_left:
            # 4. alarms' evidence (P1/P2) kept longest: never deleted while any P3-P5 is left
            #    (so, as asked: never while a lower-priority or non-alarm one newer than it is)
            if is_alarm(d):
                assert is_alarm(r)
            if is_alarm(d) != is_alarm(r):
                continue
            # 5. within the class: past keep_days before within it
            if young(d, policy):
                assert young(r, policy)
            if young(d, policy) != young(r, policy):
                continue
            # 6. then lower priority (higher number) first, then older first
            assert d.priority >= r.priority
            if d.priority == r.priority:
                assert d.created <= r.created


@given(cases(), st.randoms())
@settings(max_examples=200, deadline=None)
def test_plan_is_pure_and_independent_of_input_order(
    case: tuple[list[EvidenceEntry], RetentionPolicy], rnd: random.Random
) -> None:
    entries, policy = case
    before = list(entries)
    plan = plan_prune(entries, policy, NOW)
    assert entries == before
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert plan_prune(shuffled, policy, NOW) == plan


# --- prune() on a real tree -------------------------------------------------------------------


def make_folder(root: Path, event_id: str, sizes: list[int]) -> Path:
    folder = root / event_id
    folder.mkdir(parents=True)
    for i, size in enumerate(sizes):
        (folder / f"f{i}.bin").write_bytes(b"x" * size)
    return folder


def test_scan_measures_real_folders_only(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    outside = tmp_path / "outside"
    make_folder(outside, "big", [10_000])
    old = uuid7_at(NOW - 100 * DAY_S)
    folder = make_folder(root, old, [100, 200])
    (folder / "sub").mkdir()
    (folder / "sub" / "clip.mp4").write_bytes(b"y" * 300)
    (folder / "link-out").symlink_to(outside / "big" / "f0.bin")  # not counted, not followed
    (folder / "dir-out").symlink_to(outside / "big")
    (root / "linked-event").symlink_to(outside / "big")  # skipped
    (root / "stray.txt").write_text("not an event folder")  # skipped
    plain = make_folder(root, "not-a-uuid", [5])
    os.utime(plain, (NOW - 3 * DAY_S, NOW - 3 * DAY_S))

    found = {e.event_id: e for e in scan(root, {old: 1})}
    assert set(found) == {old, "not-a-uuid"}
    assert found[old].bytes == 600
    assert found[old].priority == 1
    assert found[old].created == pytest.approx(NOW - 100 * DAY_S, abs=0.001)
    assert found["not-a-uuid"].priority == 5
    assert found["not-a-uuid"].created == pytest.approx(NOW - 3 * DAY_S)
    assert scan(tmp_path / "missing", {}) == []


def test_prune_deletes_in_order_without_following_symlinks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgeguard.cameras.retention")
    root = tmp_path / "evidence"
    outside = tmp_path / "outside"
    precious = make_folder(outside, "precious", [1000])
    alarm = uuid7_at(NOW - 200 * DAY_S)
    motion_old = uuid7_at(NOW - 20 * DAY_S)
    motion_new = uuid7_at(NOW - 2 * DAY_S)
    for event_id in (alarm, motion_old, motion_new):
        folder = make_folder(root, event_id, [1000])
        (folder / "escape").symlink_to(precious)  # rmtree must unlink it, not descend
        (folder / "escape-file").symlink_to(precious / "f0.bin")
    (root / "linked-event").symlink_to(precious)
    sibling = tmp_path / "evidence-other"
    make_folder(sibling, "x", [10])

    priorities = {alarm: 1}
    deleted = prune(root, RetentionPolicy(quota_bytes=1500), priorities, now=NOW)
    assert [e.event_id for e in deleted] == [motion_old, motion_new]
    assert sorted(p.name for p in root.iterdir()) == sorted([alarm, "linked-event"])
    assert (precious / "f0.bin").read_bytes() == b"x" * 1000
    assert (root / "linked-event").is_symlink()
    assert (sibling / "x" / "f0.bin").exists()
    for event_id in (motion_old, motion_new):
        assert f"evidence pruned: {event_id}" in caplog.text

    # max_days then takes the old alarm too
    deleted = prune(root, RetentionPolicy(quota_bytes=10**9, max_days=100), priorities, now=NOW)
    assert [e.event_id for e in deleted] == [alarm]
    assert (precious / "f0.bin").exists()


def test_delete_refuses_anything_but_a_real_folder_under_root(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    root.mkdir()
    outside = make_folder(tmp_path, "outside", [10])
    (root / "link").symlink_to(outside)
    stray = EvidenceEntry(outside, "outside", 5, 0.0, 10)
    assert not retention._delete(root, stray)
    link = EvidenceEntry(root / "link", "link", 5, 0.0, 10)
    assert not retention._delete(root, link)
    dotdot = EvidenceEntry(root / "..", "..", 5, 0.0, 10)
    assert not retention._delete(root, dotdot)
    assert (outside / "f0.bin").exists()
    assert (root / "link").is_symlink()
