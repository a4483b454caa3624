"""The ``zoom-qos`` entry point: parses the command line and runs one command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from zoom_qos.cli import superset, warehouse, webhooks
from zoom_qos.core.errors import ZoomQosError

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoom-qos", description="Zoom Video SDK call-quality pipeline: maintenance commands."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO)")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    warehouse.add_commands(groups)
    superset.add_commands(groups)
    webhooks.add_commands(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: logging to stderr (INFO with ``-v``), then :func:`run`."""
    verbose = any(arg in ("-v", "--verbose") for arg in (sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``zoom-qos`` with ``argv`` (default: the process's); returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ZoomQosError as error:
        print(f"zoom-qos: error: {type(error).__name__}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        # SQLAlchemy hides bound parameters (hide_parameters) and its URLs mask passwords.
        detail = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"zoom-qos: error: the warehouse failed ({type(error).__name__}: {detail}); nothing was "
              "changed: check its Airflow connection and that the database is up, then run it again.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zoom-qos: interrupted; nothing was committed by the step in progress.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover - `python -m zoom_qos.cli.main`
    sys.exit(main())
