"""The warehouse: tables, migrations, loads, BI views and data-quality checks.

The package face is :class:`Warehouse`, :class:`SessionInput` and :class:`LoadSummary`. They are
looked up on first use: ``zoom_qos.transform`` imports :mod:`zoom_qos.warehouse.schema`, which
runs this file, and the loader imports the transform back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoom_qos.warehouse.loader import LoadSummary
    from zoom_qos.warehouse.plan import SessionInput
    from zoom_qos.warehouse.store import Warehouse

__all__ = ["LoadSummary", "SessionInput", "Warehouse"]

_HOMES = {
    "LoadSummary": "zoom_qos.warehouse.loader",
    "SessionInput": "zoom_qos.warehouse.plan",
    "Warehouse": "zoom_qos.warehouse.store",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
