"""Class labels from a CSV of ``path,label`` rows, read the same way in every domain.

Paths are relative to the data root (absolute paths are kept as given); a header row
(``path,label``), blank lines and ``#`` comments are skipped; a row without two fields, or a path
given two different labels, is an error that names the file and the line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import MissingFileError, UserError

HEADER_WORDS = ("path", "file", "filename", "video", "clip")


def read_label_csv(path: str | Path) -> dict[str, str]:
    """{relative POSIX path (or absolute path): label} from a ``path,label`` CSV."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"label CSV {path} does not exist")
    out: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"label CSV {path} is not a text CSV file ({e})") from e
    for n, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and row[0].strip().lower() in HEADER_WORDS:
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise UserError(f"label CSV {path}, line {n}: expected 'path,label', got {','.join(row)!r}")
        key, label = Path(row[0].strip()).as_posix(), row[1].strip()
        if out.get(key, label) != label:
            raise UserError(f"label CSV {path}, line {n}: {key} is labelled both {out[key]!r} and {label!r}")
        out[key] = label
    if not out:
        raise UserError(f"label CSV {path} holds no 'path,label' rows")
    return out
