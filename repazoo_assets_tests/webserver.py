"""A real `dagster dev` (webserver + daemon) for tests, on a free loopback port.

`dagster dev` started in the background ignores SIGTERM unless SIGINT is reset first (it installs
its own SIGINT handling, and a background child inherits SIGINT as ignored): the child resets it
and runs in its own process group, and stopping sends SIGINT to the group, then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from repazoo_assets_tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]


def _child_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()


@contextmanager
def dagster_dev(env: dict[str, str], dagster_home: Path, *, startup_timeout: float = 120) -> Iterator[str]:
    """Start `dagster dev -w workspace.yaml` with `env` over the current environment and an
    instance in `dagster_home` (the repo's dagster.yaml); yield its base URL; stop it."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    log = open(dagster_home / "dagster-dev.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env={**os.environ, **env, "DAGSTER_HOME": str(dagster_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_child_setup,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {proc.returncode}: {_tail(dagster_home)}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200 and _location_loaded(url):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev did not answer within {startup_timeout} s: {_tail(dagster_home)}")
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()


class LocationLoadError(RuntimeError):
    """The webserver is up but the code location failed to load."""


def _location_loaded(url: str) -> bool:
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
        " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    body = httpx.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
    entries = body["data"]["workspaceOrError"].get("locationEntries") or []
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        if entry["loadStatus"] == "LOADED" and error.get("__typename") == "PythonError":
            raise LocationLoadError(f"code location {entry['name']} failed to load: {error['message'][:2000]}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGINT to the process group (what Ctrl-C sends), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def _tail(dagster_home: Path, lines: int = 30) -> str:
    path = dagster_home / "dagster-dev.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
