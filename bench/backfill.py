"""Backfill benchmark: the `tweet_pipeline` job over N user partitions on the multiprocess executor,
launched the way production launches it. Prints figures, asserts nothing.

A throwaway production-like deployment on this machine:

- app database: a fresh schema in the local PostgreSQL (`REPAZOO_ENV=production`, `DATABASE_URL`);
- Dagster instance: `deploy/dagster.yaml` as is (run queue, pools, run retries, run monitoring) in a
  temporary DAGSTER_HOME, its storage on PostgreSQL in a schema of its own;
- the fake Twitter API v2 and Anthropic Messages servers of the test suite, started in this process
  on loopback, each instrumented to count the requests in flight (with a fixed per-request latency,
  so that an overlap of calls is visible) and to keep the maximum;
- rate limits on the local Redis, database 11 (the platform's 50 Claude requests / minute applies);
- a code server (`dagster code-server start`), the daemon (`dagster-daemon run`) and a workspace
  naming the code server, as in deploy/workspace.yaml;
- N connected users (tokens issued by the fake Twitter server, 20 tweets each, every fifth with an
  e-mail address for the sanitizer), registered as `users` partitions; the pool limits set on the
  instance (`--twitter-pool`, `--anthropic-pool`); every sensor and schedule of the code location
  stopped, so the daemon runs only the backfill.

The backfill (`--launch asset`, the default) is an asset backfill of the pipeline's four assets
over every user, launched through the GraphQL API as the UI's Materialize -> Launch backfill does
(in-process, no webserver); the daemon splits it into runs by the assets' backfill policy
(`BackfillPolicy.multi_run`: up to USER_BATCH users per run) and submits them to the run queue.
`--launch job` is what `dagster job backfill -j tweet_pipeline --all` does instead (called
in-process): one run per user. `--launch sensor` leaves the users unregistered and `users_sensor`
running: it finds them as a bulk import from the web app, registers them and requests their runs
(batches of up to USER_BATCH users). Either way the daemon dequeues the runs (at most 10 backfill runs at
once, deploy/dagster.yaml) and the code server starts each run in a process of its own (always
`spawn`: a new interpreter that imports the code location), whose steps run in processes of their
own (multiprocess executor; `--start-method forkserver`, the code location's default, forks them
from a server that imported the code location once per run; `spawn` is Dagster's default, a new
interpreter per step).

Reported: users per minute (backfill submitted -> last run finished; a user is done when its
`reputation_summary` partition is materialized), runs and their statuses, the
maximum number of requests in flight at each fake server against its pool limit, the maximum
number of `tweets` / `tweet_analyses` steps running at once (from the event log) and of claimed pool
slots (sampled), peak RSS of the whole process tree, CPU time by kind of process, the load average.

    .venv/bin/python bench/backfill.py [--users 500] [--tweets 20] [--twitter-pool 4] [--anthropic-pool 2]
        [--start-method forkserver|spawn] [--launch asset|job|sensor]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repazoo_assets_tests.fakes.anthropic_server import FakeAnthropicServer  # noqa: E402
from repazoo_assets_tests.fakes.twitter_server import FakeTwitterServer, fake_tweet  # noqa: E402

BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
# A Redis database no test uses; only this benchmark's keys are deleted from it afterwards.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
LOCATION = "repazoo_assets"
JOB = "tweet_pipeline"
PIPELINE_ASSETS = ["tweets", "sanitized_tweets", "tweet_analyses", "reputation_summary"]
POOL_OF_STEP = {"tweets": "twitter_api", "tweet_analyses": "anthropic_api"}
TICKS = os.sysconf("SC_CLK_TCK")
ACTIVE = ("NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING")


# --- instrumented fakes ------------------------------------------------------------------------------
class InFlight:
    """Requests being answered right now, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = self.total = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


class CountingTwitter(FakeTwitterServer):
    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency, self.in_flight = latency, InFlight()

    def _handle(self, request):
        with self.in_flight:
            time.sleep(self.latency)  # a remote API's latency: calls that overlap are seen overlapping
            return super()._handle(request)


class CountingAnthropic(FakeAnthropicServer):
    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency, self.in_flight = latency, InFlight()

    def _handle(self, request):
        with self.in_flight:
            time.sleep(self.latency)
            return super()._handle(request)


# --- sampling: RSS of the process tree, pool slots, load ----------------------------------------------
def _kind(pid: int, parent_kind: str | None) -> str:
    """What a process of the benchmark's tree is, from its command line (read once per process)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if os.environ.get("BENCH_DEBUG_KINDS"):
        print(f"[kind] parent={parent_kind} cmd={cmd[:200]}", flush=True)
    if "forkserver" in cmd:  # the run's fork server, and the steps it forks (same command line)
        return "step process" if parent_kind in ("forkserver", "step process") else "forkserver"
    if "spawn_main" in cmd:  # multiprocessing's spawn: the code server's run workers, spawned steps
        return "run worker" if parent_kind == "code server" else "step process"
    for needle, kind in (("code-server", "code server"), ("api grpc", "code server"),
                         ("dagster-daemon", "daemon"), ("execute_run", "run worker"),
                         ("resource_tracker", "resource tracker"),
                         ("watch_orphans", "compute-log capture"), ("tail -F", "compute-log capture")):
        if needle in cmd:
            return kind
    return "other"


def _tree_rss(root: int, cpu: dict[tuple[int, int], float],
              kinds: dict[tuple[int, int], str] | None = None) -> tuple[int, int, int]:
    """(total RSS bytes, largest single RSS, process count) of `root` and its descendants; records
    each descendant's CPU seconds so far in `cpu`, keyed by (pid, start time), and what it is in
    `kinds`."""
    children: dict[int, list[int]] = defaultdict(list)
    fields: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields[int(entry)] = stat.rsplit(")", 1)[1].split()
        children[int(fields[int(entry)][1])].append(int(entry))
    page = os.sysconf("SC_PAGE_SIZE")
    total = largest = count = 0
    stack = [root]
    kind_of_pid: dict[int, str] = {}
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
        total, largest, count = total + rss, max(largest, rss), count + 1
        if pid != root and pid in fields:  # utime, stime and start time: fields 14, 15 and 22 of stat
            f = fields[pid]
            key = (pid, int(f[19]))
            cpu[key] = (int(f[11]) + int(f[12])) / TICKS
            if kinds is not None:
                if key not in kinds:
                    kinds[key] = _kind(pid, kind_of_pid.get(int(f[1])))
                kind_of_pid[pid] = kinds[key]
    return total, largest, count


class Sampler(threading.Thread):
    def __init__(self, instance, pools: list[str]) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.instance, self.pools = instance, pools
        self.stop_event = threading.Event()
        self.peak_rss = self.peak_single = self.peak_procs = 0
        self.peak_claimed = dict.fromkeys(pools, 0)
        self.loads: list[float] = []
        self.cpu: dict[tuple[int, int], float] = {}
        self.kinds: dict[tuple[int, int], str] = {}

    def run(self) -> None:
        tick = 0
        # Every 0.2 s: a process that lives shorter (a forked step can) is missed by the CPU sum.
        while not self.stop_event.wait(0.2):
            total, largest, count = _tree_rss(os.getpid(), self.cpu, self.kinds)
            self.peak_rss, self.peak_single = max(self.peak_rss, total), max(self.peak_single, largest)
            self.peak_procs = max(self.peak_procs, count)
            tick += 1
            if tick % 5 == 0:
                self.loads.append(os.getloadavg()[0])
                for pool in self.pools:
                    try:
                        claimed = self.instance.event_log_storage.get_concurrency_info(pool).active_slot_count
                    except Exception:  # noqa: BLE001 - a sample lost to a busy database is not a result
                        continue
                    self.peak_claimed[pool] = max(self.peak_claimed[pool], claimed)


# --- environment --------------------------------------------------------------------------------------
def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process, not only ours)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def _schema_url(admin: sa.Engine, base_url: str, prefix: str) -> tuple[str, str]:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connect_users(engine, vault, twitter: CountingTwitter, n_users: int, n_tweets: int, tag: str) -> list[str]:
    from repazoo_assets.lib.db import twitter_store as store

    base = datetime(2026, 10, 1, tzinfo=UTC)
    users = []
    with engine.begin() as conn:
        for i in range(n_users):
            user_id, twitter_user_id = f"bench-{tag}-{i:05d}", str(70_000_000 + i)
            twitter.add_tweets(
                twitter_user_id,
                [
                    fake_tweet(
                        1_800_000_000_000_000_000 + i * 10_000 + j,
                        f"tweet {j}: mail me at someone{j}@example.com" if j % 5 == 0 else f"tweet {j}: great launch",
                        created_at=base + timedelta(hours=j),
                    )
                    for j in range(n_tweets)
                ],
            )
            access, refresh = twitter.issue_tokens()
            store.connect_user(conn, vault, user_id=user_id, twitter_user_id=twitter_user_id, access_token=access,
                               refresh_token=refresh, expires_in=7200, tier="basic")
            users.append(user_id)
    return users


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        # A session of its own, so that stopping it stops the processes it started (runs, servers).
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_for_code_server(port: int, proc: subprocess.Popen, log: Path) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"code server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            client.ping("")
            return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(1)
    raise SystemExit("code server did not answer within 300 s")


def _stop_instigators(instance, workspace_opts, keep: str | None = None) -> int:
    """Stop every sensor and schedule (most default to running) but `keep`: the daemon runs only
    the backfill (or that sensor's runs)."""
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )

    with get_workspace_from_cli_opts(instance, version="", workspace_opts=workspace_opts) as workspace:
        repo = get_remote_repository_from_code_location(get_code_location_from_workspace(workspace, LOCATION), None)
        stopped = 0
        for sensor in repo.get_sensors():
            if sensor.name == keep:
                instance.start_sensor(sensor)
                continue
            instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
            stopped += 1
        for schedule in repo.get_schedules():
            instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
            stopped += 1
        return stopped


# --- results -------------------------------------------------------------------------------------------
def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    now = peak = 0
    for _, delta in edges:  # at equal times an end (-1) sorts before a start (+1)
        now += delta
        peak = max(peak, now)
    return peak


def _step_intervals(instance, run_ids: list[str]) -> dict[str, list[tuple[float, float]]]:
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
             dg.DagsterEventType.STEP_UP_FOR_RETRY}
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run_id in run_ids:
        started: dict[str, float] = {}
        for record in instance.get_records_for_run(run_id, of_type=kinds, limit=1000).records:
            entry = record.event_log_entry
            pool = POOL_OF_STEP.get(entry.step_key or "")
            if pool is None:
                continue
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                intervals[pool].append((started.pop(entry.step_key), entry.timestamp))
    return intervals


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""


def _launch_asset_backfill(instance, workspace: Path, users: list[str], tag: str) -> str:
    """An asset backfill of the pipeline's assets over `users`, launched through the webserver's
    GraphQL API as the UI's Materialize -> Launch backfill does (in-process, no webserver): the
    daemon splits it into runs by the assets' backfill policy."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    params = {
        "partitionNames": users,
        "assetSelection": [{"path": [key]} for key in PIPELINE_ASSETS],
        "tags": [{"key": "bench", "value": tag}],
    }
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as process_context:
        result = execute_dagster_graphql(process_context.create_request_context(), LAUNCH_BACKFILL, {"params": params})
    answer = result.data["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise SystemExit(f"backfill not launched: {answer}")
    return answer["backfillId"]


def _users_done(instance) -> set[str]:
    """Users whose last asset (reputation_summary) is materialized: the pipeline ran to its end."""
    import dagster as dg

    return set(instance.get_materialized_partitions(dg.AssetKey(PIPELINE_ASSETS[-1])))


def _check_verdicts(instance, run_ids: list[str]) -> Counter:
    """The blocking PII check's verdicts in the runs (one per run: a batch gets one verdict)."""
    import dagster as dg

    verdicts: Counter = Counter()
    for run_id in run_ids:
        for record in instance.get_records_for_run(
            run_id, of_type={dg.DagsterEventType.ASSET_CHECK_EVALUATION}, limit=100
        ).records:
            data = record.event_log_entry.dagster_event.event_specific_data
            verdicts[f"{data.check_name} {'passed' if data.passed else 'failed'}"] += 1
    return verdicts


def _first_failure(instance, run_id: str) -> str:
    import dagster as dg

    records = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}, limit=5
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data
        error = getattr(data, "error", None)
        text = error.message if error else (record.event_log_entry.message or "")
        if error and error.cause:  # a child process's error is the cause of the run's
            text += " <- " + error.cause.message
        return f"{event.step_key or 'run'}: {' '.join(text.split())[:400]}"
    return "no failure event"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--tweets", type=int, default=20, help="tweets per user")
    parser.add_argument("--twitter-pool", type=int, default=4)
    parser.add_argument("--anthropic-pool", type=int, default=2)
    parser.add_argument("--twitter-latency", type=float, default=0.2, help="seconds per fake Twitter request")
    parser.add_argument("--anthropic-latency", type=float, default=1.0, help="seconds per fake Claude request")
    parser.add_argument("--start-method", choices=("forkserver", "spawn"), default="forkserver",
                        help="how the multiprocess executor starts step processes (REPAZOO_START_METHOD)")
    parser.add_argument("--launch", choices=("asset", "job", "sensor"), default="asset",
                        help="asset: an asset backfill, as the UI's Materialize launches it (runs batched by the "
                             "assets' backfill policy); job: `dagster job backfill`, one run per partition; "
                             "sensor: users_sensor finds the users as a bulk import and requests their runs")
    parser.add_argument("--timeout-minutes", type=float, default=90)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()

    import dagster as dg
    import redis
    import yaml
    from cryptography.fernet import Fernet
    from dagster._cli.job import execute_backfill_command
    from dagster._core.storage.dagster_run import RunsFilter
    from dagster_shared.cli import WorkspaceOpts

    from repazoo_assets.defs.twitter.assets import USER_BATCH
    from repazoo_assets.lib.db import create_engine, upgrade
    from repazoo_assets.lib.db import tables as t
    from repazoo_assets.lib.security.vault import TokenVault

    tag = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    print(f"== {args.launch} backfill of {JOB}: {args.users} users x {args.tweets} tweets, pools twitter_api "
          f"{args.twitter_pool} / anthropic_api {args.anthropic_pool}, fake latency "
          f"{args.twitter_latency} s (Twitter) / {args.anthropic_latency} s (Claude); step processes: "
          f"{args.start_method}")
    print(f"machine: {os.cpu_count()} cores, load average before {', '.join(f'{x:.2f}' for x in load_before)}")

    admin = sa.create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    schemas: list[str] = []
    procs: list[subprocess.Popen] = []
    engine = None
    with CountingTwitter(args.twitter_latency) as twitter, CountingAnthropic(args.anthropic_latency) as claude:
        try:
            app_schema, app_url = _schema_url(admin, args.database_url, "bench_app")
            dagster_schema, dagster_url = _schema_url(admin, args.database_url, "bench_dagster")
            schemas += [app_schema, dagster_schema]
            engine = create_engine(app_url)
            upgrade(engine)
            key = Fernet.generate_key().decode()
            started = time.perf_counter()
            users = _connect_users(engine, TokenVault.from_keys(key), twitter, args.users, args.tweets, tag)
            print(f"setup: {len(users)} users connected in {time.perf_counter() - started:.1f} s "
                  f"(app schema {app_schema}, Dagster storage: PostgreSQL, schema {dagster_schema})")

            home = tmp / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
            port = _free_port()
            workspace = tmp / "workspace.yaml"
            workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
                "host": "127.0.0.1", "port": port, "location_name": LOCATION}}]}))
            os.environ.update({
                "DAGSTER_HOME": str(home),
                "DAGSTER_POSTGRES_URL": dagster_url.replace("postgresql+psycopg://", "postgresql+psycopg2://"),
                "REPAZOO_ENV": "production",
                "REPAZOO_EXECUTOR": "multiprocess",
                "REPAZOO_START_METHOD": args.start_method,
                "DATABASE_URL": app_url,
                "REDIS_URL": args.redis_url,
                # The tweet pipeline touches no bucket; production settings require the names.
                "S3_ENDPOINT_URL": "http://127.0.0.1:9",
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                "RAW_S3_BUCKET": f"raw-{tag}", "PROCESSED_S3_BUCKET": f"processed-{tag}",
                "EXPORTS_S3_BUCKET": f"exports-{tag}",
                "ENCRYPTION_KEY": key,
                "PSEUDONYMIZATION_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
                "ANTHROPIC_API_KEY": "bench-key",
                "ANTHROPIC_BASE_URL": claude.base_url,
                "TWITTER_CLIENT_ID": twitter.client_id,
                "TWITTER_CLIENT_SECRET": twitter.client_secret,
                "TWITTER_API_BASE_URL": twitter.base_url,
                "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/unused",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            })
            os.environ.pop("SENTRY_DSN", None)
            limiter = redis.Redis.from_url(args.redis_url)
            stale = list(limiter.scan_iter(match="*anthropic*"))
            if stale:  # an earlier, interrupted run of this benchmark
                limiter.delete(*stale)

            started = time.perf_counter()
            server_log = tmp / "code-server.log"
            procs.append(_start([str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
                                 "--module-name", "repazoo_assets.definitions", "--location-name", LOCATION],
                                dict(os.environ), server_log))
            _wait_for_code_server(port, procs[-1], server_log)
            print(f"code server up in {time.perf_counter() - started:.1f} s")

            instance = dg.DagsterInstance.get()
            if args.launch != "sensor":  # else the sensor registers them, as for users the web app adds
                instance.add_dynamic_partitions("users", users)
            limits = yaml.safe_load((ROOT / "deploy" / "pools.yaml").read_text())
            limits.update(twitter_api=args.twitter_pool, anthropic_api=args.anthropic_pool)
            for pool, limit in limits.items():
                instance.event_log_storage.set_concurrency_slots(pool, limit)
            workspace_opts = WorkspaceOpts(workspace=[str(workspace)])
            stopped = _stop_instigators(instance, workspace_opts, keep="users_sensor" if args.launch == "sensor" else None)
            queue = instance.get_concurrency_config().run_queue_config
            print(f"instance: pool limits {dict(sorted(limits.items()))}; run queue max {queue.max_concurrent_runs}, "
                  f"{queue.tag_concurrency_limits}; {stopped} sensors/schedules stopped")

            daemon_log = tmp / "daemon.log"
            procs.append(_start([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], dict(os.environ), daemon_log))
            sampler = Sampler(instance, list(POOL_OF_STEP.values()))
            sampler.start()

            t0 = time.time()
            busy0 = _machine_busy_seconds()
            if args.launch == "sensor":
                print(f"users_sensor left running: it registers the {len(users)} users as partitions and "
                      f"requests their runs (batches of up to {USER_BATCH} users)")
            elif args.launch == "job":
                execute_backfill_command(
                    workspace_opts=workspace_opts, job_name=JOB, all_partitions=True, noprompt=True,
                    tags=f'{{"bench": "{tag}"}}', instance=instance, print_fn=lambda *_: None,
                )
                print(f"job backfill submitted: {len(users)} runs queued in {time.time() - t0:.1f} s")
            else:
                backfill_id = _launch_asset_backfill(instance, workspace, users, tag)
                print(f"asset backfill {backfill_id} submitted in {time.time() - t0:.1f} s "
                      f"(the daemon makes its runs: batches of up to {USER_BATCH} users)")

            run_tags = {"dagster/sensor_name": "users_sensor"} if args.launch == "sensor" else {"bench": tag}
            runs_filter = RunsFilter(tags=run_tags)
            deadline = t0 + args.timeout_minutes * 60
            last_report = quiet_since = 0.0
            while time.time() < deadline:
                time.sleep(3)
                active = instance.get_runs_count(RunsFilter(tags=run_tags, statuses=[
                    dg.DagsterRunStatus[s] for s in ACTIVE]))
                done = _users_done(instance)
                if time.time() - last_report > 60:
                    last_report = time.time()
                    print(f"  {time.time() - t0:6.0f} s: {len(done)} users done, {active} runs active, "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
                if len(done) >= len(users):
                    break
                if active == 0:  # failures only remain: wait a little for run retries to be queued
                    quiet_since = quiet_since or time.time()
                    if time.time() - quiet_since > 20:
                        break
                else:
                    quiet_since = 0.0
            else:
                print(f"TIMEOUT after {args.timeout_minutes} min")
            busy = _machine_busy_seconds() - busy0
            sampler.stop_event.set()
            sampler.join()
            load_after = os.getloadavg()

            runs = instance.get_runs(runs_filter)
            done = _users_done(instance)
            succeeded = len(done & set(users))
            statuses = Counter(r.status.value for r in runs)
            records = instance.get_run_records(runs_filter)
            starts = [r.start_time for r in records if r.start_time]
            ends = [r.end_time for r in records if r.end_time]
            durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
            waits = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
            wall = (max(ends) - t0) if ends else float("nan")
            print(f"\nruns: {len(runs)} for {len(users)} partitions ({len(users) / max(len(runs), 1):.1f} users per run), "
                  f"statuses {dict(statuses)}; users done (reputation_summary materialized) {succeeded}, "
                  f"not done {len(users) - succeeded}")
            if args.launch == "asset":  # the daemon marks it done on its next pass
                for _ in range(20):
                    backfill = instance.get_backfill(backfill_id)
                    if backfill is None or backfill.status.value != "REQUESTED":
                        break
                    time.sleep(3)
                print(f"backfill {backfill_id}: {backfill.status.value if backfill else 'not found'}")
            print(f"blocking check verdicts: {dict(_check_verdicts(instance, [r.run_id for r in runs]))}")
            if starts and ends:
                print(f"wall clock: backfill submitted -> last run finished {wall:.0f} s "
                      f"(first run started {min(starts) - t0:.1f} s after submission)")
                print(f"THROUGHPUT: {succeeded / (wall / 60):.1f} users per minute "
                      f"({succeeded} users in {wall / 60:.1f} min)")
                print(f"run duration (start -> end): median {statistics.median(durations):.1f} s, "
                      f"max {max(durations):.1f} s; queue wait: median {statistics.median(waits):.0f} s")
            intervals = _step_intervals(instance, [r.run_id for r in runs])
            print("\npool limits (requests in flight at the fake servers; steps running at once from the event log; "
                  "claimed slots sampled each second):")
            for pool, server, limit in (("twitter_api", twitter, args.twitter_pool),
                                        ("anthropic_api", claude, args.anthropic_pool)):
                steps = _max_overlap(intervals[pool])
                held = max(server.in_flight.peak, steps, sampler.peak_claimed[pool]) <= limit
                print(f"  {pool}: limit {limit}; max requests in flight {server.in_flight.peak} "
                      f"({server.in_flight.total} requests); max steps at once {steps} "
                      f"({len(intervals[pool])} steps); max claimed slots {sampler.peak_claimed[pool]} "
                      f"-> {'HELD' if held else 'EXCEEDED'}")
            with engine.connect() as conn:
                stored = conn.execute(sa.select(sa.func.count()).select_from(t.tweets)).scalar()
                analysed = conn.execute(sa.select(sa.func.count()).select_from(t.analyses)).scalar()
            print(f"\napp database: {stored} tweets, {analysed} analyses (expected {len(users) * args.tweets} each)")
            print(f"peak RSS: process tree {sampler.peak_rss / 2**20:.0f} MiB over up to {sampler.peak_procs} processes "
                  f"(largest single process {sampler.peak_single / 2**20:.0f} MiB)")
            cpu = sum(sampler.cpu.values())
            print(f"CPU time of the processes started (code server, daemon, runs, steps; sampled every 0.2 s, "
                  f"so a lower bound): {cpu:.0f} s, {cpu / max(succeeded, 1):.1f} s per successful user")
            by_kind: Counter[str] = Counter()
            procs_of_kind: Counter[str] = Counter()
            for key, seconds in sampler.cpu.items():
                by_kind[sampler.kinds.get(key, "other")] += seconds
                procs_of_kind[sampler.kinds.get(key, "other")] += 1
            for kind, seconds in by_kind.most_common():
                print(f"  {kind}: {seconds:.0f} s over {procs_of_kind[kind]} processes "
                      f"({seconds / max(succeeded, 1):.1f} s per successful user)")
            print(f"CPU time of the whole machine during the backfill (every process, other work included, "
                  f"so an upper bound): {busy:.0f} s, {busy / max(succeeded, 1):.1f} s per successful user")
            print(f"load average: before {load_before[0]:.2f}, during mean "
                  f"{statistics.mean(sampler.loads) if sampler.loads else float('nan'):.2f} / max "
                  f"{max(sampler.loads, default=float('nan')):.2f}, after {load_after[0]:.2f} (1-min)")
            failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
            if failed:
                reasons = Counter(_first_failure(instance, r.run_id) for r in failed[:50])
                print(f"\nfailures (first {min(len(failed), 50)} failed runs, by first error):")
                for reason, count in reasons.most_common(5):
                    print(f"  {count} x {reason}")
            if succeeded < len(users):
                print(f"\ndaemon log (tail):\n{daemon_log.read_text(errors='replace')[-2000:]}")
            instance.dispose()
        finally:
            for proc in reversed(procs):
                _stop(proc)
            if engine is not None:
                engine.dispose()
            with admin.connect() as conn:
                for schema in schemas:
                    conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
            admin.dispose()
            try:
                limiter = redis.Redis.from_url(args.redis_url)
                ours = list(limiter.scan_iter(match=f"*bench-{tag}-*")) + list(limiter.scan_iter(match="*anthropic*"))
                if ours:
                    limiter.delete(*ours)
            except Exception as exc:  # noqa: BLE001
                print(f"(could not clean Redis: {type(exc).__name__})")
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
