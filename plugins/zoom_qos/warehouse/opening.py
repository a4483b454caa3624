"""Opening the warehouse for a task: the configured one made ready, and its refusals named.

A task either gets a warehouse from its caller (tests, scripts) or opens the configured one
(connection ``zoom_qos_warehouse``, else the embedded SQLite file) and disposes of it afterwards.
Two refusals are told apart here, once for every task: a warehouse that cannot be reached
(``WarehouseUnreachableError``) and one that refuses writes for good (``StorageUnwritableError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from zoom_qos.core.config import WAREHOUSE_CONN_ID
from zoom_qos.core.errors import WarehouseUnreachableError, unwritable_as
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.unwritable import warehouse_unwritable_cause


def ensure_reachable(target: Warehouse) -> None:
    """``ensure_schema``, with a warehouse that cannot be connected to or made ready turned into a
    ``WarehouseUnreachableError`` (permanent) naming it (its repr masks the password) and the
    cause: the listing checks this before its first Zoom request, so a run whose data could not be
    loaded does not spend Zoom's daily budget on it."""
    try:
        target.ensure_schema()
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        if warehouse_unwritable_cause(error):  # reachable, but full: opened_warehouse says so
            raise
        cause = str(error.orig if error.orig is not None else error).strip().splitlines()[0]
        raise WarehouseUnreachableError(
            f"The warehouse {target!r} (connection {WAREHOUSE_CONN_ID!r}) is unreachable: {cause}. "
            "Nothing was requested from Zoom. Check that the database is up and the connection's "
            "host, port, database and credentials, then clear the task.") from error


@contextmanager
def opened_warehouse(
    warehouse: Warehouse | None, prepare: Callable[[Warehouse], object] = Warehouse.ensure_schema
) -> Iterator[Warehouse]:
    """The given warehouse, or the configured one (disposed afterwards), made ready by ``prepare``
    (its schema migrated) before the caller uses it. A write it refuses for good (a full disk, a
    read-only file) is a ``StorageUnwritableError`` naming it: no retry would fare better."""
    target = warehouse if warehouse is not None else Warehouse.from_airflow(WAREHOUSE_CONN_ID)
    try:
        with unwritable_as("the warehouse", repr(target), catch=sa_exc.DBAPIError,
                           cause_of=warehouse_unwritable_cause):
            prepare(target)
            yield target
    finally:
        if warehouse is None:
            target.dispose()
