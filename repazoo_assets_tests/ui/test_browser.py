"""The operator's view, in a real browser: the Dagster UI served by `dagster dev` over the demo
data, driven by Playwright in Debian's headless Chromium (no browser download).

One walk through what an operator does: see the asset groups, materialize one user's partition
from the asset's page, follow the run to success, read the partition's metadata and the
sentiment chart. Screenshots go to test-output/ui/ (docs/images/ holds copies for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# A safety net for a busy machine; alone on CI the walk takes about two minutes.
pytestmark = [pytest.mark.browser, pytest.mark.webserver, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHOTS = REPO / "test-output" / "ui"
LOCATION = "repazoo_assets"
# Every asset group the operator must find on the lineage page.
REQUIRED_GROUPS = ["twitter", "events", "monitoring", "compliance"]
USER = "demo-user-001"  # the demo's first user, registered as a `users` partition by the demo
# The settings that would take the demo or the UI off the local, embedded environment.
NON_LOCAL = (
    "REPAZOO_ENV", "DATABASE_URL", "REDIS_URL", "S3_ENDPOINT_URL", "TWITTER_CLIENT_ID", "TWITTER_CLIENT_SECRET",
    "ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL", "SENTRY_DSN",
)

if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(
        "Debian's Chromium is not installed at /usr/bin/chromium (`make test` installs it: "
        "apt-get install chromium); the browser test needs it",
        allow_module_level=True,
    )


# --- a real `dagster dev` ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_setup() -> None:
    # Started from a background shell, the child inherits SIGINT as ignored, and `dagster dev`
    # then ignores SIGTERM too: restore the default, and lead a process group of its own.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C (SIGINT) to the whole group, then SIGTERM, then SIGKILL, each after a grace time."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if not _group_alive(proc.pid):
                return


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Until /server_info answers and the code location has loaded (or failed to: then say why)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"dagster dev exited with {proc.returncode}:\n{_tail(log)}"
        try:
            if httpx.get(f"{url}/server_info", timeout=5).status_code == 200:
                entries = _graphql(url, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
                loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
                if loaded and loaded[0]["locationOrLoadError"]["__typename"] == "PythonError":
                    pytest.fail(f"the code location failed to load:\n{loaded[0]['locationOrLoadError']['message']}")
                if [e["name"] for e in loaded] == [LOCATION]:
                    return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"dagster dev did not serve {LOCATION} within {timeout} s:\n{_tail(log)}"
        time.sleep(1)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory) -> dict[str, str]:
    """A local environment of its own (data folder and Dagster instance in tmp dirs) holding the
    demo: migrated, loaded, every asset materialized, the demo users registered as partitions."""
    root = tmp_path_factory.mktemp("ui")
    env = {k: v for k, v in os.environ.items() if k not in NON_LOCAL}
    env.update(REPAZOO_DATA_DIR=str(root / "data"), DAGSTER_HOME=str(root / "dagster"), NO_COLOR="1")
    Path(env["DAGSTER_HOME"]).mkdir()
    shutil.copy(REPO / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    for args in (["db", "upgrade"], ["demo", "--users", "2", "--events", "5"]):
        done = subprocess.run(
            [str(BIN / "repazoo"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"repazoo {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return env


@pytest.fixture(scope="module")
def dagster_ui(demo_env) -> Iterator[str]:
    port = _free_port()
    log = Path(demo_env["DAGSTER_HOME"]) / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=demo_env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_child_setup,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_serving(url, proc, log)
            yield url
        finally:
            _stop(proc)
    assert proc.poll() is not None and not _group_alive(proc.pid), "dagster dev did not stop"


# --- the operator's walk ------------------------------------------------------------------------------
RUNS = """query Runs($partition: String!) { runsOrError(filter: {tags: [
    {key: "dagster/partition", value: $partition}, {key: "dagster/from_ui", value: "true"}]}) {
    ... on Runs { results { runId status assetSelection { path } } } } }"""


def _ui_runs(url: str) -> list[dict]:
    return _graphql(url, RUNS, {"partition": USER})["runsOrError"]["results"]


def _wait_for_run(url: str, known: set[str], timeout: float = 300) -> dict:
    """The run the UI just launched, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        new = [run for run in _ui_runs(url) if run["runId"] not in known]
        if new and new[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            return new[0]
        assert time.monotonic() < deadline, f"no finished run after {timeout} s: {new}"
        time.sleep(2)


def _shot(page, name: str) -> Path:
    page.wait_for_load_state("networkidle")  # icons and statuses in, so the picture is complete
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def _metadata_value(page, label: str) -> str:
    row = page.locator("tr", has=page.get_by_text(label, exact=True)).first
    row.wait_for()
    return row.locator("td").nth(1).inner_text().strip()


def test_operator_materializes_one_user_and_reads_the_results(dagster_ui):
    from playwright.sync_api import expect, sync_playwright

    url = dagster_ui
    SHOTS.mkdir(parents=True, exist_ok=True)
    known = {run["runId"] for run in _ui_runs(url)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(90_000)  # generous: a busy CI machine answers slowly
            expect.set_options(timeout=90_000)
            # Dagster's one-time "join the community" dialog may cover any page: dismiss it.
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"),
                lambda: page.get_by_role("button", name="Skip").click(),
            )

            # 1. The asset groups, on the global lineage page.
            page.goto(f"{url}/asset-groups")
            for group in REQUIRED_GROUPS:
                expect(page.locator(f'foreignObject.group [data-tooltip="{group}"]')).to_be_visible()
            expect(page.get_by_text("fetching statuses")).to_have_count(0)
            _shot(page, "01-asset-groups")

            # 2. Materialize one user's partition of `tweets` from the asset's page.
            page.goto(f"{url}/assets/tweets")
            page.get_by_role("button", name=re.compile(r"Materialize…$")).first.click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Partition selection")).to_be_visible()
            dialog.get_by_text("Select a partition or create one").click()
            page.get_by_placeholder("Filter partitions").fill(USER)
            page.get_by_text(USER, exact=True).first.click()
            dialog.get_by_text(re.compile(r"^Launch runs to materialize")).click()  # close the picker
            expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
            launch = dialog.get_by_role("button", name="Launch 1 run")
            expect(launch).to_be_enabled()
            _shot(page, "02-launch-partition")
            launch.click()
            expect(dialog).to_be_hidden()

            # 3. The run succeeds; its page says so.
            run = _wait_for_run(url, known)
            assert run["status"] == "SUCCESS", f"run {run['runId']} ended {run['status']}"
            assert run["assetSelection"] == [{"path": ["tweets"]}]
            page.goto(f"{url}/runs/{run['runId']}")
            expect(page.get_by_text("Success", exact=True).first).to_be_visible()
            expect(page.get_by_text("Materialized value tweets").first).to_be_visible()
            _shot(page, "03-run-succeeded")

            # 4. The partition's metadata, from that run: row count, source, time taken.
            page.goto(f"{url}/assets/tweets?view=partitions&partition={USER}")
            expect(page.get_by_role("link", name=run["runId"][:8]).first).to_be_visible()
            assert int(_metadata_value(page, "dagster/row_count")) > 0
            assert _metadata_value(page, "source") == "archive"
            assert float(_metadata_value(page, "fetch_seconds")) >= 0
            _shot(page, "04-partition-metadata")

            # 5. The user's sentiment over time, as a chart in the summary's metadata.
            page.goto(f"{url}/assets/reputation_summary?view=partitions&partition={USER}")
            assert int(_metadata_value(page, "dagster/row_count")) > 0
            page.locator("tr", has=page.get_by_text("sentiment_over_time", exact=True)).get_by_text(
                "[Show Markdown]"
            ).click()
            chart = page.get_by_role("dialog").locator('img[src^="data:image/svg+xml;base64,"]')
            expect(chart).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
            assert chart.evaluate("img => img.naturalWidth") == 640
            expect(page.get_by_role("dialog").get_by_text(re.compile(r"analysed tweets, .* per day"))).to_be_visible()
            _shot(page, "05-sentiment-chart")
        except Exception:
            page.screenshot(path=str(SHOTS / "failure.png"))  # what the browser showed when it failed
            raise
        finally:
            browser.close()
