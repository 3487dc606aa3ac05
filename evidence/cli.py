"""The operator's command line for the evidence store.

``python -m evidence purge --db URL --older-than DAYS`` deletes comparisons (and their votes) older than DAYS days;
``python -m evidence export --db URL --what votes|shared --format jsonl|csv --out FILE`` writes an export that
``datasets`` loads. A bad value prints one line and exits with 2; a database that cannot be reached, with 1.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import tempfile
from pathlib import Path

from .store import EXPORT_FORMATS, EXPORT_KINDS, StoreUnavailable, database_url, open_store


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """The ``python -m evidence`` parser."""
    top = _Parser(prog="python -m evidence", description="Purge or export the playground's comparisons and votes.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    db_help = "the database: sqlite:///FILE or postgresql+psycopg://USER:PASS@HOST:PORT/DB (the app's --db)"
    purge = commands.add_parser("purge", help="delete comparisons (and their votes) older than N days")
    purge.add_argument("--db", required=True, help=db_help)
    purge.add_argument("--older-than", required=True, type=_days, metavar="DAYS", help="age in days (0: all)")
    export = commands.add_parser("export", help="write the votes or the shared comparisons as JSONL or CSV")
    export.add_argument("--db", required=True, help=db_help)
    export.add_argument("--what", required=True, choices=EXPORT_KINDS)
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    export.add_argument("--out", required=True, type=Path, metavar="FILE")
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = parser().parse_args(argv)
    if args.db.strip().lower() in ("", "none"):
        print(f"python -m evidence: error: --db {args.db!r}: name the database to {args.command}", file=sys.stderr)
        return 2
    try:
        url = database_url(args.db, Path(tempfile.gettempdir()))
    except ValueError as error:
        print(f"python -m evidence: error: {error}", file=sys.stderr)
        return 2
    if url is not None and url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().is_file():
        print(f"python -m evidence: error: --db {args.db}: no database file there", file=sys.stderr)
        return 2
    if args.command == "export" and not args.out.parent.is_dir():
        print(f"python -m evidence: error: --out {args.out}: its folder does not exist", file=sys.stderr)
        return 2
    # Purge and export hash nothing, so a throw-away key will do; the data folder is unused with an explicit URL.
    try:
        store = open_store(args.db, data_dir=Path(tempfile.gettempdir()), secret=secrets.token_bytes(32))
    except ValueError as error:
        print(f"python -m evidence: error: {error}", file=sys.stderr)
        return 2
    except StoreUnavailable as error:
        print(f"python -m evidence: {error}", file=sys.stderr)
        return 1
    assert store is not None
    try:
        if args.command == "purge":
            print(f"purged {store.purge(args.older_than)} comparisons older than {args.older_than:g} days")
        else:
            try:
                count = store.export(args.what, args.format, args.out)
            except ValueError as error:
                print(f"python -m evidence: error: {error}", file=sys.stderr)
                return 2
            print(f"wrote {count} rows ({args.what}) to {args.out}")
    except StoreUnavailable as error:
        print(f"python -m evidence: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
