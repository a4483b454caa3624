"""``make bi-demo`` and ``make bi-test``: the call-quality dashboard in a real Apache Superset.

Both load the demo's data into PostgreSQL through our DAGs (``include/scripts/demo.sh``), build the
bundle with ``zoom-qos superset bundle``, and run Superset 6.1.0 from its own venv (its pins:
``include/bi/superset/requirements.txt``; never Airflow's venv) on 127.0.0.1.

- ``demo``: Superset in ``.superset/`` (venv kept between runs), the dashboard imported, the server
  left running in the background; prints the URL and the login. ``stop`` stops it.
- ``test``: a fresh venv (pip's cache allowed), a fresh Superset and warehouse, the bundle imported,
  every chart's data fetched through the REST API, the dashboard opened logged in in headless
  Chromium and checked chart by chart (``include/bi/superset/check.py``), the screenshot kept in
  ``docs/images/``; then the bundle imported a second time, and still one dashboard.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from zoom_qos.bi.superset import chart_count

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "include" / "bi" / "superset"
REQUIREMENTS = ASSETS / "requirements.txt"
DEMO_HOME = ROOT / ".superset"
DEMO_PORT = 8088
DEMO_PG = "postgresql://postgres@127.0.0.1:5432/zoom_qos_demo"
TEST_PG = "postgresql://postgres@127.0.0.1:5432/zoom_qos_bi_test"
SCREENSHOT = ROOT / "docs" / "images" / "superset-dashboard.png"
ADMIN = "admin"
PYTHON = os.environ.get("PYTHON", "python3.11")


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*argv: str | Path, env: dict[str, str] | None = None, log: Path | None = None) -> None:
    """Run a command; on failure show the end of its output and stop."""
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run([str(a) for a in argv], env=env, stdout=out, stderr=subprocess.STDOUT,
                              text=True)
        out.seek(0)
        text = out.read()
    if log:
        with log.open("a") as handle:
            handle.write(text)
    if done.returncode != 0:
        print(text[-4000:], file=sys.stderr)
        raise SystemExit(f"FAILED ({done.returncode}): {' '.join(str(a) for a in argv)}")


def make_venv(venv: Path, fresh: bool) -> Path:
    """Superset's own venv, from our pins; reused while the pins are unchanged (unless ``fresh``)."""
    stamp = venv / ".pins-sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if not fresh and stamp.exists() and stamp.read_text() == digest:
        return venv
    step(f"Installing Apache Superset into its own venv {venv} (a few minutes the first time)")
    started = time.monotonic()
    run(PYTHON, "-m", "venv", "--clear", venv)
    run(venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS)
    stamp.write_text(digest)
    print(f"    installed in {time.monotonic() - started:.0f} s", flush=True)
    return venv


def superset_env(home: Path) -> dict[str, str]:
    """Superset's configuration: ours (include/bi/superset/superset_config.py), its metadata in ``home``."""
    key_file = home / "secret_key"
    if not key_file.exists():
        home.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    env.update(SUPERSET_CONFIG_PATH=str(ASSETS / "superset_config.py"), FLASK_APP="superset",
               SUPERSET_HOME=str(home), ZOOM_QOS_SUPERSET_HOME=str(home),
               SUPERSET_SECRET_KEY=key_file.read_text())
    return env


def init_superset(venv: Path, home: Path, password: str) -> dict[str, str]:
    env = superset_env(home)
    log = home / "superset-setup.log"
    superset = venv / "bin" / "superset"
    step("Preparing Superset's metadata (db upgrade, admin user, init)")
    run(superset, "db", "upgrade", env=env, log=log)
    run(superset, "fab", "create-admin", "--username", ADMIN, "--firstname", "Zoom", "--lastname", "QoS",
        "--email", "admin@localhost", "--password", password, env=env, log=log)
    run(superset, "init", env=env, log=log)
    return env


def load_warehouse(pg_url: str) -> None:
    step(f"Loading the demo's data into PostgreSQL ({pg_url.rsplit('/', 1)[-1]}) through the DAGs")
    env = dict(os.environ, WAREHOUSE="postgres", DEMO_POSTGRES_URL=pg_url)
    done = subprocess.run(["bash", str(ROOT / "include" / "scripts" / "demo.sh")], env=env)
    if done.returncode != 0:
        raise SystemExit("FAILED: the demo's load into PostgreSQL")


def build_bundle(pg_url: str, out: Path) -> None:
    step("Building the dashboard bundle: zoom-qos superset bundle")
    env = dict(os.environ, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=f"{pg_url}?warehouse_schema=zoom_qos")
    run("zoom-qos", "superset", "bundle", "--conn-id", "--out", out, env=env)


def import_bundle(venv: Path, env: dict[str, str], bundle: Path) -> None:
    step("Importing it: superset import-dashboards")
    run(venv / "bin" / "superset", "import-dashboards", "-p", bundle, "-u", ADMIN, env=env,
        log=Path(env["SUPERSET_HOME"]) / "superset-setup.log")


def start_server(venv: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    home = Path(env["SUPERSET_HOME"])
    log = (home / "superset-server.log").open("ab")
    server = subprocess.Popen([str(venv / "bin" / "superset"), "run", "-h", "127.0.0.1", "-p", str(port),
                               "--with-threads"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"FAILED: Superset's web server exited; see {home / 'superset-server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("FAILED: Superset's web server did not answer /health within 120 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check(venv: Path, port: int, password: str, screenshot: Path | None) -> None:
    argv = [venv / "bin" / "python", ASSETS / "check.py", "--url", f"http://127.0.0.1:{port}",
            "--password", password, "--expect-charts", str(chart_count())]
    if screenshot:
        argv += ["--screenshot", screenshot]
    done = subprocess.run([str(a) for a in argv])
    if done.returncode != 0:
        raise SystemExit("FAILED: the dashboard check")


def demo() -> int:
    stop()
    venv = make_venv(DEMO_HOME / "venv", fresh=False)
    load_warehouse(DEMO_PG)
    home = DEMO_HOME / "home"
    password_file = DEMO_HOME / "admin-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    password = password_file.read_text()
    env = init_superset(venv, home, password)
    bundle = DEMO_HOME / "zoom_qos_dashboard.zip"
    build_bundle(DEMO_PG, bundle)
    import_bundle(venv, env, bundle)
    step(f"Starting Superset on http://127.0.0.1:{DEMO_PORT}")
    server = start_server(venv, env, DEMO_PORT)
    (DEMO_HOME / "superset.pid").write_text(str(server.pid))
    print(f"\nThe dashboard: http://127.0.0.1:{DEMO_PORT}/superset/dashboard/zoom-call-quality/\n"
          f"Log in as {ADMIN} with the password in {password_file.relative_to(ROOT)}: {password}\n"
          f"Superset runs in the background (log: {home / 'superset-server.log'}); "
          "stop it with make bi-stop.")
    return 0


def stop() -> int:
    pid_file = DEMO_HOME / "superset.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            print("Stopped the demo's Superset.")
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()
    return 0


def test() -> int:
    started = time.monotonic()
    work = ROOT / ".superset" / "test"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    venv = make_venv(work / "venv", fresh=True)
    drop_database(TEST_PG)
    load_warehouse(TEST_PG)
    password = secrets.token_urlsafe(12)
    env = init_superset(venv, work / "home", password)
    bundle = work / "zoom_qos_dashboard.zip"
    build_bundle(TEST_PG, bundle)
    import_bundle(venv, env, bundle)
    port = free_port()
    step(f"Superset on 127.0.0.1:{port}: every chart's data, then the dashboard in headless Chromium")
    server = start_server(venv, env, port)
    try:
        check(venv, port, password, SCREENSHOT)
        step("Importing the same bundle a second time: still one dashboard, the same charts")
        import_bundle(venv, env, bundle)
        check(venv, port, password, None)
    finally:
        stop_server(server)
    print(f"bi-test: PASS in {time.monotonic() - started:.0f} s")
    return 0


def drop_database(url: str) -> None:
    """A fresh warehouse for the test: drop the database (the demo creates it again)."""
    target = make_url(url)
    with psycopg.connect(host=target.host, port=target.port or 5432, user=target.username, dbname="postgres",
                         autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(target.database)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("demo", "test", "stop"))
    command = parser.parse_args().command
    return {"demo": demo, "test": test, "stop": stop}[command]()


if __name__ == "__main__":
    sys.exit(main())
