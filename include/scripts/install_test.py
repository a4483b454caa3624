"""`make install-test`: install the package the way a user does, then run its DAG.

1. Builds the wheel from a copy of the working tree (the build writes ``build/`` and egg-info, so
   not in the repository itself).
2. Makes a fresh venv, installs the pinned apache-airflow plus the wheel's declared dependencies
   (read from its metadata) constrained by requirements.txt, then the wheel with ``--no-deps``
   (not editable); ``pip check``; every module of the tree is in the wheel and imports.
3. With a fresh AIRFLOW_HOME, its empty default DAG folder, no plugins folder and nothing of the
   repository on the path: copies the DAGs out of the installed package (``zoom_qos.example_dags``),
   ``airflow db migrate``, starts the simulator, defines only the Zoom connection (type
   ``zoom_videosdk``, from ``AIRFLOW_CONN_ZOOM_VIDEOSDK``) and runs ``airflow dags test``.
4. Checks: the SQLite warehouse landed in ``$AIRFLOW_HOME/zoom_qos/warehouse.db`` with sessions,
   nothing was written into the installed package, ``airflow providers list`` shows the package at
   the wheel's version, ``airflow providers hooks`` knows the ``zoom_videosdk`` connection type.
5. Installs the extras (except the cloud ones) and checks that every third-party import of the
   package comes from a declared dependency.

Prints a PASS/FAIL line per check and the time of each step; exits 1 on any failure. Only the
simulator runs in the background; it is stopped on exit. Options: ``--keep`` keeps the temp folder
(it is always kept on failure, with the logs), ``--cold-cache`` uses an empty pip cache (the time
on a machine that never downloaded the packages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.parser import Parser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "zoom-videosdk-qos"
DAG_ID = "zoom_videosdk_qos"
SHIPPED_DAGS = ("zoom_videosdk_qos.py", "zoom_videosdk_qos_report.py")
API_KEY, API_SECRET = "install-test-key", "install-test-secret-5b1e"
#: Extras not installed for the import check: the cloud providers are large, and the package
#: reaches them only through ObjectStoragePath (fsspec), never by an import of its own.
HEAVY_EXTRAS = frozenset({"s3", "gcs"})
#: Distributions that the ``apache-airflow`` meta-package consists of.
PART_OF = {"apache-airflow-core": "apache-airflow", "apache-airflow-task-sdk": "apache-airflow"}

# Run by the venv's interpreter with -I (no PYTHONPATH, no script or current folder on sys.path).
IMPORT_ALL = r"""
import importlib, json, pkgutil, sys, sysconfig
import zoom_qos
purelib = sysconfig.get_paths()["purelib"]
imported, failed = [], []
def onerror(name):
    failed.append(f"{name}: {sys.exc_info()[0].__name__}: {sys.exc_info()[1]}")
for info in pkgutil.walk_packages(zoom_qos.__path__, "zoom_qos.", onerror=onerror):
    if info.name.endswith(".migrations.env"):  # alembic's env script: runs only inside alembic
        continue
    try:
        module = importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
        continue
    if not (getattr(module, "__file__", None) or "").startswith(purelib):
        failed.append(f"{info.name}: loaded from {module.__file__}, not the venv's site-packages")
    imported.append(info.name)
print(json.dumps({"imported": imported, "failed": failed}))
"""

COPY_DAGS = r"""
import pathlib, shutil, sys
import zoom_qos.example_dags
shipped = pathlib.Path(zoom_qos.example_dags.__file__).parent
for name in sys.argv[2:]:
    shutil.copy(shipped / name, sys.argv[1])
print(shipped)
"""

IMPORT_COVERAGE = r"""
import ast, importlib.util, json, os, re, sys
from importlib import metadata
from pathlib import Path
declared, part_of = json.loads(sys.argv[1]), json.loads(sys.argv[2])
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
package = Path(importlib.util.find_spec("zoom_qos").origin).parent
imports = {}
for path in sorted(package.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("zoom_qos", "__future__"):
                continue
            imports.setdefault(name, f"{path.relative_to(package.parent)}:{node.lineno}")
origins, problems = {}, []
for name, where in imports.items():
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:
        spec, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "no such module"
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        problems.append(f"{name} ({where}): not installed by the declared dependencies ({why})")
        continue
    origins[os.path.normpath(spec.origin)] = name
owners = {}
for dist in metadata.distributions():
    for file in dist.files or ():
        name = origins.get(os.path.normpath(str(dist.locate_file(file))))
        if name:
            owners[name] = norm(dist.metadata["Name"])
covered = {}
for name in sorted(set(origins.values())):
    owner = owners.get(name)
    if owner is None:
        problems.append(f"{name} ({imports[name]}): no installed distribution owns it")
    elif part_of.get(owner, owner) not in declared:
        problems.append(f"{name} ({imports[name]}): from {owner}, which pyproject.toml does not declare")
    else:
        covered[name] = owner
print(json.dumps({"covered": covered, "problems": problems}))
"""


class Failed(Exception):
    """A step that the rest cannot go on without."""


class Run:
    def __init__(self, work: Path, cold_cache: bool) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir()
        self.venv = work / "venv"
        self.py = self.venv / "bin" / "python"
        self.home = work / "airflow-home"
        self.failures: list[str] = []
        self.passes: list[str] = []
        self.timings: list[tuple[str, float]] = []
        self.simulator: subprocess.Popen | None = None
        self.env = clean_environment(self.venv)
        if cold_cache:
            self.env["PIP_CACHE_DIR"] = str(work / "pip-cache")

    # -- reporting ---------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - started
            self.timings.append((name, took))
            print(f"    ({took:.1f}s)", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passes.append(name)
            print(f"PASS {name}{': ' + detail if detail else ''}", flush=True)
        else:
            self.failures.append(name)
            print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    # -- processes ---------------------------------------------------------------------------

    def run(self, log: str, *cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 900,
            fatal: bool = True) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the temp folder with the clean environment; output to ``logs/<log>.log``."""
        done = subprocess.run([str(c) for c in cmd], cwd=self.work, env=env or self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        (self.logs / f"{log}.log").write_text(done.stdout, encoding="utf-8")
        if done.returncode != 0 and fatal:
            tail = "\n".join(done.stdout.splitlines()[-40:])
            raise Failed(f"{' '.join(map(str, cmd))[:300]} exited {done.returncode}:\n{tail}")
        return done

    def inner(self, log: str, code: str, *args: str, env: dict[str, str] | None = None) -> Any:
        """Python code run by the venv (isolated mode) that prints one JSON document last."""
        done = self.run(log, self.py, "-I", "-c", code, *args, env=env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def pip(self, log: str, *args: str | Path) -> None:
        self.run(log, self.py, "-m", "pip", "--disable-pip-version-check", "--no-input", *args)

    def start_simulator(self) -> str:
        ready = self.work / "simulator.url"
        log = (self.logs / "simulator.log").open("w")
        # The simulator is the repository's (include/), and only its own process sees the repository;
        # the package it imports (zoom_qos.zoom.published) is the installed one.
        self.simulator = subprocess.Popen(
            [str(self.py), "-m", "include.zoom_simulator", "--host", "127.0.0.1", "--port", "0",
             "--api-key", API_KEY, "--api-secret", API_SECRET, "--seed", "7", "--sessions-per-day", "6",
             "--ready-file", str(ready)],
            cwd=self.work, env={**self.env, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.simulator.poll() is None:
            if ready.exists() and ready.read_text().strip():
                return ready.read_text().strip()
            time.sleep(0.1)
        raise Failed(f"the simulator did not start; see {self.logs / 'simulator.log'}")

    def stop_simulator(self) -> None:
        if self.simulator is not None and self.simulator.poll() is None:
            self.simulator.terminate()
            try:
                self.simulator.wait(10)
            except subprocess.TimeoutExpired:
                self.simulator.kill()
                self.simulator.wait()
        self.simulator = None

    # -- the test ----------------------------------------------------------------------------

    def main(self) -> None:
        with self.step("Fresh venv, and the wheel built from a copy of the working tree"):
            self.run("venv", sys.executable, "-m", "venv", self.venv)
            src = self.work / "src"
            copy_working_tree(src)
            self.pip("build", "wheel", "--no-deps", "-q", "-w", self.work / "dist", src)
            (wheel,) = (self.work / "dist").glob("*.whl")
            meta = wheel_metadata(wheel)
            version = meta["Version"]
            base, extras = split_requirements(meta.get_all("Requires-Dist") or [])
            print(f"    {wheel.name}; {len(base)} dependencies, extras {', '.join(sorted(extras))}")
            self.check("the wheel ships the DAGs as zoom_qos/example_dags/",
                       all(f"zoom_qos/example_dags/{n}" in zipfile.ZipFile(wheel).namelist()
                           for n in SHIPPED_DAGS))

        airflow_pin = pinned("apache-airflow")
        constraints = self.work / "constraints.txt"
        # The pins as constraints (a constraint cannot name an extra: psycopg[binary] -> psycopg).
        constraints.write_text(re.sub(r"\[[a-z,]*\]", "", (ROOT / "requirements.txt").read_text()))
        with self.step(f"pip install apache-airflow=={airflow_pin} and the wheel's declared dependencies"):
            self.pip("install-deps", "install", "-q", "-c", constraints, f"apache-airflow=={airflow_pin}",
                     *base)
        with self.step("pip install --no-deps the wheel (not editable), pip check"):
            self.pip("install-wheel", "install", "-q", "--no-deps", wheel)
            done = self.run("pip-check", self.py, "-m", "pip", "check", fatal=False)
            self.check("pip check", done.returncode == 0, done.stdout.strip().splitlines()[-1])

        purelib = Path(self.inner("purelib", "import json, sysconfig; "
                                  "print(json.dumps(sysconfig.get_paths()['purelib']))"))
        installed = purelib / "zoom_qos"
        shipped_files = {str(p.relative_to(purelib)) for p in installed.rglob("*")}
        missing = sorted(set(tree_files(self.work / "src")) - shipped_files)
        self.check("every module and template of plugins/zoom_qos and dags/ is in the wheel", not missing,
                   f"missing: {', '.join(missing)} (a package setup.py's finder missed: an __init__.py "
                   "forgotten?)" if missing else "")
        self.check("the install is not editable", not list(purelib.glob("__editable__*")),
                   str(list(purelib.glob("__editable__*"))))

        self.home.mkdir()
        dags = self.home / "dags"  # Airflow's default DAG folder, empty; no plugins folder at all
        dags.mkdir()
        airflow_env = {**self.env, "AIRFLOW_HOME": str(self.home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        with self.step("Import every module of the installed package"):
            result = self.inner("import-all", IMPORT_ALL, env=airflow_env)
            self.check(f"all {len(result['imported'])} modules import from site-packages",
                       bool(result["imported"]) and not result["failed"], "; ".join(result["failed"]))
        before = snapshot(installed)

        with self.step("Copy the DAGs out of the installed package, airflow db migrate"):
            shipped = self.run("copy-dags", self.py, "-I", "-c", COPY_DAGS, dags, *SHIPPED_DAGS,
                               env=airflow_env).stdout.strip().splitlines()[-1]
            copied = sorted(os.listdir(dags))
            self.check("the DAGs come from the installed package",
                       Path(shipped).is_relative_to(purelib) and copied == sorted(SHIPPED_DAGS),
                       f"{', '.join(copied)} from {shipped}")
            self.run("db-migrate", self.venv / "bin" / "airflow", "db", "migrate", env=airflow_env)

        day = (datetime.now(UTC) - timedelta(days=2)).date()
        with self.step(f"airflow dags test {DAG_ID} against the simulator (day {day})"):
            base_url = self.start_simulator()
            print(f"    simulator on {base_url}")
            run_env = {**airflow_env, "AIRFLOW_CONN_ZOOM_VIDEOSDK": json.dumps(
                {"conn_type": "zoom_videosdk", "host": base_url, "login": API_KEY, "password": API_SECRET})}
            done = self.run("dags-test", self.venv / "bin" / "airflow", "dags", "test", DAG_ID,
                            (day + timedelta(days=1)).isoformat(),
                            "-c", json.dumps({"from_date": day.isoformat(), "to_date": day.isoformat()}),
                            env=run_env, timeout=900, fatal=False)
            self.stop_simulator()
            self.check("airflow dags test succeeded", done.returncode == 0 and "state=success" in done.stdout,
                       f"exit {done.returncode}; see {self.logs / 'dags-test.log'}")

        warehouse = self.home / "zoom_qos" / "warehouse.db"
        sessions = count_rows(warehouse, "sessions")
        self.check("the warehouse is $AIRFLOW_HOME/zoom_qos/warehouse.db, with sessions", sessions > 0,
                   f"{sessions} sessions, {count_rows(warehouse, 'user_qos')} user_qos rows")
        with self.step("zoom-qos warehouse upgrade, the installed console script, on that warehouse"):
            done = self.run("zoom-qos-upgrade", self.venv / "bin" / "zoom-qos", "warehouse", "upgrade",
                            env=airflow_env, timeout=600, fatal=False)
            self.check("zoom-qos warehouse upgrade recomputed the derived tables",
                       done.returncode == 0 and "Upgraded" in done.stdout
                       and count_rows(warehouse, "quality_sessions") == sessions,
                       (done.stdout.strip().splitlines() or [f"exit {done.returncode}"])[-1])
        changed = sorted(set(snapshot(installed).items()) ^ set(before.items()))
        self.check("nothing was written into the installed package", not changed,
                   ", ".join(sorted({name for name, _ in changed})))

        with self.step("What Airflow says about the provider"):
            airflow = self.venv / "bin" / "airflow"
            done = self.run("providers-list", airflow, "providers", "list", "-o", "json", env=airflow_env)
            listed = {p["package_name"]: p["version"] for p in json_output(done.stdout)}
            self.check(f"airflow providers list shows {DISTRIBUTION} {version}",
                       listed.get(DISTRIBUTION) == version, f"listed: {listed.get(DISTRIBUTION)}")
            done = self.run("providers-hooks", airflow, "providers", "hooks", "-o", "json", env=airflow_env)
            hooks = {h["connection_type"]: h for h in json_output(done.stdout)}
            hook = hooks.get("zoom_videosdk") or {}
            self.check("airflow providers hooks knows the zoom_videosdk connection type",
                       hook.get("class") == "zoom_qos.hooks.ZoomVideoSdkHook"
                       and hook.get("package_name") == DISTRIBUTION, json.dumps(hook))

        chosen = sorted(set(extras) - HEAVY_EXTRAS)
        with self.step(f"Extras {', '.join(chosen)}: pip install, pip check, every import declared"):
            self.pip("install-extras", "install", "-q", "-c", constraints,
                     *[req for name in chosen for req in extras[name]])
            done = self.run("pip-check-extras", self.py, "-m", "pip", "check", fatal=False)
            self.check(f"pip check with the extras {', '.join(chosen)}", done.returncode == 0,
                       done.stdout.strip().splitlines()[-1])
            every = [*base, *(req for reqs in extras.values() for req in reqs)]
            declared = sorted({requirement_name(req) for req in every})
            result = self.inner("import-coverage", IMPORT_COVERAGE, json.dumps(declared), json.dumps(PART_OF),
                                env=airflow_env)
            self.check(f"each of the {len(result['covered'])} third-party modules the package imports "
                       "comes from a declared dependency", not result["problems"],
                       "; ".join(result["problems"]))


def clean_environment(venv: Path) -> dict[str, str]:
    """The caller's environment without what would point Airflow or Python at the repository (the
    Makefile exports AIRFLOW_HOME, the DAG and plugins folders, PYTHONPATH and the data folder)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "ZOOM_QOS", "PYTHON", "VIRTUAL_ENV", "CONDA"))}
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(ROOT)]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def copy_working_tree(dst: Path) -> None:
    """The files git would commit (tracked, or new and not ignored), as they are on disk now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)


def tree_files(src: Path) -> Iterator[str]:
    """What the wheel built from ``src`` must hold, as paths under site-packages."""
    library = src / "plugins"
    for path in (library / "zoom_qos").rglob("*"):
        if path.suffix in (".py", ".html", ".css") and "__pycache__" not in path.parts:
            yield str(path.relative_to(library))
    for path in (src / "dags").glob("*.py"):
        yield f"zoom_qos/example_dags/{path.name}"


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(zf.read(name).decode("utf-8"))


def split_requirements(requires: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``Requires-Dist`` values: the unconditional ones, and per extra its own (without the marker)."""
    base: list[str] = []
    extras: dict[str, list[str]] = {}
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra:
            extras.setdefault(extra.group(1), []).append(spec.strip())
        else:
            base.append(requirement.strip())
    return base, extras


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def pinned(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec.startswith(f"{name}==") or spec.startswith(f"{name}["):
            return spec.split("==")[1].strip()
    raise Failed(f"requirements.txt pins no {name}")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` but byte code, with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def count_rows(db: Path, table: str) -> int:
    import sqlite3

    if not db.is_file():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.Error:
            return 0


def json_output(text: str) -> list[dict]:
    """The JSON document of an ``airflow … -o json`` command (log lines may come before it)."""
    start = text.index("[")
    return json.loads(text[start:text.rindex("]") + 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--cold-cache", action="store_true", help="an empty pip cache")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="zoomqos-install-test-"))
    test = Run(work, args.cold_cache)
    # SIGTERM/SIGHUP (CI cancelling the job) unwind like Ctrl-C, so the simulator is stopped below.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    started = time.monotonic()
    try:
        test.main()
    except Failed as error:
        test.check("install test ran to the end", False, str(error))
    except KeyboardInterrupt:
        test.check("install test ran to the end", False, "interrupted")
    finally:
        test.stop_simulator()
    total = time.monotonic() - started
    print("==> Timings" + (" (cold pip cache)" if args.cold_cache else ""))
    for name, took in test.timings:
        print(f"    {took:7.1f}s  {name}")
    print(f"    {total:7.1f}s  total")
    if test.failures or args.keep:
        print(f"Logs and venv kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if test.failures:
        print(f"install-test FAILED: {len(test.failures)} of {len(test.failures) + len(test.passes)} checks")
        return 1
    print(f"install-test PASSED: {len(test.passes)} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
