"""One error shape for every LightLip command: what a user gave wrong, said in one line, one exit code.

Every exception class that means "the file, model, data or setting you gave cannot be used" derives from
`LightLipError` (keeping its builtin base, e.g. ValueError, for callers that catch that). A console
script runs its work through `run_command`, which turns such an error, or an OSError, into one line on
stderr and the exit code below; a traceback means a bug in LightLip.

Exit codes of every console script:
    0    done
    1    EXIT_ERROR: an input file, model, data set or setting could not be used (one line on stderr)
    2    EXIT_USAGE: the command line itself is wrong (argparse's usage message)
    130  EXIT_INTERRUPTED: Ctrl-C; resumable commands say how to continue
"""
import sys
from typing import Callable, Optional

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LightLipError(Exception):
    """Something the user gave (a file, a model, data, a setting) cannot be used; the message says why."""


def first_line(error: BaseException) -> str:
    """One readable line of an error's message.

    The first non-blank line; for an error re-raised from a DataLoader worker ("Caught X in DataLoader
    worker process 0" and the worker's traceback), the original message, which is the last line. An
    OSError without a message of its own reads "path: reason"; an error without any text, its type name.
    """
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename is not None else error.strerror
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        return lines[-1].split(": ", 1)[-1]
    return lines[0] if lines else type(error).__name__


def tool_failure(stderr: bytes, fallback: str) -> str:
    """Why an external tool (ffmpeg, espeak-ng, festival) failed: the last line of its stderr."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def run_command(prog: str, command: Callable[[], Optional[int]], interrupted: str = "interrupted") -> int:
    """Runs a console script's work and returns its exit code (see the module docstring).

    `interrupted` is what to say on Ctrl-C, e.g. how to resume.
    """
    try:
        return command() or EXIT_OK
    except (LightLipError, OSError) as error:
        print(f"{prog}: error: {first_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
