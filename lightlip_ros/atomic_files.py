"""Writing files so that no reader, and no resumed run, ever sees one half written.

Every checkpoint, ONNX model, engine, cache, plan and report LightLip writes goes through `atomic_write`
(the frames of a data set go into a clip folder that is renamed or recorded when complete): the content
goes to a temporary file beside the target, is flushed to disk, and is renamed onto the target (atomic on
POSIX filesystems), so a process killed mid-write leaves the previous file intact. Temporaries are named
`.NAME.PID.TOKEN.tmpSUFFIX` (the target's suffix last, so that writers that append one, like numpy's, do
not); one left by a killed process is removed by the next write of the same target.
"""
import contextlib
import glob
import json
import os
import secrets
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path) -> Iterator[Path]:
    """Yields the temporary path to write the whole of `path` to; on leaving, it replaces `path`.

    On an error inside the block the temporary is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_torn_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_write(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    with atomic_write(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def atomic_write_json(path, value) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=1) + "\n")


def remove_torn_temporaries(path) -> list:
    """Removes the temporaries of `path` whose writing process is gone; returns what it removed."""
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.*.tmp{glob.escape(path.suffix)}"):
        pid = candidate.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
