"""Hash-chained audit log: appends, verification, tampering, concurrent writers, `audit verify`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from repazoo_assets.cli import main
from repazoo_assets.lib.db import create_engine, upgrade
from repazoo_assets.lib.db import tables as t
from repazoo_assets.lib.security import audit
from repazoo_assets.lib.settings import PRODUCTION_REQUIRED


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request, tmp_path) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def engine(db_url):
    eng = create_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _append_some(engine, n: int = 5) -> list[sa.Row]:
    actions = ["fetch", "redact", "analyse", "export", "consent_change"]
    return [
        audit.append(
            engine,
            actor="pipeline",
            action=actions[i % len(actions)],
            subject_type="user",
            subject_id=f"u{i}",
            details={"rows": i, "ratio": 0.5, "ok": True, "tags": [1, 2], "nested": {"b": None, "a": [i]}},
        )
        for i in range(n)
    ]


def test_chain_links_each_row_to_the_previous_and_verifies(engine):
    rows = _append_some(engine)
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    result = audit.verify(engine, batch_size=2)  # several batches: the walk streams
    assert result == audit.VerifyResult(True, 5, head_hash=rows[-1].row_hash)
    assert result.describe() == "audit log: 5 rows checked, chain OK"


def test_empty_log_verifies():
    eng = create_engine("sqlite://")
    upgrade(eng)
    assert audit.verify(eng).ok and audit.verify(eng).rows_checked == 0


def test_hash_covers_every_field_canonically():
    fields = dict(
        prev_hash=audit.GENESIS_HASH, created_at=audit.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=audit.UTC),
        actor="a", action="fetch", subject_type="user", subject_id="u1", details={"x": 1, "y": [1]},
    )
    base = audit.row_hash(**fields)
    assert audit.row_hash(**{**fields, "details": {"y": [1], "x": 1}}) == base  # key order is irrelevant
    for name, other in [("actor", "b"), ("subject_id", None), ("details", {"x": 2, "y": [1]}), ("action", "delete")]:
        assert audit.row_hash(**{**fields, name: other}) != base, name


def test_unknown_action_and_non_json_details_are_refused(engine):
    with pytest.raises(ValueError, match="unknown audit action 'frobnicate'"):
        audit.append(engine, actor="x", action="frobnicate", subject_type="user")
    for details in ({"s": {1, 2}}, {"f": float("nan")}, {1: "x"}, {"b": b"raw"}):
        with pytest.raises(ValueError):
            audit.append(engine, actor="x", action="fetch", subject_type="user", details=details)
    assert audit.append(engine, actor="x", action=audit.AuditAction.KEY_ROTATION, subject_type="vault").action == "key_rotation"
    assert audit.verify(engine).rows_checked == 1


def test_details_holding_pii_are_refused_without_echoing_it(engine):
    pytest.importorskip("repazoo_assets.lib.privacy.pii")
    with pytest.raises(ValueError) as info:
        audit.append(
            engine, actor="x", action="export", subject_type="user", subject_id="u1",
            details={"note": "sent to jane.doe@example.com", "count": 3},
        )
    assert "details.note" in str(info.value) and "jane.doe" not in str(info.value)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.audit_log)).scalar_one() == 0


def test_append_joins_the_callers_transaction(engine):
    with engine.connect() as conn:
        audit.append(conn, actor="x", action="fetch", subject_type="user")
        conn.rollback()
        audit.append(conn, actor="x", action="fetch", subject_type="user")
        audit.append(conn, actor="x", action="redact", subject_type="user")
        conn.commit()
    assert audit.verify(engine).rows_checked == 2


def test_edited_row_is_named(engine):
    rows = _append_some(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(t.audit_log).where(t.audit_log.c.id == rows[2].id).values(details={"rows": 999}))
    result = audit.verify(engine, batch_size=2)
    assert (result.ok, result.broken_row_id, result.rows_checked) == (False, rows[2].id, 2)
    assert "edited" in result.reason


def test_deleted_middle_row_names_the_next_row(engine):
    rows = _append_some(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(t.audit_log).where(t.audit_log.c.id == rows[2].id))
    result = audit.verify(engine)
    assert (result.ok, result.broken_row_id) == (False, rows[3].id)
    assert "deleted or inserted" in result.reason


def test_verify_is_independent_of_the_session_time_zone(pg_url):
    eng = create_engine(pg_url)
    upgrade(eng)
    _append_some(eng, 3)
    with eng.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'Asia/Kolkata'"))
        assert audit.verify(conn).ok
    eng.dispose()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from repazoo_assets.lib.db import create_engine
    from repazoo_assets.lib.security import audit

    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    engine = create_engine(url)
    engine.connect().close()
    while time.time() < start:  # both writers begin together, so their appends interleave
        time.sleep(0.001)
    for i in range(50):
        audit.append(engine, actor=name, action="fetch", subject_type="user", subject_id=str(i), details={"i": i})
    """
)


def test_concurrent_writers_never_fork_the_chain(engine, db_url):
    start = time.time() + 3
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, db_url, name, str(start)], stderr=subprocess.PIPE, text=True)
        for name in ("writer-a", "writer-b")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.audit_log.c.actor, t.audit_log.c.prev_hash).order_by(t.audit_log.c.id)).all()
    assert len(rows) == 100
    assert len({r.prev_hash for r in rows}) == 100
    actors = [r.actor for r in rows]
    assert any(a != b for a, b in zip(actors, actors[1:])), "the writers did not interleave; the test proves nothing"
    result = audit.verify(engine, batch_size=7)
    assert (result.ok, result.rows_checked) == (True, 100)


# --- `repazoo audit verify` -----------------------------------------------------------------


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    for name in (*PRODUCTION_REQUIRED, "REPAZOO_ENV", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPAZOO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_audit_verify_cli(local_env):
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = create_engine(f"sqlite:///{local_env / 'app.db'}")
    rows = _append_some(engine, 4)

    ok = runner.invoke(main, ["audit", "verify", "--batch-size", "3"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == "audit log: 4 rows checked, chain OK"

    with engine.begin() as conn:
        conn.execute(sa.update(t.audit_log).where(t.audit_log.c.id == rows[1].id).values(actor="someone-else"))
    broken = runner.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 2 and "Traceback" not in broken.output
    lines = [line for line in broken.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith(f"repazoo: error: audit log: chain broken at row id {rows[1].id}: row_hash does not match")
    engine.dispose()
