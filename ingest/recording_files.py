"""Which recordings a user may backtest, by name, and recordings uploaded from the page.

Three places hold recordings, each with its own kind of name:

- `bundled/<file>`: the recordings that ship in `ingest/data/`;
- `dir/<relative path>`: every `*.jsonl.gz` under `settings.RECORDINGS_DIR`, at any depth
  (not its `uploads/` folder, and not a file whose real path leaves the directory);
- `upload/<file>`: the requesting user's own uploads, in `RECORDINGS_DIR/uploads/<user id>/`.

A name never reaches outside these places; only the command line (trusted) may also give any
file's path.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from django.conf import settings

from ingest.recording import RecordingError
from ingest.recording_validation import RecordingSummary, validate_recording

__all__ = [
    "RecordingError",
    "RecordingRef",
    "RecordingSummary",
    "RecordingTooLarge",
    "available_recordings",
    "resolve_recording",
    "save_upload",
    "upload_recording",
    "validate_recording",
]

BUNDLED_DIR = Path(__file__).resolve().parent / "data"
SUFFIX = ".jsonl.gz"
UPLOADS = "uploads"
BUNDLED, DIRECTORY, UPLOAD, PATH = "bundled", "directory", "upload", "path"
# The name prefix of each origin ("path" refs are named by their absolute path).
PREFIXES = {BUNDLED: "bundled/", DIRECTORY: "dir/", UPLOAD: "upload/"}
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}")
BYTES_PER_MB = 1_000_000


class RecordingTooLarge(RecordingError):
    """An upload over `settings.RECORDING_UPLOAD_MAX_BYTES`."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the file is larger than {limit_bytes / BYTES_PER_MB:g} MB, the upload limit")


class RecordingRef(NamedTuple):
    name: str  # how the user and the API refer to it: "bundled/demo_recording.jsonl.gz", ...
    path: Path  # where the file is
    size_bytes: int
    origin: str  # "bundled" | "directory" | "upload", or "path" (a file given on the command line)


def recordings_dir() -> Path:
    return Path(settings.RECORDINGS_DIR).resolve()


def available_recordings(user_id: int | None = None) -> list[RecordingRef]:
    """The recordings a user may name, sorted by name: bundled, then the directory's, then (with
    `user_id`) that user's uploads."""
    refs = [_ref(BUNDLED, path.name, path) for path in _files_in(BUNDLED_DIR)]
    root = recordings_dir()
    refs += [_ref(DIRECTORY, relative, root / relative) for relative in _directory_files(root)]
    if user_id is not None:
        refs += [_ref(UPLOAD, path.name, path) for path in _files_in(_upload_dir(user_id))]
    return sorted(refs)


def resolve_recording(
    name_or_path: str, *, user_id: int | None = None, allow_any_path: bool = False
) -> RecordingRef:
    """The recording a name from `available_recordings` stands for; with `allow_any_path` (the
    command line) also any existing file. RecordingError says why a name is refused."""
    text = name_or_path.strip()
    for origin, prefix in PREFIXES.items():
        if text.startswith(prefix):
            rest = text.removeprefix(prefix)
            if origin == BUNDLED:
                return _ref(BUNDLED, rest, _inside(BUNDLED_DIR, _file_name(rest, text), text))
            if origin == UPLOAD:
                if user_id is None:
                    raise RecordingError(f"{text!r}: an uploaded recording is named for its owner only")
                return _ref(UPLOAD, rest, _inside(_upload_dir(user_id), _file_name(rest, text), text))
            relative = _relative_path(rest, text)
            return _ref(DIRECTORY, relative, _inside(recordings_dir(), relative, text))
    if not allow_any_path:
        if Path(text).is_absolute():
            raise RecordingError(f"{text!r}: a path is not a recording name (paths are for the command line)")
        raise RecordingError(
            f"unknown recording {text!r}: names start with bundled/, dir/ or upload/ "
            "(the list of recordings shows them)"
        )
    path = Path(text).expanduser()
    if not path.is_file():
        raise RecordingError(f"{text!r}: no such file")
    return _named(path.resolve())


def save_upload(user_id: int, file_name: str, chunks: Iterable[bytes]) -> RecordingRef:
    """Store an uploaded recording as `upload/<file name>` for `user_id`, once it has passed
    `validate_recording` and the size limit; on any error nothing is left behind."""
    return upload_recording(user_id, file_name, chunks)[0]


def upload_recording(
    user_id: int, file_name: str, chunks: Iterable[bytes]
) -> tuple[RecordingRef, RecordingSummary]:
    """`save_upload`, with the summary its validation gave."""
    name = _upload_name(file_name)
    folder = _upload_dir(user_id)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    if final.exists():
        raise RecordingError(f"{name!r} already exists: choose another file name")
    limit = settings.RECORDING_UPLOAD_MAX_BYTES
    # In the same folder, so that it can be linked into place; the leading dot and the suffix keep
    # it out of every listing while it is written.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise RecordingTooLarge(limit)
                file.write(chunk)
        summary = validate_recording(Path(temporary))
        try:
            os.link(temporary, final)  # unlike a rename, never replaces a file of the same name
        except FileExistsError:
            raise RecordingError(f"{name!r} already exists: choose another file name") from None
    finally:
        os.unlink(temporary)
    return _ref(UPLOAD, name, final), summary


def _named(real: Path) -> RecordingRef:
    """A file given by its path, under its name when it is one of the listed recordings (the same
    recording keeps one name however it was given)."""
    root = recordings_dir()
    if real.parent == BUNDLED_DIR and real.name.endswith(SUFFIX):
        return _ref(BUNDLED, real.name, real)
    if real.is_relative_to(root) and real.name.endswith(SUFFIX):
        relative = real.relative_to(root)
        if relative.parts[0] != UPLOADS:
            return _ref(DIRECTORY, relative.as_posix(), real)
    return RecordingRef(str(real), real, real.stat().st_size, PATH)


def _ref(origin: str, name: str, path: Path) -> RecordingRef:
    return RecordingRef(PREFIXES[origin] + name, path, path.stat().st_size, origin)


def _files_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        path
        for path in folder.iterdir()
        if path.name.endswith(SUFFIX) and path.is_file() and path.resolve().parent == folder.resolve()
    ]


def _directory_files(root: Path) -> Iterator[str]:
    """The relative paths (with "/") of the recordings under `root`, its uploads left out."""
    if not root.is_dir():
        return
    for folder, subfolders, files in root.walk():  # symlinked folders are not followed
        if folder == root and UPLOADS in subfolders:
            subfolders.remove(UPLOADS)
        for file_name in files:
            path = folder / file_name
            if file_name.endswith(SUFFIX) and path.is_file() and path.resolve().is_relative_to(root):
                yield path.relative_to(root).as_posix()


def _upload_dir(user_id: int) -> Path:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise ValueError(f"user_id must be a positive whole number, got {user_id!r}")
    return recordings_dir() / UPLOADS / str(user_id)


def _file_name(text: str, name: str) -> str:
    """A single file name (no folder part), or RecordingError."""
    if not SAFE_FILE_NAME.fullmatch(text) or not text.endswith(SUFFIX):
        raise RecordingError(f"unknown recording {name!r}")
    return text


def _relative_path(text: str, name: str) -> str:
    """A relative path that stays inside the recordings directory and out of its uploads."""
    path = PurePosixPath(text)
    if not text or path.is_absolute() or "\\" in text or ".." in path.parts:
        raise RecordingError(f"{name!r}: a recording name may not leave the recordings directory")
    if path.parts[0] == UPLOADS:
        raise RecordingError(f"{name!r}: uploads are named upload/<file name>, for their owner only")
    if not text.endswith(SUFFIX):
        raise RecordingError(f"unknown recording {name!r}: recordings end in {SUFFIX}")
    return path.as_posix()


def _inside(folder: Path, relative: str, name: str) -> Path:
    """`folder / relative` when it is a file whose real path is inside `folder`."""
    path = folder / relative
    if not path.is_file():
        raise RecordingError(f"unknown recording {name!r}")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise RecordingError(f"{name!r}: a recording name may not leave the recordings directory")
    return path


def _upload_name(file_name: str) -> str:
    # Browsers send a bare name; some send the whole path they read the file from.
    name = re.split(r"[/\\]", file_name.strip())[-1]
    if not SAFE_FILE_NAME.fullmatch(name) or not name.endswith(SUFFIX) or name == SUFFIX:
        raise RecordingError(
            f"file name {name!r}: use letters, digits, '.', '_' and '-' (at most 120), ending in {SUFFIX}"
        )
    return name
