"""``--json [FILE]``, the same in every command that has it (``bench``, ``check``, ``history``).

No value or ``-`` prints the JSON document on stdout instead of the table; a path writes it to that file
and the table still prints on the terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchd.errors import BenchdError

STDOUT = "-"


def add_json_option(parser: Any, what: str) -> None:
    """Add ``--json [FILE]`` to a command's parser; ``what`` names the document (e.g. "the report")."""
    parser.add_argument(
        "--json",
        nargs="?",
        const=STDOUT,
        default=None,
        metavar="FILE",
        help=f"write {what} as JSON: with no value or '-' to stdout instead of the table; with a path to "
        "that file, and the table still prints",
    )


def json_replaces_table(target: str | None) -> bool:
    """True when ``--json`` sends the document to stdout (so the human table is left out)."""
    return target == STDOUT


def write_json(doc: Any, target: str) -> None:
    """Write ``doc`` to stdout (``-``) or to the file ``target``.

    Raises:
        BenchdError: the file cannot be written (the sentence names it).
    """
    text = json.dumps(doc, indent=1)
    if target == STDOUT:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    path = Path(target)
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise BenchdError(f"cannot write --json file {path}: {e.strerror or e}") from e
