"""Contact ID parsing: published example frames, the checksum, properties and a fuzz run."""

from __future__ import annotations

import contextlib
import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.alarm_model import AlarmKind
from edgeguard_drivers.contact_id_codes import CODES, Ccc, Handling, lookup
from edgeguard_drivers.contact_id_protocol import (
    MAX_LINE,
    ContactIdError,
    ContactIdMessage,
    Qualifier,
    Reason,
    SurgardHeartbeat,
    check_digit,
    checksum_ok,
    digit_value,
    make_message,
    make_surgard_message,
    parse_line,
    parse_surgard_line,
)
from edgeguard_drivers.serial_protocol import LineSplitter, Overlong

DIGITS = "0123456789BCDEF"  # Contact ID digits (A is another spelling of 0)

# -- published examples ------------------------------------------------------------------------

# (line, account, qualifier, code, group, zone/user). Sources:
# [protege] Integrated Control Technology, Protege manual, "Traditional Analog CID Monitoring":
#   https://protege.justsmarthomes.com/ICT_111_2_5.html - "1234 18 1131 01 015 8" (perimeter
#   burglary, new, group 1, zone 15, checksum 8).
# [m2000] Cooper Security M2000 engineering manual, option 2-5, Contact ID examples 1 and 2
#   (https://cooper-security.manymanuals.es/security-access-control-systems/m2000/users-guide-7541/119):
#   "1234 18 1137 01 015 2" (tamper) and "1234 18 3137 01 015 F" (its restore).
# [spandsp] freeswitch/spandsp tests/ademco_contactid_tests.c, reports[]: the field values
#   {0x1234, 0x18, 1|3, 0x131|0x401, gg, ccc}; the check digits here are computed by the rule
#   (spandsp's own encoder writes them as DTMF symbols). 1234 18 1 131 01 015 gives the same
#   "8" as [protege]: two independent sources agree.
# [capture] a real ADM-CID line from a Teknim receiver, quoted in a comment of a Go receiver
#   agent on GitHub (package "protocol", found through a code index that did not show the
#   repository name): `56b8003c"ADM-CID"1569L1#6827[#6827|18160201000D]_00:00:00,02-21-2024`:
#   account 6827 + "18 1 602 01 000 D", a periodic test.
PUBLISHED = [
    (b"1234 18 1131 01 015 8", "1234", Qualifier.NEW, "131", "01", "015"),  # [protege]
    (b"1234 18 1137 01 015 2", "1234", Qualifier.NEW, "137", "01", "015"),  # [m2000]
    (b"1234 18 3137 01 015 F", "1234", Qualifier.RESTORE, "137", "01", "015"),  # [m2000]
    (b"1234181131010158", "1234", Qualifier.NEW, "131", "01", "015"),  # [spandsp] 1
    (b"1234183131010156", "1234", Qualifier.RESTORE, "131", "01", "015"),  # [spandsp] 2
    (b"1234181401020035", "1234", Qualifier.NEW, "401", "02", "003"),  # [spandsp] 3
    (b"123418340103005F", "1234", Qualifier.RESTORE, "401", "03", "005"),  # [spandsp] 4
    (b"682718160201000D", "6827", Qualifier.NEW, "602", "01", "000"),  # [capture]
]


@pytest.mark.parametrize(("line", "account", "qualifier", "code", "group", "ccc"), PUBLISHED)
def test_published_examples_parse(
    line: bytes, account: str, qualifier: Qualifier, code: str, group: str, ccc: str
) -> None:
    msg = parse_line(line + b"\r\n")
    assert (msg.account, msg.message_type, msg.qualifier) == (account, "18", qualifier)
    assert (msg.event_code, msg.group, msg.zone_or_user) == (code, group, ccc)
    assert msg.checksum_ok is True
    assert msg.raw == line.decode()
    assert checksum_ok(line.decode().replace(" ", ""))


def test_published_examples_map_to_their_events() -> None:
    assert lookup("131").kind is AlarmKind.INTRUSION  # perimeter burglary
    assert (lookup("137").kind, lookup("137").category) == (AlarmKind.DEVICE_FAULT, "tamper")
    assert (lookup("401").handling, lookup("401").ccc) == (Handling.LOG, Ccc.USER)  # O/C by user
    assert lookup("602").handling is Handling.SUPERVISION  # periodic test


def test_spandsp_report_with_message_type_56_has_a_good_checksum_but_is_refused() -> None:
    # [spandsp] reports[4] = {0x1234, 0x56, 0x7, 0x890, 0xBC, 0xDEF}: a valid checksum but not
    # a Contact ID message type.
    digits = "1234567890BCDEF"
    line = digits + check_digit(digits)
    assert checksum_ok(line)
    with pytest.raises(ContactIdError) as info:
        parse_line(line.encode())
    assert info.value.reason is Reason.MESSAGE_TYPE


def test_spandsp_hex_a_is_read_as_zero() -> None:
    # [spandsp] reports[5] has the hex digit A in the event code (89A), which spandsp refuses
    # to send. Our serial input reads A as the digit 0 (value 10) on purpose.
    assert make_message(1234, "12A", 15) == make_message(1234, "120", 15)
    msg = parse_line(b"1234 18 112A 01 015 " + make_message(1234, 120, 15, group=1)[-1:].encode())
    assert msg.event_code == "120"


# [mlr2] Sur-Gard MLR2-DG installation manual, "Communication protocol with central station
#   computer" (https://manualshive.com/ru/manual/sg-security-communications/mlr2-dg/1251014?page=45
#   and page=43): Contact ID "5RRLs18AAAAQXYZGGCCC[DC4]", example "5011s181234E12101001[DC4]"
#   (account 1234, duress, group 01, zone/user 001, receiver 01, line 1); heartbeat
#   "1011sssssssssss@ssss[DC4]".
def test_surgard_manual_example() -> None:
    msg = parse_surgard_line(b"5011 181234E12101001\x14")
    assert isinstance(msg, ContactIdMessage)
    assert (msg.receiver, msg.line, msg.account, msg.qualifier) == ("01", "1", "1234", "new")
    assert (msg.event_code, msg.group, msg.zone_or_user) == ("121", "01", "001")
    assert msg.checksum_ok is None  # the receiver checked it; its output has no check digit
    assert make_surgard_message(1234, 121, 1, group=1) == b"5011 181234E12101001\x14"


def test_surgard_heartbeat_and_other_protocols() -> None:
    beat = parse_surgard_line(b"1011" + b" " * 11 + b"@" + b" " * 4 + b"\x14")
    assert beat == SurgardHeartbeat(receiver="01", raw="1011" + " " * 11 + "@")
    newer = parse_surgard_line(b"101000" + b" " * 11 + b"@    \x14")  # 1RR000 form
    assert isinstance(newer, SurgardHeartbeat)
    with pytest.raises(ContactIdError) as info:
        parse_surgard_line(b"3011    123456NBA0001\x14")  # SIA, not Contact ID
    assert info.value.reason is Reason.UNSUPPORTED


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"5011 181234R13001015", ("restore", "130", "015")),
        (b"5011 181234P13001015", ("status", "130", "015")),
        (b"50110181234E13001015", ("new", "130", "015")),  # 3-digit line number, no space
        (b"5011 181234E1300101512:30:05-21/02", ("new", "130", "015")),  # clock variant
    ],
)
def test_surgard_variants(line: bytes, fields: tuple[str, str, str]) -> None:
    msg = parse_surgard_line(line)
    assert isinstance(msg, ContactIdMessage)
    assert (msg.qualifier.value, msg.event_code, msg.zone_or_user) == fields


# -- checksum and rejection --------------------------------------------------------------------


def test_digit_values() -> None:
    assert [digit_value(c) for c in "0123456789ABCDEF"] == [10, *range(1, 10), 10, *range(11, 16)]


def test_check_digit_is_never_zero_valued_and_completes() -> None:
    assert check_digit("123418113101015") == "8"
    assert check_digit("123418313701015") == "F"  # sum 60 already: the digit is 15
    for _ in range(200):
        digits = "".join(random.choices(DIGITS, k=15))
        assert checksum_ok(digits + check_digit(digits))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"1234 18 1131 01 015 9", Reason.CHECKSUM),
        (b"1234181131010157", Reason.CHECKSUM),
        (b"123418113101015", Reason.LENGTH),
        (b"12341811310101588", Reason.LENGTH),
        (b"1234 18 1131 01 015 G", Reason.CHARS),
        (b"1234  18 1131 01 015 8", Reason.CHARS),  # two spaces
        (b"12 34 18 1131 01 015 8", Reason.CHARS),  # space inside a field
        (b"1234\x0018113101015 8", Reason.CHARS),
        (b"1234\xc318113101015 8", Reason.CHARS),
        (b"   ", Reason.EMPTY),
        (b"9" * (MAX_LINE + 1), Reason.LENGTH),
        (make_message(1234, 120, 1, message_type="28").encode(), Reason.MESSAGE_TYPE),
        (b"123418212000001" + check_digit("123418212000001").encode(), Reason.QUALIFIER),
    ],
)
def test_rejected_lines(line: bytes, reason: Reason) -> None:
    with pytest.raises(ContactIdError) as info:
        parse_line(line)
    assert info.value.reason is reason


def test_message_type_98_and_lowercase_and_a_for_zero() -> None:
    msg = parse_line(make_message("bcde", 120, 5, message_type="98").lower().encode())
    assert (msg.account, msg.message_type) == ("BCDE", "98")
    text = make_message(1234, 120, 5, group=10)
    msg2 = parse_line(text.replace("0", "A").encode())
    assert (msg2.event_code, msg2.group, msg2.zone_or_user) == ("120", "10", "005")


# -- the code table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "priority", "category"),
    [
        ("100", AlarmKind.PANIC, 1, "medical"),
        ("101", AlarmKind.PANIC, 1, "personal_emergency"),
        ("110", AlarmKind.PANIC, 1, "fire"),
        ("120", AlarmKind.PANIC, 1, "panic"),
        ("121", AlarmKind.DURESS, 1, "duress"),
        ("122", AlarmKind.PANIC, 1, "panic"),
        ("123", AlarmKind.PANIC, 1, "panic"),
        ("130", AlarmKind.INTRUSION, 2, "burglary"),
        ("137", AlarmKind.DEVICE_FAULT, 3, "tamper"),
        ("301", AlarmKind.DEVICE_FAULT, 3, "power"),
        ("302", AlarmKind.DEVICE_FAULT, 3, "power"),
        ("354", AlarmKind.DEVICE_FAULT, 3, "communication"),
        ("375", AlarmKind.DEVICE_FAULT, 2, "panic_trouble"),
        ("376", AlarmKind.DEVICE_FAULT, 2, "panic_trouble"),
        ("381", AlarmKind.DEVICE_FAULT, 3, "supervision"),
        ("199", AlarmKind.INTRUSION, 2, "unknown_alarm"),  # unlisted 1xx
        ("399", AlarmKind.DEVICE_FAULT, 3, "trouble"),  # unlisted 3xx
    ],
)
def test_alarm_codes(code: str, kind: AlarmKind, priority: int, category: str) -> None:
    info = lookup(code)
    assert (info.handling, info.kind, info.priority, info.category) == (
        Handling.ALARM,
        kind,
        priority,
        category,
    )


@pytest.mark.parametrize(
    ("code", "handling"),
    [
        ("602", Handling.SUPERVISION),
        ("401", Handling.LOG),
        ("499", Handling.LOG),
        ("570", Handling.LOG),
        ("601", Handling.LOG),
        ("700", Handling.LOG),
        ("B12", Handling.LOG),
    ],
)
def test_non_alarm_codes(code: str, handling: Handling) -> None:
    assert lookup(code).handling is handling
    assert lookup(code).kind is None


def test_table_is_consistent() -> None:
    for code, info in CODES.items():
        assert code == info.code
        assert len(code) == 3
        assert info.description
        assert (info.kind is not None) == (info.handling is Handling.ALARM), code
        assert (info.priority is not None) == (info.handling is Handling.ALARM), code
    assert lookup("121").ccc is Ccc.USER
    assert lookup("130").ccc is Ccc.ZONE


# -- properties ---------------------------------------------------------------------------------


def _accepted_has_valid_checksum(parser: Callable[[bytes], object], data: bytes) -> None:
    try:
        msg = parser(data)
    except ContactIdError:
        return
    if isinstance(msg, ContactIdMessage) and msg.checksum_ok is not None:
        assert checksum_ok(msg.raw.replace(" ", ""))
        assert msg.message_type in {"18", "98"}


@given(st.binary(max_size=80))
@settings(max_examples=3000, deadline=None)
def test_any_bytes_parse_or_raise_contact_id_error(data: bytes) -> None:
    _accepted_has_valid_checksum(parse_line, data)
    _accepted_has_valid_checksum(parse_surgard_line, data)


contact_digits = st.text(alphabet=DIGITS, min_size=1, max_size=1)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, object]:
    def digits(n: int) -> str:
        return "".join(draw(contact_digits) for _ in range(n))

    return {
        "account": digits(4),
        "event_code": digits(3),
        "zone_or_user": digits(3),
        "group": digits(2),
        "qualifier": draw(st.sampled_from(list(Qualifier))),
        "message_type": draw(st.sampled_from(["18", "98"])),
    }


@given(messages(), st.booleans())
@settings(max_examples=1000, deadline=None)
def test_round_trip(fields: dict[str, object], spaces: bool) -> None:
    text = make_message(**fields, spaces=spaces)  # type: ignore[arg-type]
    msg = parse_line(text.encode() + b"\n")
    assert msg.raw == text
    for name in ("account", "event_code", "zone_or_user", "group", "qualifier", "message_type"):
        assert getattr(msg, name) == fields[name]
    assert msg.digits == text.replace(" ", "")[:15]


@given(messages(), st.integers(0, 15), st.sampled_from(DIGITS))
@settings(max_examples=1000, deadline=None)
def test_every_single_digit_change_is_caught(
    fields: dict[str, object], position: int, digit: str
) -> None:
    text = make_message(**fields)  # type: ignore[arg-type]
    if digit_value(text[position]) == digit_value(digit):
        return
    changed = text[:position] + digit + text[position + 1 :]
    assert not checksum_ok(changed)
    with pytest.raises(ContactIdError):
        parse_line(changed.encode())


@given(messages())
@settings(max_examples=300, deadline=None)
def test_surgard_round_trip(fields: dict[str, object]) -> None:
    del fields["message_type"]
    line = make_surgard_message(**fields)  # type: ignore[arg-type]
    msg = parse_surgard_line(line)
    assert isinstance(msg, ContactIdMessage)
    assert msg.event_code == fields["event_code"]
    assert msg.zone_or_user == fields["zone_or_user"]


# -- fuzz -----------------------------------------------------------------------------------------

FUZZ_MIN_INPUTS = 100_000  # plain run, then a smaller run under tracemalloc
FUZZ_TRACED_INPUTS = 20_000
FUZZ_BUDGET_S = 5.0
FUZZ_PEAK_BYTES = 1024 * 1024


def _mutate(rng: random.Random, text: bytes) -> bytes:
    data = bytearray(text)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data.insert(pos, rng.choice(b"0123456789ABCDEF \r\n\x14\x00\xff"))
        elif op == 2 and data:
            del data[min(pos, len(data) - 1)]
        else:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def _fuzz_input(rng: random.Random, index: int) -> tuple[bytes, bool]:
    """An input and whether it is mutated from a valid message (else random bytes)."""
    if index % 4 == 0:
        return rng.randbytes(rng.randint(0, 40)), False
    digits = "".join(rng.choices(DIGITS, k=15))
    valid = digits + check_digit(digits)
    if index % 4 == 3:
        return _mutate(rng, make_surgard_message(valid[:4], valid[7:10], valid[12:15])), True
    return _mutate(rng, valid.encode()), True


def _fuzz_one(data: bytes, mutated: bool, splitter: LineSplitter) -> bool:
    """Run every byte parser on one input; True if parse_line accepted it."""
    accepted = False
    try:
        msg = parse_line(data)
        accepted = True
        assert mutated, data  # random bytes never make a message
        assert checksum_ok(msg.raw.replace(" ", "")), data  # never valid with a bad checksum
        assert msg.message_type in {"18", "98"}
    except ContactIdError:
        pass
    with contextlib.suppress(ContactIdError):
        parse_surgard_line(data)
    for item in splitter.feed(data):
        assert isinstance(item, Overlong) or len(item) <= MAX_LINE
    return accepted


def _fuzz_run(rng: random.Random, splitter: LineSplitter, count: int) -> tuple[int, int]:
    """Up to ``count`` inputs within the time budget; returns (tried, accepted)."""
    tried = accepted = 0
    deadline = time.monotonic() + FUZZ_BUDGET_S
    while tried < count and time.monotonic() < deadline:
        data, mutated = _fuzz_input(rng, tried)
        accepted += _fuzz_one(data, mutated, splitter)
        tried += 1
    return tried, accepted


def test_fuzz_every_byte_parser(record_property: Callable[[str, object], None]) -> None:
    rng = random.Random(20240521)
    splitter = LineSplitter(max_len=MAX_LINE)
    started = time.monotonic()
    tried, accepted = _fuzz_run(rng, splitter, FUZZ_MIN_INPUTS)
    tracemalloc.start()
    try:
        traced, traced_accepted = _fuzz_run(rng, splitter, FUZZ_TRACED_INPUTS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    total = tried + traced
    record_property("fuzz_inputs", total)
    record_property("fuzz_accepted", accepted + traced_accepted)
    record_property("fuzz_traced_peak_bytes", peak)
    print(
        f"fuzz: {total} inputs ({traced} traced) in {elapsed:.2f} s, "
        f"{accepted + traced_accepted} accepted (mutations that kept a valid checksum), "
        f"traced peak {peak} bytes"
    )
    assert tried >= FUZZ_MIN_INPUTS, f"only {tried} inputs in {FUZZ_BUDGET_S} s"
    assert traced >= FUZZ_TRACED_INPUTS // 4
    assert peak < FUZZ_PEAK_BYTES
    assert len(splitter._buf) <= MAX_LINE + 1


def test_documented_table_matches_the_code() -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "drivers" / "contact-id.md"
    rows = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and len(cells[0]) == 3 and cells[0][0].isdigit():
            rows[cells[0]] = cells
    assert set(rows) == set(CODES)
    for code, info in CODES.items():
        kind = info.kind.value if info.kind else "—"
        priority = str(info.priority) if info.priority else "—"
        expected = [code, info.description, info.handling.value, kind, priority]
        assert rows[code][:5] == expected, code
