"""How a domain names its shipped weights (denoiser or classifier), the same way in every domain.

A weights option (``pretrained=``, ``classifier=``) takes:

* ``default`` -- the file the domain ships for its data, if it ships one (``auto``, an older
  spelling, means the same);
* ``null`` -- none;
* a bare file name of a file in the domain's ``pretrained/`` folder -- that shipped file;
* anything else -- a path to the user's own file (checked when it is loaded, where the error names it).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_WORDS = ("default", "auto")


def shipped_weights(value: str | Path | None, folder: str | Path, default_name: str | None) -> Path | None:
    """The weights file `value` names (see the module docstring), or None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    folder = Path(folder)
    if isinstance(value, str) and value.strip().lower() in DEFAULT_WORDS:
        p = folder / default_name if default_name else None
        return p if p is not None and p.is_file() else None
    p = Path(value).expanduser()
    if p.parent == Path(".") and not p.exists() and (folder / p.name).is_file():
        return folder / p.name  # a shipped file by name
    return p
