"""The trigger client: how the web app asks the data platform for work on a user's behalf.

    from repazoo_assets.client import RepazooClient

    client = RepazooClient(database_url=..., webserver_url="http://dagster-webserver:3000")
    result = client.sync_user("u-123")         # fetch, sanitize and analyse the user's tweets
    result.run_id                               # the Dagster run, when the webserver was reached

Each call records the request in the app database, where the platform's sensors watch for it
(`user_requests_sensor`, `data_export_requests_sensor`, `erasure_sensor`), so nothing is lost when
the webserver is down. When a webserver URL is given, `sync_user` and `analyse_user` also launch
the run at once through Dagster's GraphQL API and return its id. Requests are idempotent: a
second `sync_user` while the first is queued or running returns the same request and run.

Errors are specific: `UnknownUser`, `ConsentRevoked`, `WebserverUnreachable` (the request is
recorded and the sensor will launch it), all subclasses of `RepazooClientError`. Messages name
the internal user id only, never a handle, e-mail or token.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from repazoo_assets.lib.db import create_engine, normalize_database_url
from repazoo_assets.lib.db import requests_store as user_requests
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.db import twitter_store

# Run states in which a request is still being served: asking again returns the same run.
ACTIVE_RUN_STATES = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED", "CANCELING"})
FAILED_RUN_STATES = frozenset({"FAILURE", "CANCELED"})
USERS_PARTITIONS = "users"


class RepazooClientError(Exception):
    """Base of the trigger client's errors."""


class UnknownUser(RepazooClientError):
    def __init__(self, user_id: str):
        super().__init__(f"unknown user {user_id!r}: no such user, or the user was erased")
        self.user_id = user_id


class ConsentRevoked(RepazooClientError):
    def __init__(self, user_id: str, reason: str):
        super().__init__(f"consent not granted for user {user_id!r}: {reason}; nothing was requested")
        self.user_id = user_id
        self.reason = reason


class WebserverUnreachable(RepazooClientError):
    def __init__(self, url: str, request_id: int | None, detail: str):
        queued = (
            f"; request {request_id} is recorded and the platform's sensor will launch it"
            if request_id is not None
            else ""
        )
        super().__init__(f"Dagster webserver at {url} is unreachable ({detail}){queued}")
        self.url = url
        self.request_id = request_id


class LaunchRejected(RepazooClientError):
    """The webserver answered but refused to launch the run (unknown job, invalid config)."""


@dataclass(frozen=True)
class TriggerResult:
    """What the platform did with a request: its id in the app database and, once launched,
    the Dagster run serving it (None while it waits for the sensor)."""

    request_id: int
    run_id: str | None
    status: str
    created: bool


class RepazooClient:
    """Request work for users. `database_url` is the app database (the web app's own); the
    webserver URL is optional (e.g. `http://dagster-webserver:3000`)."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine: Engine | None = None,
        webserver_url: str | None = None,
        timeout: float = 10.0,
        source: str = "web",
        location_name: str = "repazoo_assets",
        repository_name: str | None = None,
    ):
        if engine is None:
            if not database_url:
                raise ValueError("RepazooClient needs database_url (the app database) or an engine")
            engine = create_engine(normalize_database_url(database_url))
        self.engine = engine
        self.webserver_url = webserver_url.rstrip("/") if webserver_url else None
        self.timeout = timeout
        self.source = source
        self.location_name = location_name
        self.repository_name = repository_name
        self._graphql = None

    # -- public API ------------------------------------------------------------------------------

    def sync_user(self, user_id: str) -> TriggerResult:
        """Fetch the user's new tweets, sanitize and analyse them (the `tweet_pipeline` job)."""
        return self._request_run(user_id, "sync")

    def analyse_user(self, user_id: str) -> TriggerResult:
        """Analyse the user's stored tweets again, without fetching (the `analyse_user` job)."""
        return self._request_run(user_id, "analyse")

    def request_export(self, user_id: str) -> TriggerResult:
        """A GDPR/CCPA data export: the export sensor produces the document and a 24-hour link
        (`repazoo export status --user-id ID`, or the `data_exports` row)."""
        from repazoo_assets.lib.compliance import export

        with self.engine.begin() as conn:
            self._require_user(conn, user_id)
            request_id, created = export.request_export(conn, user_id)
            status = conn.execute(sa.select(t.data_exports.c.status).where(t.data_exports.c.id == request_id)).scalar_one()
        return TriggerResult(request_id, None, status, created)

    def revoke_consent(
        self, user_id: str, reason: str, *, ip_address: str | None = None, user_agent: str | None = None
    ) -> TriggerResult:
        """Revoke the user's consent: the token is revoked at once (no fetch after this returns)
        and the erasure sensor deletes the user's data."""
        from repazoo_assets.lib.compliance import consent

        with self.engine.begin() as conn:
            self._require_user(conn, user_id)
            change = consent.revoke_consent(
                conn, user_id=user_id, reason=reason, source=self.source, ip_address=ip_address, user_agent=user_agent
            )
        return TriggerResult(change.event_id, None, "revoked", change.recorded)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RepazooClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _require_user(conn, user_id: str) -> None:
        row = conn.execute(sa.select(t.users.c.deleted_at).where(t.users.c.id == user_id)).first()
        if row is None or row.deleted_at is not None:
            raise UnknownUser(user_id)

    def _request_run(self, user_id: str, kind: str) -> TriggerResult:
        with self.engine.begin() as conn:
            self._require_user(conn, user_id)
            state = twitter_store.consent(conn, user_id)
            if not state.granted:
                raise ConsentRevoked(user_id, state.reason or "consent not granted")
            existing = user_requests.open_request(conn, user_id, kind)
        if existing is not None:
            served = self._still_served(existing)
            if served is not None:
                return served
        launching = "launching" if self.webserver_url else "pending"
        with self.engine.begin() as conn:
            request, inserted = user_requests.create(conn, user_id, kind, status=launching, source=self.source)
        if not inserted:  # another caller made it a moment ago: theirs to launch
            return TriggerResult(request.id, request.run_id, request.status, False)
        if not self.webserver_url:
            return TriggerResult(request.id, None, request.status, True)
        return self._launch(request, True)

    def _still_served(self, request: user_requests.UserRequest) -> TriggerResult | None:
        """The open request's result if it is still waiting or running; None once its run ended
        (the request is then closed and a new one made)."""
        if not self.webserver_url:
            return TriggerResult(request.id, request.run_id, request.status, False)
        if request.status == "pending":
            with self.engine.begin() as conn:
                claimed = user_requests.transition(conn, request.id, ("pending",), "launching")
            if claimed:
                return self._launch(request, False)
            return TriggerResult(request.id, None, "launching", False)  # the sensor or another client took it
        if request.status == "launching":  # being submitted by another caller right now
            return TriggerResult(request.id, None, request.status, False)
        run_id = request.run_id or self._run_for_request(request.id)
        if run_id is None:  # launched by the sensor a moment ago, run not visible yet
            return TriggerResult(request.id, None, request.status, False)
        state = self._run_status(run_id)
        if state in ACTIVE_RUN_STATES:
            if request.run_id is None:
                with self.engine.begin() as conn:
                    user_requests.set_status(conn, request.id, request.status, run_id=run_id)
            return TriggerResult(request.id, run_id, request.status, False)
        with self.engine.begin() as conn:
            user_requests.set_status(conn, request.id, "failed" if state in FAILED_RUN_STATES else "done", run_id=run_id)
        return None

    def _launch(self, request: user_requests.UserRequest, created: bool) -> TriggerResult:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            self._register_partition(request.user_id)
            run_id = self._client().submit_job_execution(
                request.job_name,
                repository_location_name=self.location_name,
                repository_name=self._repository_name(),
                tags={"dagster/partition": request.user_id, user_requests.REQUEST_TAG: str(request.id)},
            )
        except LaunchRejected:
            with self.engine.begin() as conn:
                user_requests.set_status(conn, request.id, "failed")
            raise
        except (DagsterGraphQLClientError, WebserverUnreachable) as exc:
            unreachable = isinstance(exc, WebserverUnreachable) or _is_connection_error(exc)
            with self.engine.begin() as conn:
                # Back to the sensor's queue: it launches the request when Dagster is back.
                user_requests.set_status(conn, request.id, "pending" if unreachable else "failed")
            if unreachable:
                raise WebserverUnreachable(self.webserver_url, request.id, "connection refused or timed out") from None
            raise LaunchRejected(f"the webserver refused to launch {request.job_name} for request {request.id}: {exc.args[0]}") from None
        with self.engine.begin() as conn:
            user_requests.set_status(conn, request.id, "launched", run_id=run_id)
        return TriggerResult(request.id, run_id, "launched", created)

    def _client(self):
        if self._graphql is None:
            from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

            url = urlparse(self.webserver_url)
            try:
                self._graphql = DagsterGraphQLClient(
                    url.hostname or "localhost",
                    port_number=url.port,
                    use_https=url.scheme == "https",
                    path_prefix=url.path.rstrip("/"),
                    timeout=int(self.timeout),
                )
            except DagsterGraphQLClientError:
                raise WebserverUnreachable(self.webserver_url, None, "connection refused") from None
        return self._graphql

    def _graphql_query(self, query: str, variables: dict) -> dict:
        try:
            response = httpx.post(
                f"{self.webserver_url}/graphql", json={"query": query, "variables": variables}, timeout=self.timeout
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise WebserverUnreachable(self.webserver_url, None, type(exc).__name__) from None
        body = response.json()
        if body.get("errors"):
            raise LaunchRejected(f"GraphQL error: {body['errors'][0].get('message', 'unknown')}")
        return body["data"]

    def _repository_name(self) -> str:
        """The code location's repository (Definitions get a generated name): asked once."""
        if self.repository_name is None:
            data = self._graphql_query(
                "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name } } } } }",
                {},
            )
            names = [
                node["name"]
                for node in data["repositoriesOrError"].get("nodes") or []
                if node["location"]["name"] == self.location_name
            ]
            if not names:
                raise LaunchRejected(f"the webserver has no code location named {self.location_name!r}")
            self.repository_name = names[0]
        return self.repository_name

    def _register_partition(self, user_id: str) -> None:
        """Make sure the user's `users` partition exists (a user the web app created a moment ago
        may not be registered by the users sensor yet); an existing one is fine."""
        data = self._graphql_query(
            "mutation($repo: RepositorySelector!, $name: String!, $key: String!) {"
            " addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {"
            " __typename ... on PythonError { message } ... on UnauthorizedError { message } } }",
            {
                "repo": {"repositoryLocationName": self.location_name, "repositoryName": self._repository_name()},
                "name": USERS_PARTITIONS,
                "key": user_id,
            },
        )
        result = data["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise LaunchRejected(f"could not register the partition of user {user_id!r}: {result['__typename']}")

    def _run_status(self, run_id: str) -> str:
        data = self._graphql_query(
            "query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }",
            {"runId": run_id},
        )
        run = data["runOrError"]
        return run["status"] if run["__typename"] == "Run" else "NOT_FOUND"

    def _run_for_request(self, request_id: int) -> str | None:
        data = self._graphql_query(
            "query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}, limit: 1) {"
            " __typename ... on Runs { results { runId } } } }",
            {"tags": [{"key": user_requests.REQUEST_TAG, "value": str(request_id)}]},
        )
        runs = data["runsOrError"]
        results = runs.get("results") or []
        return results[0]["runId"] if results else None


def _is_connection_error(exc: Exception) -> bool:
    import requests

    cause = exc.__cause__
    return isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))
