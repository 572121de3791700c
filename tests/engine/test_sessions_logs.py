"""The session log format on its own: markers, demultiplexing, tails and streaming."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.engine import logs

pieces = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.binary(min_size=1, max_size=40)), max_size=20
)


def _joined(chunks: list[tuple[int, bytes]]) -> dict[int, bytes]:
    result = {1: b"", 2: b""}
    for stream, data in chunks:
        result[stream] += data
    return result


@settings(deadline=None)  # the machine is shared; only correctness matters here
@given(pieces, st.lists(st.integers(min_value=1, max_value=7), min_size=1))
def test_marked_output_demultiplexes_back_exactly_however_it_is_split(
    written: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    # Output containing the marker bytes themselves is ambiguous in Daytona's format.
    written = [(s, d.replace(b"\x01", b".").replace(b"\x02", b".")) for s, d in written]
    blob = b"".join(logs.mark(stream, data) for stream, data in written)
    chunks, position, index = [], 0, 0
    while position < len(blob):
        size = cuts[index % len(cuts)]
        chunks.append(blob[position : position + size])
        position += size
        index += 1
    assert _joined(list(logs.demux(chunks))) == _joined(written)


def test_every_line_carries_its_streams_marker() -> None:
    assert logs.mark(1, b"a\nb\n") == b"\x01\x01\x01a\n\x01\x01\x01b\n"
    assert logs.mark(2, b"partial") == b"\x02\x02\x02partial"


def test_tail_offset_finds_the_start_of_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\nthree\n")
    assert path.read_bytes()[logs.tail_offset(path, 2) :] == b"two\nthree\n"
    assert logs.tail_offset(path, 0) == path.stat().st_size
    assert logs.tail_offset(path, 10) == 0
    path.write_bytes(b"one\ntwo")
    assert path.read_bytes()[logs.tail_offset(path, 1) :] == b"two"


def test_json_logs_give_combined_and_separate_streams(tmp_path: Path) -> None:
    path = tmp_path / "log"
    # A two-byte character split by the other stream must still decode in each stream.
    path.write_bytes(logs.mark(1, b"caf\xc3") + logs.mark(2, b"err\n") + logs.mark(1, b"\xa9\n"))
    body = json.loads(b"".join(logs.json_logs(path)))
    assert body == {"output": "caferr\né\n", "stdout": "café\n", "stderr": "err\n"}


async def test_a_followed_log_is_sent_in_frames_that_end_on_lines(tmp_path: Path) -> None:
    log = logs.CommandLog(tmp_path / "cmd")
    log.open("seq")
    for number in range(20000):
        log.write(1 if number % 3 else 2, f"{number}\n".encode())
    log.finish(0)
    frames = [frame async for frame in logs.stream_frames(log, follow=True)]
    assert all(len(frame) <= logs.FRAME_MAX and frame.endswith(b"\n") for frame in frames)
    out = b"".join(data for stream, data in logs.demux(frames) if stream == 1)
    assert out.count(b"\n") == 20000 - len(range(0, 20000, 3))
