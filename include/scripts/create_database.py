"""Create a PostgreSQL database if it does not exist yet (used by ``make demo WAREHOUSE=postgres``)."""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def main(url: str) -> int:
    target = make_url(url)
    name = target.database
    if not name:
        print(f"No database name in {target!r}", file=sys.stderr)
        return 2
    try:
        with psycopg.connect(host=target.host or "127.0.0.1", port=target.port or 5432,
                             user=target.username or "postgres", password=target.password,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"    created database {name}")
    except psycopg.OperationalError as error:
        print(f"Cannot reach PostgreSQL at {target.host}:{target.port or 5432}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
