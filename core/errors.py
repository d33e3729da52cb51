"""User errors: a request the user can fix (a bad option, value or file), told in one line.

Raise ``UserError`` anywhere (config checks, data adapters, loading weights) with a message that
names the option or file, the value, and what is allowed. ``diffsuite`` prints it as
``diffsuite: <message>`` on stderr and exits with status 2, without a traceback; any other
exception is a bug in the project and keeps its traceback (``HYDRA_FULL_ERROR=1`` shows the full
one, for user errors too). ``UserError`` is a ``ValueError``, so code that skips an unreadable
file with ``except ValueError`` keeps doing so.
"""

from __future__ import annotations

import errno

__all__ = ["UserError", "MissingFileError", "WouldOverwriteError", "user_error_in", "one_line"]


class UserError(ValueError):
    """A bad request: the message names the option, file or value and what is allowed."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class WouldOverwriteError(UserError, FileExistsError):
    """Writing would replace an existing file; outputs are never overwritten."""


# operating-system failures that a user fixes (permissions, a full or read-only disk), not bugs
_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def one_line(text: object) -> str:
    """A message on one line: runs of whitespace (newlines, tabs) become one space."""
    return " ".join(str(text).split())


def user_error_in(exc: BaseException | None) -> BaseException | None:
    """The user error behind `exc`, following ``raise ... from`` causes (hydra's instantiate wraps a
    constructor's exception in its own), or None when `exc` is a bug.

    Counted as user errors: ``UserError``; an OmegaConf ``MissingMandatoryValue`` (a ``???`` key
    not given on the command line); permission, full-disk and read-only-disk ``OSError``s."""
    from omegaconf.errors import MissingMandatoryValue

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (UserError, MissingMandatoryValue)):
            return exc
        if isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
            return exc
        exc = exc.__cause__
    return None


def user_message(exc: BaseException) -> str:
    """The one line printed for a user error found by `user_error_in`."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(exc, MissingMandatoryValue):
        key = getattr(exc, "full_key", None) or "a required key"
        return f"{key} has no value; give it on the command line ({key}=...)"
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:  # re-raised from a DataLoader worker
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith(type(exc).__name__) else last
    return one_line(text)
