"""Shared plumbing: Airflow environment, simulator processes, PostgreSQL, memory readings."""

from __future__ import annotations

import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
API_KEY = "bench-key"
API_SECRET = "bench-secret-0123456789"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = os.environ.get("BENCH_PG_DB", "zoom_qos_bench")
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
PG_LIBPQ = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"


def airflow_env(home: Path | None = None) -> Path:
    """Settings Airflow reads at import; call before importing airflow or zoom_qos."""
    home = home or Path(tempfile.mkdtemp(prefix="zoomqos-bench-airflow-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ.pop("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE", None)
    # The simulated account's daily request count, apart from any real one and from earlier runs.
    os.environ["AIRFLOW__ZOOM_QOS__BUDGET_DIR"] = tempfile.mkdtemp(prefix="zoomqos-bench-budget-")
    for path in (str(ROOT / "plugins"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    return Path(os.environ["AIRFLOW_HOME"])


def zoom_conn_json(base_url: str, **extra: object) -> str:
    return json.dumps(
        {"conn_type": "http", "host": base_url, "login": API_KEY, "password": API_SECRET, "extra": extra}
    )


class SimProcess:
    """``bench/sim_server.py`` in a subprocess; a context manager yielding itself.

    With ``tls=True`` the bench makes a self-signed certificate for 127.0.0.1 (in this process, so
    the bench, not the simulator, decides what a client must trust), the simulator serves HTTPS
    with it, and ``cert`` is its path: the CA file a client passes as ``verify``.
    """

    def __init__(self, now: str, tls: bool = False, **options: object) -> None:
        self.now = now
        self.options = options
        self.dir = Path(tempfile.mkdtemp(prefix="zoomqos-bench-sim-"))
        self.ready = self.dir / "ready"
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.cert: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            from include.zoom_simulator.tls import make_self_signed_cert

            self.cert, key = make_self_signed_cert(self.dir / "tls")
            self.options = {**options, "tls_cert": self.cert, "tls_key": key}
            # Control calls trust exactly this certificate, whatever the environment's CA bundle.
            self._ssl = ssl.create_default_context(cafile=str(self.cert))

    def __enter__(self) -> SimProcess:
        cmd = [
            sys.executable,
            str(BENCH / "sim_server.py"),
            "--ready-file",
            str(self.ready),
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
            "--now",
            self.now,
        ]
        for key, value in self.options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start: {cmd}")
            time.sleep(0.05)
        self.base_url = self.ready.read_text().strip()
        self.root = self.base_url.rsplit("/v2", 1)[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def big_session(self) -> dict:
        return json.loads(Path(f"{self.ready}.session.json").read_text())

    def _control(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.root}{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30, context=self._ssl) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self._control("/_sim/stats")

    def reset(self, latency_ms: float) -> None:
        """Fresh stats, rate-limit buckets and tokens; keep the latency."""
        self._control("/_sim/reset", {})
        self._control("/_sim/faults", {"latency_ms": latency_ms})


def ensure_database() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": PG_DB}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
    engine.dispose()


def drop_schema(name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def peak_rss_mib() -> dict[str, float]:
    """This process's peak resident set: VmHWM from /proc and ru_maxrss (KiB on Linux)."""
    hwm = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"vmhwm_mib": round(hwm if hwm is not None else maxrss, 1), "ru_maxrss_mib": round(maxrss, 1)}
