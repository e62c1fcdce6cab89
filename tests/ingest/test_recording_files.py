"""Recordings for backtests: the names a user may give, uploads, and the line-by-line check."""

import gzip
import json

import pytest

from ingest.recording import (
    FORMAT,
    VERSION,
    RecordingError,
    kalshi_update,
    pair_to_json,
    pairs_of,
    polymarket_update,
    read_recording,
    to_book,
    token_sides,
)
from ingest.recording_files import (
    available_recordings,
    resolve_recording,
    save_upload,
    validate_recording,
)
from ingest.synthetic import synthetic_pairs

PAIRS = synthetic_pairs(2, seed=1)
FED = PAIRS[0]
HEADER = {"format": FORMAT, "version": VERSION, "pairs": [pair_to_json(p) for p in PAIRS], "source": "test"}
BUNDLED = "bundled/demo_recording.jsonl.gz"


def kalshi(t_ms, ticker=FED.kalshi_ticker, yes=(("0.42", "10"),), no=(("0.55", "20"),)):
    return kalshi_update(t_ms, ticker, list(yes), list(no))


def poly(t_ms, token=FED.poly_yes_token, bids=(("0.48", "120"),), asks=(("0.52", "75"),)):
    return polymarket_update(t_ms, token, list(bids), list(asks))


def gzip_lines(path, lines):
    """A gzip file of these lines: dicts as JSON, text and bytes as they are, each ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as file:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            if isinstance(line, str):
                line = line.encode()
            file.write(line + b"\n")
    return path


def recording(path, *updates, header=HEADER):
    return gzip_lines(path, [header, *updates])


@pytest.fixture
def recordings_dir(tmp_path, settings):
    folder = tmp_path / "recordings"
    settings.RECORDINGS_DIR = folder
    return folder


# --- validation ----------------------------------------------------------------------------------


def test_the_bundled_recording_validates_with_its_counts():
    ref = resolve_recording(BUNDLED)
    summary = validate_recording(ref.path)
    assert summary.as_json() == {
        "pairs": 3,
        "updates": 39_304,
        "first_ms": 1_767_225_600_179,
        "last_ms": 1_767_229_199_905,
        "skipped_unknown": 0,
        "gaps": 0,
        "longest_gap_ms": 851,  # the generator never leaves the pairs silent for a second
        "empty_books": 0,
        "cut_short": False,
        "complete": True,
    }


def bad_pair(**changes):
    pair = {**pair_to_json(FED), **changes}
    return {**HEADER, "pairs": [pair]}


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([{"t": 1, "venue": "kalshi", "id": "X", "yes": [], "no": []}], "line 1: not a recording header"),
        ([{**HEADER, "format": "something-else"}], "line 1: not a recording header"),
        ([{**HEADER, "version": 2}], "line 1: version 2: this code reads version 1"),
        ([{**HEADER, "pairs": []}], "line 1: the header lists no pairs"),
        ([bad_pair(kalshi_ticker="")], "line 1: pair 1: kalshi_ticker is missing or not text"),
        ([bad_pair(kalshi_fee_rate="seven")], "line 1: pair 1: kalshi_fee_rate must be a decimal"),
        ([bad_pair(poly_fee_rate=0.07)], "line 1: pair 1: poly_fee_rate must be decimal text"),
        ([bad_pair(max_age_ms=0)], "line 1: pair 1: max_age_ms must be a whole number from 1"),
        ([HEADER, kalshi(1), "{not json"], "line 3: not JSON"),
        ([HEADER, kalshi(1), b"\xff\xfe{}"], "line 3: not UTF-8 text"),
        ([HEADER, kalshi(1), "[1, 2]"], "line 3: not a JSON object but list"),
        ([HEADER, kalshi(1), ""], "line 3: not JSON"),
        ([HEADER, kalshi(1), {"venue": "kalshi", "id": "X"}], "line 3: an update without 't'"),
        ([HEADER, kalshi(1), {"t": 2, "id": "X"}], "line 3: an update without 'venue'"),
        ([HEADER, kalshi(1), {"t": 2, "venue": "kalshi"}], "line 3: an update without 'id'"),
        ([HEADER, kalshi(1), {**kalshi(2), "t": "2"}], "line 3: t must be a whole number of milliseconds"),
        ([HEADER, kalshi(1), {**kalshi(2), "venue": "binance"}], "line 3: unknown venue 'binance'"),
        ([HEADER, kalshi(1), kalshi(2, yes=[("1.5", "10")])], "line 3: yes level 1: price '1.5' is not"),
        ([HEADER, kalshi(1), kalshi(2, no=[("0.5", "10"), ("abc", "1")])], "line 3: no level 2: price 'abc'"),
        ([HEADER, kalshi(1), poly(2, asks=[("0.52", "-3")])], "line 3: asks level 1: size '-3' is not"),
        ([HEADER, kalshi(1), poly(2, bids=[("1e-1", "3")])], "line 3: bids level 1: price '1e-1'"),
        ([HEADER, kalshi(1), {**kalshi(2), "yes": [[0.42, "10"]]}], "line 3: yes level 1: price 0.42"),
        ([HEADER, kalshi(1), {**poly(2), "bids": [["0.4", "1"]]}], 'line 3: bids level 1 must be {"price"'),
        ([HEADER, kalshi(1), {**kalshi(2), "no": None}], "line 3: no must be a list of levels"),
        ([HEADER, kalshi(1), {**kalshi(2), "venue": "x" * 10_000}], "line 3: unknown venue 'xxxxxxxx"),
        (
            [HEADER, kalshi(1000), poly(1500), kalshi(1200), kalshi(900)],
            "line 4: t 1200 is earlier than the previous line's t 1500: times go backwards",
        ),
        ([HEADER], "line 2: no book updates after the header"),
    ],
)
def test_the_first_bad_line_is_named(tmp_path, lines, error):
    path = gzip_lines(tmp_path / "bad.jsonl.gz", lines)
    with pytest.raises(RecordingError) as raised:
        validate_recording(path)
    assert str(raised.value).startswith(error)
    assert len(str(raised.value)) < 300  # a value from the file is quoted short, whatever its length


def test_a_file_that_is_not_gzip_is_refused_at_line_1(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_text(json.dumps(HEADER) + "\n")
    with pytest.raises(RecordingError, match=r"^line 1: not a gzip file"):
        validate_recording(path)


def test_one_endless_line_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as file:
        file.write(json.dumps(HEADER).encode() + b"\n")
        for _ in range(3):
            file.write(b"0" * 1_000_000)
    with pytest.raises(RecordingError, match=r"^line 2: longer than 1048576 bytes"):
        validate_recording(path)


def test_unknown_instruments_empty_books_and_gaps_are_counted_not_refused(tmp_path):
    path = recording(
        tmp_path / "rec.jsonl.gz",
        kalshi(1_000),
        kalshi(1_500, ticker="KXOTHER-26"),  # not in the header's pairs
        poly(2_000, token="9999"),  # nor this token
        poly(2_500, asks=[], bids=[]),  # emptied
        kalshi(3_000, yes=[("0.42", "0.00")], no=[]),  # only an empty level
        kalshi(30_000),  # 27.5 s without an update of the pairs: the books went stale
        poly(31_000),
        poly(55_000),  # 24 s
    )
    summary = validate_recording(path)
    assert (summary.pairs, summary.updates, summary.first_ms, summary.last_ms) == (2, 8, 1_000, 55_000)
    assert (summary.skipped_unknown, summary.empty_books) == (2, 2)
    assert (summary.gaps, summary.longest_gap_ms) == (2, 27_000)
    # What validation accepts, the replay reads: the pairs' books, the others left out.
    header, updates = read_recording(path)
    books = [book for update in updates for book in to_book(update, token_sides(pairs_of(header)))]
    assert len(books) == 2 * 4 + 1 * 3  # Kalshi lines give YES and NO books, Polymarket lines one


def test_equal_times_are_not_going_backwards(tmp_path):
    path = recording(
        tmp_path / "rec.jsonl.gz", kalshi(1_000), poly(1_000), poly(1_000, token=FED.poly_no_token)
    )
    assert validate_recording(path).updates == 3


def test_a_recording_cut_short_by_a_crash_is_read_up_to_its_last_whole_line(tmp_path):
    path = tmp_path / "crashed.jsonl.gz"
    with gzip.open(path, "wb") as file:
        file.write(json.dumps(HEADER).encode() + b"\n")
        file.write(json.dumps(kalshi(1_000)).encode() + b"\n")
        file.write(json.dumps(kalshi(2_000)).encode() + b"\n")
        file.write(b'{"t": 3000, "venue": "kal')
    summary = validate_recording(path)
    assert (summary.updates, summary.last_ms, summary.cut_short) == (2, 2_000, True)

    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 12])  # the gzip stream itself cut off: no trailer
    summary = validate_recording(path)
    assert summary.cut_short
    assert summary.updates <= 2


def test_a_header_cut_short_is_refused(tmp_path):
    path = tmp_path / "crashed.jsonl.gz"
    with gzip.open(path, "wb") as file:
        file.write(json.dumps(HEADER).encode()[:50])
    with pytest.raises(RecordingError, match=r"^line 1: the header line is cut short"):
        validate_recording(path)


def test_max_lines_checks_only_the_start(tmp_path):
    path = recording(tmp_path / "rec.jsonl.gz", kalshi(1_000), kalshi(2_000), "{broken")
    summary = validate_recording(path, max_lines=3)
    assert (summary.updates, summary.complete) == (2, False)
    with pytest.raises(RecordingError, match=r"^line 4: not JSON"):
        validate_recording(path)


# --- names -----------------------------------------------------------------------------------------


def test_recordings_are_listed_by_stable_names_from_the_three_places(recordings_dir, tmp_path):
    recording(recordings_dir / "week1.jsonl.gz", kalshi(1))
    recording(recordings_dir / "2026" / "jan" / "fed.jsonl.gz", kalshi(1))
    (recordings_dir / "notes.txt").write_text("not a recording")
    save_upload(7, "mine.jsonl.gz", [recording(tmp_path / "up.jsonl.gz", kalshi(1)).read_bytes()])

    names = [ref.name for ref in available_recordings(user_id=7)]
    assert names == [BUNDLED, "dir/2026/jan/fed.jsonl.gz", "dir/week1.jsonl.gz", "upload/mine.jsonl.gz"]
    for ref in available_recordings(user_id=7):
        assert resolve_recording(ref.name, user_id=7) == ref
    nested = resolve_recording("dir/2026/jan/fed.jsonl.gz")
    assert (nested.origin, nested.path, nested.size_bytes) == (
        "directory",
        recordings_dir / "2026" / "jan" / "fed.jsonl.gz",
        (recordings_dir / "2026" / "jan" / "fed.jsonl.gz").stat().st_size,
    )


def test_without_a_recordings_directory_only_the_bundled_ones_are_listed(recordings_dir):
    assert [ref.name for ref in available_recordings(user_id=1)] == [BUNDLED]
    assert not recordings_dir.exists()


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("dir/../outside.jsonl.gz", "may not leave the recordings directory"),
        ("dir/2026/../../outside.jsonl.gz", "may not leave the recordings directory"),
        ("dir//tmp/outside.jsonl.gz", "may not leave the recordings directory"),
        ("dir/escape.jsonl.gz", "may not leave the recordings directory"),  # a symlink out
        ("bundled/../../config/settings.py", "unknown recording"),
        ("upload/../8/theirs.jsonl.gz", "unknown recording"),
        ("dir/uploads/8/theirs.jsonl.gz", "uploads are named upload/<file name>, for their owner only"),
        ("dir/missing.jsonl.gz", "unknown recording"),
        ("week1.jsonl.gz", "unknown recording 'week1.jsonl.gz': names start with bundled/, dir/ or upload/"),
    ],
)
def test_a_name_that_escapes_or_is_unknown_is_refused(recordings_dir, tmp_path, name, error):
    outside = recording(tmp_path / "outside.jsonl.gz", kalshi(1))
    recordings_dir.mkdir()
    (recordings_dir / "escape.jsonl.gz").symlink_to(outside)
    save_upload(8, "theirs.jsonl.gz", [outside.read_bytes()])
    with pytest.raises(RecordingError, match=error.replace("(", r"\(")):
        resolve_recording(name, user_id=7)
    assert "dir/escape.jsonl.gz" not in [ref.name for ref in available_recordings(user_id=7)]


def test_a_path_is_a_name_only_on_the_command_line(recordings_dir, tmp_path):
    outside = recording(tmp_path / "outside.jsonl.gz", kalshi(1))
    with pytest.raises(RecordingError, match="a path is not a recording name"):
        resolve_recording(str(outside))
    ref = resolve_recording(str(outside), allow_any_path=True)
    assert (ref.name, ref.path, ref.origin) == (str(outside), outside, "path")
    with pytest.raises(RecordingError, match="no such file"):
        resolve_recording(str(tmp_path / "missing.jsonl.gz"), allow_any_path=True)


def test_the_path_of_a_listed_recording_gives_its_name(recordings_dir):
    bundled = resolve_recording(BUNDLED)
    assert resolve_recording(str(bundled.path), allow_any_path=True) == bundled
    week = recording(recordings_dir / "2026" / "week1.jsonl.gz", kalshi(1))
    assert resolve_recording(str(week), allow_any_path=True).name == "dir/2026/week1.jsonl.gz"


# --- uploads ---------------------------------------------------------------------------------------


def test_an_upload_is_listed_and_resolved_for_its_owner_only(recordings_dir, tmp_path):
    data = recording(tmp_path / "up.jsonl.gz", kalshi(1_000), poly(2_000)).read_bytes()
    ref = save_upload(7, "C:\\Users\\me\\fed-week_1.jsonl.gz", [data[:10], data[10:]])
    assert (ref.name, ref.origin, ref.size_bytes) == ("upload/fed-week_1.jsonl.gz", "upload", len(data))
    assert ref.path == recordings_dir / "uploads" / "7" / "fed-week_1.jsonl.gz"
    assert ref.path.read_bytes() == data
    assert validate_recording(ref.path).updates == 2

    assert ref in available_recordings(user_id=7)
    assert ref.name not in [r.name for r in available_recordings(user_id=8)]
    assert ref.name not in [r.name for r in available_recordings()]
    with pytest.raises(RecordingError, match="unknown recording"):
        resolve_recording(ref.name, user_id=8)
    with pytest.raises(RecordingError, match="for its owner only"):
        resolve_recording(ref.name)

    with pytest.raises(RecordingError, match="already exists"):
        save_upload(7, "fed-week_1.jsonl.gz", [b"anything"])
    assert ref.path.read_bytes() == data


def test_an_oversize_upload_leaves_nothing_behind(recordings_dir, settings):
    settings.RECORDING_UPLOAD_MAX_BYTES = 2_000_000
    sent = []

    def chunks():
        for _ in range(10):
            sent.append(1)
            yield b"x" * 500_000

    with pytest.raises(RecordingError, match=r"larger than 2 MB"):
        save_upload(7, "big.jsonl.gz", chunks())
    assert len(sent) == 5  # refused while streaming, not after reading it all
    assert list((recordings_dir / "uploads" / "7").iterdir()) == []
    assert available_recordings(user_id=7) == available_recordings()


def test_an_invalid_upload_names_its_bad_line_and_leaves_nothing_behind(recordings_dir, tmp_path):
    data = recording(tmp_path / "up.jsonl.gz", kalshi(2_000), kalshi(1_000)).read_bytes()
    with pytest.raises(RecordingError, match=r"^line 3: t 1000 is earlier"):
        save_upload(7, "backwards.jsonl.gz", [data])
    assert list((recordings_dir / "uploads" / "7").iterdir()) == []


@pytest.mark.parametrize(
    "file_name",
    ["rec.json.gz", "rec.jsonl", "my rec.jsonl.gz", ".jsonl.gz", ".hidden.jsonl.gz", "réc.jsonl.gz", ""],
)
def test_an_upload_name_that_is_not_a_plain_recording_file_name_is_refused(
    recordings_dir, tmp_path, file_name
):
    data = recording(tmp_path / "up.jsonl.gz", kalshi(1)).read_bytes()
    with pytest.raises(RecordingError, match="file name"):
        save_upload(7, file_name, [data])
    assert available_recordings(user_id=7) == available_recordings()
