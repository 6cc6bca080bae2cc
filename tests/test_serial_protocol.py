"""EGB1 line protocol: CRC, framing, parsing, line splitting and duplicate filtering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edgeguard_drivers.serial_protocol import (
    MAX_LINE,
    BoxFrame,
    DuplicateFilter,
    Event,
    FrameError,
    FrameKey,
    LineSplitter,
    Overlong,
    Reason,
    Reply,
    Seen,
    crc16,
    encode_ack,
    encode_frame,
    encode_nak,
    parse_box_line,
    parse_reply,
    seal,
)

devs = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=65535)
events = st.sampled_from(list(Event))
frames = st.builds(BoxFrame, devs, seqs, events)


# -- CRC and known vectors (the same ones docs/serial-protocol.md shows) ---------------------


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_crc_of_empty_input_is_init() -> None:
    assert crc16(b"") == 0xFFFF


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (encode_frame("b1", 0, Event.PRESS), b"$EGB1,b1,0,PRESS*145E\r\n"),
        (encode_frame("b1", 0, "RELEASE"), b"$EGB1,b1,0,RELEASE*3C66\r\n"),
        (encode_frame("lobby-2", 41, "PRESS"), b"$EGB1,lobby-2,41,PRESS*6784\r\n"),
        (encode_frame("b1", 1, "HB"), b"$EGB1,b1,1,HB*9C4D\r\n"),
        (encode_frame("b1", 65535, "PRESS"), b"$EGB1,b1,65535,PRESS*242F\r\n"),
        (encode_ack("b1", 0), b"$ACK,b1,0*9C89\r\n"),
        (encode_ack("lobby-2", 41), b"$ACK,lobby-2,41*124F\r\n"),
        (encode_nak(None, None, Reason.CRC), b"$NAK,-,-,crc*F422\r\n"),
        (encode_nak(None, None, "format"), b"$NAK,-,-,format*8B16\r\n"),
        (encode_nak(None, None, "length"), b"$NAK,-,-,length*F7D5\r\n"),
        (encode_nak("lobby-2", 42, Reason.EVENT), b"$NAK,lobby-2,42,event*A349\r\n"),
        (seal("EGB1,b1,7,TAMPER"), b"$EGB1,b1,7,TAMPER*2875\r\n"),
    ],
)
def test_known_vectors(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected


def test_crc_covers_exactly_the_bytes_between_dollar_and_star() -> None:
    line = encode_frame("b1", 0, Event.PRESS)
    assert int(line[-6:-2], 16) == crc16(b"EGB1,b1,0,PRESS")


# -- encoding validation -------------------------------------------------------------------------


@pytest.mark.parametrize("dev", ["", "a" * 17, "a b", "a/b", "é", "a,b", "a*b", "-", "_a"])
def test_encode_rejects_bad_device_ids(dev: str) -> None:
    with pytest.raises(ValueError):
        encode_frame(dev, 0, Event.PRESS)
    with pytest.raises(ValueError):
        encode_ack(dev, 0)


@pytest.mark.parametrize("seq", [-1, 65536])
def test_encode_rejects_seq_out_of_range(seq: int) -> None:
    with pytest.raises(ValueError):
        encode_frame("b1", seq, Event.PRESS)


def test_encode_rejects_unsupported_event_and_garbage_nak() -> None:
    with pytest.raises(ValueError):
        encode_frame("b1", 0, "TAMPER")
    with pytest.raises(ValueError):
        encode_nak("b1", 0, Reason.GARBAGE)


def test_nak_sends_dash_for_unknown_or_invalid_ids() -> None:
    assert encode_nak("not valid!", 70000, Reason.FORMAT) == encode_nak(None, None, "format")


# -- parsing -------------------------------------------------------------------------------------


@given(frames, st.sampled_from([b"\r\n", b"\n", b""]), st.booleans())
def test_round_trip(frame: BoxFrame, eol: bytes, lowercase_crc: bool) -> None:
    line = encode_frame(frame.dev, frame.seq, frame.event)[:-2]
    if lowercase_crc:
        line = line[:-4] + line[-4:].lower()
    assert parse_box_line(line + eol) == frame


@given(devs, seqs)
def test_reply_round_trip(dev: str, seq: int) -> None:
    assert parse_reply(encode_ack(dev, seq)) == Reply("ACK", dev, seq)
    for reason in ("crc", "format", "event", "length"):
        assert parse_reply(encode_nak(dev, seq, reason)) == Reply("NAK", dev, seq, reason)
    assert parse_reply(encode_nak(None, None, "crc")) == Reply("NAK", None, None, "crc")


def _canonical(line: bytes) -> bytes:
    """A valid line as encode_frame writes it: uppercase CRC, \\r\\n."""
    body = line.removesuffix(b"\n").removesuffix(b"\r")
    return body[:-4] + body[-4:].upper() + b"\r\n"


def _parse_or_error(line: bytes) -> BoxFrame | FrameError:
    try:
        return parse_box_line(line)
    except FrameError as exc:
        return exc


def _check_any_line(line: bytes) -> None:
    """Any input: a FrameError with a reason and a message, or a frame it truly encodes."""
    result = _parse_or_error(line)
    if isinstance(result, FrameError):
        assert isinstance(result.reason, Reason)
        assert result.message
    else:
        assert encode_frame(result.dev, result.seq, result.event) == _canonical(line)


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(st.binary(max_size=2 * MAX_LINE))
def test_random_bytes_raise_only_frame_error(line: bytes) -> None:
    _check_any_line(line)
    _check_any_line(b"$EGB1," + line)


@given(st.text(printable, max_size=100))
def test_sealed_random_payloads_are_valid_only_if_canonical(payload: str) -> None:
    """Correct CRC, random content: parsed only when the content is a real frame."""
    _check_any_line(seal(payload))
    _check_any_line(seal("EGB1," + payload))


@given(frames, st.data())
def test_any_single_byte_change_is_rejected(frame: BoxFrame, data: st.DataObject) -> None:
    line = bytearray(encode_frame(frame.dev, frame.seq, frame.event))
    index = data.draw(st.integers(0, len(line) - 1))
    new = data.draw(st.integers(0, 255))
    assume(new != line[index])
    crc_field = range(len(line) - 6, len(line) - 2)
    assume(not (index in crc_field and bytes([new]).upper() == bytes([line[index]]).upper()))
    line[index] = new
    with pytest.raises(FrameError):
        parse_box_line(bytes(line))


@given(frames, st.integers(min_value=1, max_value=20))
def test_truncated_frames_are_rejected(frame: BoxFrame, cut: int) -> None:
    line = encode_frame(frame.dev, frame.seq, frame.event)[:-2]
    assume(cut < len(line))
    with pytest.raises(FrameError) as info:
        parse_box_line(line[:-cut])
    assert info.value.reason in {Reason.FORMAT, Reason.GARBAGE}


@pytest.mark.parametrize(
    ("line", "reason", "dev", "seq"),
    [
        (b"$EGB1,b1,5,PRESS*0000", Reason.CRC, "b1", 5),
        (b"$EGB1,b1,5,PRESS", Reason.FORMAT, None, None),
        (b"$EGB1,b1,5,PRESS*", Reason.FORMAT, "b1", 5),
        (b"$EGB1,b1,5,PRESS*14", Reason.FORMAT, "b1", 5),
        (b"$EGB1,b1,5,PRESS*145E0", Reason.FORMAT, "b1", 5),
        (b"$EGB1,b1,5,PRESS*14G5", Reason.FORMAT, "b1", 5),
        (b"$EGB1,b1,5,PRESS*0x1F", Reason.FORMAT, "b1", 5),
        (b"$EGB1,b1,5,PRESS*14*5E", Reason.FORMAT, None, None),
        (b"$EGB1,b\xe91,5,PRESS*1234", Reason.FORMAT, None, None),
        (b"$EGB1,b1,5,PRESS\t*1234", Reason.FORMAT, None, None),
        (seal("EGB1,b1,5"), Reason.FORMAT, "b1", 5),
        (seal("EGB1,b1,5,PRESS,x"), Reason.FORMAT, "b1", 5),
        (seal("EGB2,b1,5,PRESS"), Reason.GARBAGE, None, None),
        (seal("EGB1X,b1,5,PRESS"), Reason.FORMAT, "b1", 5),
        (seal("EGB1,,5,PRESS"), Reason.FORMAT, None, None),
        (seal("EGB1,-,5,PRESS"), Reason.FORMAT, None, None),
        (seal("EGB1,a_very_long_device,5,PRESS"), Reason.FORMAT, None, None),
        (seal("EGB1,b1,65536,PRESS"), Reason.FORMAT, "b1", None),
        (seal("EGB1,b1,05,PRESS"), Reason.FORMAT, "b1", None),
        (seal("EGB1,b1,+5,PRESS"), Reason.FORMAT, "b1", None),
        (seal("EGB1,b1,1_0,PRESS"), Reason.FORMAT, "b1", None),
        (seal("EGB1,b1,,PRESS"), Reason.FORMAT, "b1", None),
        (seal("EGB1,b1,5,"), Reason.FORMAT, "b1", 5),
        (seal("EGB1,b1,5,TAMPER"), Reason.EVENT, "b1", 5),
        (seal("EGB1,b1,5,press"), Reason.EVENT, "b1", 5),
        (b"$EGB1," + b"x" * MAX_LINE, Reason.LENGTH, None, None),
        (b"hello", Reason.GARBAGE, None, None),
        (b"", Reason.GARBAGE, None, None),
        (b" $EGB1,b1,0,PRESS*145E", Reason.GARBAGE, None, None),
        (encode_ack("b1", 0), Reason.GARBAGE, None, None),
    ],
)
def test_rejections(line: bytes, reason: Reason, dev: str | None, seq: int | None) -> None:
    with pytest.raises(FrameError) as info:
        parse_box_line(line)
    assert (info.value.reason, info.value.dev, info.value.seq) == (reason, dev, seq)
    assert str(info.value) == info.value.message


def test_garbage_is_the_only_reason_without_nak() -> None:
    assert [reason for reason in Reason if not reason.nak] == [Reason.GARBAGE]


def test_length_limit_is_128_bytes_without_terminator() -> None:
    with pytest.raises(FrameError) as info:
        parse_box_line(b"$EGB1," + b"x" * (MAX_LINE - 6))
    assert info.value.reason is Reason.FORMAT
    with pytest.raises(FrameError) as info:
        parse_box_line(b"$EGB1," + b"x" * (MAX_LINE - 5))
    assert info.value.reason is Reason.LENGTH


@pytest.mark.parametrize(
    "line",
    [b"$ACK,b1*1234", seal("ACK,-,5"), seal("NAK,b1,5,"), seal("NAK,b1,x,crc"), b"$EGB1,b1"],
)
def test_bad_replies(line: bytes) -> None:
    with pytest.raises(FrameError):
        parse_reply(line)


# -- line splitting --------------------------------------------------------------------------


@given(
    st.lists(
        st.binary(min_size=1, max_size=MAX_LINE).filter(lambda b: b"\n" not in b and b != b"\r"),
        max_size=8,
    ),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_splitter_is_independent_of_chunking(
    lines: list[bytes], cuts: list[int], eol: bytes
) -> None:
    stream = b"".join(line + eol for line in lines)
    splitter = LineSplitter()
    out: list[bytes | Overlong] = []
    last = 0
    for cut in sorted(c for c in cuts if c <= len(stream)):
        out += splitter.feed(stream[last:cut])
        last = cut
    out += splitter.feed(stream[last:])
    expected = [line.removesuffix(b"\r") if eol == b"\n" else line for line in lines]
    assert out == [line for line in expected if line]


def test_splitter_enforces_the_limit() -> None:
    splitter = LineSplitter()
    ok = b"x" * MAX_LINE
    assert splitter.feed(ok + b"\r\n") == [ok]
    assert splitter.feed(ok + b"\n") == [ok]
    out = splitter.feed(b"y" * (MAX_LINE + 1) + b"\n" + ok + b"\n")
    assert out == [Overlong(b"y" * LineSplitter.PREFIX), ok]


def test_overlong_line_is_reported_once_and_discarded_to_its_newline() -> None:
    splitter = LineSplitter()
    reports: list[bytes | Overlong] = []
    for _ in range(50):
        reports += splitter.feed(b"z" * 40)
    assert reports == [Overlong(b"z" * LineSplitter.PREFIX)]
    assert splitter.feed(b"tail\nnext\n") == [b"next"]


def test_splitter_skips_empty_lines() -> None:
    assert LineSplitter().feed(b"\n\r\n\na\n") == [b"a"]


# -- duplicates ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_states() -> None:
    dupes = DuplicateFilter()
    key = FrameKey("b1", 5, Event.PRESS)
    seen, token = dupes.admit(key)
    assert seen is Seen.NEW
    assert dupes.admit(key) == (Seen.PENDING, token)
    assert dupes.recorded(key, token)
    assert dupes.admit(key) == (Seen.RECORDED, token)
    assert dupes.admit(FrameKey("b2", 5, Event.PRESS))[0] is Seen.NEW
    # Same seq, other event: a reused number, not a repeat.
    assert dupes.admit(FrameKey("b1", 5, Event.RELEASE))[0] is Seen.NEW


def test_failed_write_makes_the_repeat_new() -> None:
    dupes = DuplicateFilter()
    key = FrameKey("b1", 5, Event.PRESS)
    _, token = dupes.admit(key)
    dupes.failed(key, token)
    seen, token2 = dupes.admit(key)
    assert seen is Seen.NEW
    assert token2 != token
    assert not dupes.recorded(key, token)  # the stale callback does not ACK the new one
    assert dupes.recorded(key, token2)


def test_clear_invalidates_pending_tokens() -> None:
    dupes = DuplicateFilter()
    key = FrameKey("b1", 5, Event.PRESS)
    _, token = dupes.admit(key)
    dupes.clear()
    assert not dupes.recorded(key, token)
    assert dupes.admit(key)[0] is Seen.NEW


def test_recorded_frames_expire_after_ttl_since_last_seen() -> None:
    clock = FakeClock()
    dupes = DuplicateFilter(ttl=10.0, clock=clock)
    key = FrameKey("b1", 0, Event.PRESS)
    _, token = dupes.admit(key)
    dupes.recorded(key, token)
    for _ in range(5):  # repeats keep it alive
        clock.now += 8.0
        assert dupes.admit(key)[0] is Seen.RECORDED
    clock.now += 10.5
    assert dupes.admit(key)[0] is Seen.NEW


def test_pending_frames_do_not_expire() -> None:
    clock = FakeClock()
    dupes = DuplicateFilter(ttl=1.0, clock=clock)
    key = FrameKey("b1", 0, Event.PRESS)
    dupes.admit(key)
    clock.now += 100.0
    assert dupes.admit(key)[0] is Seen.PENDING


def test_window_keeps_the_last_64_seqs_per_device() -> None:
    dupes = DuplicateFilter(window=64)
    for seq in range(100):
        key = FrameKey("b1", seq, Event.PRESS)
        dupes.recorded(key, dupes.admit(key)[1])
    assert len(dupes) == 64
    assert dupes.admit(FrameKey("b1", 99, Event.PRESS))[0] is Seen.RECORDED
    assert dupes.admit(FrameKey("b1", 36, Event.PRESS))[0] is Seen.RECORDED
    assert dupes.admit(FrameKey("b1", 35, Event.PRESS))[0] is Seen.NEW


def test_device_memory_is_bounded() -> None:
    dupes = DuplicateFilter(max_devices=4)
    for index in range(10):
        dupes.admit(FrameKey(f"d{index}", 0, Event.PRESS))
    assert len(dupes) == 4


@given(seqs, st.integers(min_value=1, max_value=300), st.sampled_from(list(Event)))
def test_consecutive_seqs_are_new_across_wrap_around(start: int, count: int, event: Event) -> None:
    dupes = DuplicateFilter()
    for offset in range(count):
        key = FrameKey("b1", (start + offset) % 65536, event)
        seen, token = dupes.admit(key)
        assert seen is Seen.NEW
        assert dupes.admit(key) == (Seen.PENDING, token)
        assert dupes.recorded(key, token)
        assert dupes.admit(key)[0] is Seen.RECORDED


# -- the examples in the protocol document ----------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "serial-protocol.md"
FRAME_IN_TEXT = re.compile(r"\$([A-Za-z0-9_,-]+)\*([0-9A-Fa-f]{4})")


def test_every_example_in_the_protocol_document_has_a_correct_crc() -> None:
    checked = 0
    for text_line in DOC.read_text(encoding="utf-8").splitlines():
        for match in FRAME_IN_TEXT.finditer(text_line):
            payload, crc_text = match.groups()
            correct = crc16(payload.encode("ascii")) == int(crc_text, 16)
            assert correct != ("corrupted" in text_line), text_line
            checked += 1
    assert checked >= 25


def test_document_worked_example() -> None:
    assert encode_frame("b1", 0, "PRESS") == bytes.fromhex(
        "24 45 47 42 31 2C 62 31 2C 30 2C 50 52 45 53 53 2A 31 34 35 45 0D 0A"
    )
    with pytest.raises(FrameError) as info:
        parse_box_line(b"$EGB1,01,44,PRUSS*CD76")
    assert encode_nak(info.value.dev, info.value.seq, info.value.reason) == (
        b"$NAK,01,44,crc*85E6\r\n"
    )
