"""Storage: migrations, append-only records, repositories and the audit chain, on SQLite and
PostgreSQL alike (every test here runs once per database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from ketascreen.core.model import Assessment, Intake
from ketascreen.services import Screener
from ketascreen.storage import (
    Actor,
    CdsFeedbackLog,
    Conflict,
    Database,
    Drafts,
    NewScreening,
    NotFound,
    ScreeningFilter,
    Screenings,
    Sessions,
    StorageError,
    Tokens,
    Users,
    data_dir_from,
    database_url_from,
    redact_url,
    verify,
)
from ketascreen.storage.models import Base
from ketascreen.testing import BASELINE_DATE, merge_intake

ACTOR = Actor("test", None, "127.0.0.1")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener()


def assessed(screener: Screener, fragment: dict[str, object] | None = None
             ) -> tuple[Intake, Assessment]:
    intake = screener.parse(merge_intake(fragment), today=BASELINE_DATE)
    return intake, screener.screen(intake, today=BASELINE_DATE)


def store(db: Database, screener: Screener, fragment: dict[str, object] | None = None,
          **kwargs: object) -> str:
    intake, a = assessed(screener, fragment)
    with db.write() as s:
        record, created = Screenings(s).create(
            NewScreening.from_assessment(intake, a, source="api", **kwargs), actor=ACTOR)
    assert created
    return record.id


# --------------------------------------------------------------------------------------------
# Configuration and migrations


def test_database_url_resolution(tmp_path: Path) -> None:
    assert database_url_from("sqlite:///x.db", {"KETASCREEN_DATABASE_URL": "postgresql://a/b"}
                             ) == "sqlite:///x.db"
    assert database_url_from(None, {"KETASCREEN_DATABASE_URL": "postgres://u:pw@h/db"}) == (
        "postgresql+psycopg://u:pw@h/db")
    assert database_url_from(None, {"KETASCREEN_DATA_DIR": str(tmp_path)}) == (
        f"sqlite:///{tmp_path / 'ketascreen.db'}")
    assert data_dir_from(None, {}) == (Path.cwd() / "data").resolve()
    assert redact_url("postgresql+psycopg://user:secret@host/db") == (
        "postgresql+psycopg://user:***@host/db")


def test_refuses_unusable_urls(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unsupported database"):
        Database("mysql://u@h/db")
    with pytest.raises(StorageError, match="in-memory"):
        Database("sqlite://")
    with pytest.raises(StorageError, match="not valid"):
        Database("::not a url::")


def test_upgrade_is_idempotent_and_matches_the_models(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db.upgrade()
    db.upgrade()
    assert db.current_revision() == db.head_revision() == "0001"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_uses_wal(db: Database, db_kind: str) -> None:
    if db_kind != "sqlite":
        assert db.dialect == "postgresql"
        return
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.parametrize("table", ["screenings", "reviews", "shares", "audit_log",
                                   "cds_feedback"])
def test_records_of_care_are_append_only(db: Database, screener: Screener, table: str) -> None:
    sid = store(db, screener)
    with db.write() as s:
        user = Users(s).create("c@clinic.test", "clinician", PASSWORD, actor=ACTOR)
        Screenings(s).add_review(sid, user, outcome="accepted", decision="eligible", reason=None,
                                 actor=ACTOR)
        Screenings(s).share(sid, contact_name="A", contact=None, message=None, actor=ACTOR)
        CdsFeedbackLog(s).append(service_id="svc", idempotency_key="k", payload={},
                                 actor=ACTOR)
    for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"), db.write() as s:
            s.execute(text(statement))
    with db.read() as s:
        assert s.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() >= 1


# --------------------------------------------------------------------------------------------
# Screenings


def test_create_and_read_back(db: Database, screener: Screener) -> None:
    intake, a = assessed(screener, {"id": "chart-77"})
    with db.write() as s:
        record, created = Screenings(s).create(
            NewScreening.from_assessment(intake, a, source="api"), actor=ACTOR)
    assert created and record.reference == "chart-77"
    with db.read() as s:
        again = Screenings(s).get(record.id)
    assert again is not None
    assert Assessment.model_validate_json(again.assessment_json) == a
    assert again.intake()["id"] == "chart-77"
    assert again.kb_sha256 == a.knowledge_base.sha256
    assert again.protocol_sha256 == a.protocol.sha256
    assert again.status == "awaiting_review"
    assert again.created_at.tzinfo is not None


def test_idempotency_key_stores_once(db: Database, screener: Screener) -> None:
    intake, a = assessed(screener)
    new = NewScreening.from_assessment(intake, a, source="api", idempotency_key="same")
    with db.write() as s:
        first, created1 = Screenings(s).create(new, actor=ACTOR)
    with db.write() as s:
        second, created2 = Screenings(s).create(new, actor=ACTOR)
    assert created1 and not created2 and first.id == second.id
    with db.read() as s:
        assert Screenings(s).count() == 1


def test_rescreen_appends_and_links(db: Database, screener: Screener) -> None:
    first = store(db, screener)
    second = store(db, screener, {"vitals": {"systolic": 150, "diastolic": 95}},
                   previous_id=first)
    with db.read() as s:
        old = Screenings(s).get(first)
        new = Screenings(s).get(second)
    assert old is not None and new is not None
    assert old.later_ids == (second,) and new.previous_id == first
    assert old.decision != new.decision  # the old one is untouched
    intake, a = assessed(screener)
    dangling = NewScreening.from_assessment(intake, a, source="api", previous_id="0" * 32)
    with pytest.raises(NotFound), db.write() as s:
        Screenings(s).create(dangling, actor=ACTOR)


def test_search_filters_sorts_and_pages(db: Database, screener: Screener) -> None:
    ok = store(db, screener, {"id": "alpha-1"})
    urgent = store(db, screener, {"id": "beta-2", "symptoms": {"suicidal": "plan_or_intent"}})
    private = store(db, screener, {"id": "gamma-3"}, shared=False)
    with db.read() as s:
        repo = Screenings(s)
        everything = repo.search(ScreeningFilter())
        assert [r.id for r in everything.items] == [urgent, ok]  # urgent first; private hidden
        assert everything.total == 2
        assert repo.search(ScreeningFilter(include_private=True)).total == 3
        assert [r.id for r in repo.search(ScreeningFilter(urgent=True)).items] == [urgent]
        assert [r.id for r in repo.search(ScreeningFilter(decisions=("eligible",))).items] == [ok]
        assert [r.id for r in repo.search(ScreeningFilter(text="ALPHA")).items] == [ok]
        assert [r.id for r in repo.search(ScreeningFilter(text=urgent[:6])).items] == [urgent]
        assert repo.search(ScreeningFilter(text="%")).total == 0  # LIKE wildcards are escaped
        page = repo.search(ScreeningFilter(limit=1, offset=1))
        assert page.total == 2 and [r.id for r in page.items] == [ok]
        today = datetime.now(UTC).date()
        assert repo.search(ScreeningFilter(created_from=today, created_to=today)).total == 2
        assert repo.search(ScreeningFilter(created_to=today - timedelta(days=1))).total == 0
        assert [r.id for r in repo.search(ScreeningFilter(sort="oldest")).items] == [ok, urgent]
    with db.write() as s:
        repo = Screenings(s)
        user = Users(s).create("c@clinic.test", "clinician", PASSWORD, actor=ACTOR)
        repo.add_review(ok, user, outcome="changed", decision="defer", reason="BP on the day",
                        actor=ACTOR)
        repo.share(private, contact_name=None, contact=None, message=None, actor=ACTOR)
    with db.read() as s:
        repo = Screenings(s)
        reviewed = repo.search(ScreeningFilter(status="reviewed")).items
        assert [r.id for r in reviewed] == [ok]
        assert reviewed[0].latest_review is not None
        assert reviewed[0].latest_review.decision == "defer"
        waiting = {r.id for r in repo.search(ScreeningFilter(status="awaiting_review")).items}
        assert waiting == {urgent, private}


def test_reviews_are_appended_and_validated(db: Database, screener: Screener) -> None:
    sid = store(db, screener)
    with db.write() as s:
        users = Users(s)
        clinician = users.create("c@clinic.test", "clinician", PASSWORD, actor=ACTOR)
        viewer = users.create("v@clinic.test", "viewer", PASSWORD, actor=ACTOR)
    with db.write() as s:
        repo = Screenings(s)
        with pytest.raises(PermissionError):
            repo.add_review(sid, viewer, outcome="accepted", decision="eligible", reason=None,
                            actor=ACTOR)
        with pytest.raises(ValueError, match="reason"):
            repo.add_review(sid, clinician, outcome="changed", decision="defer", reason="  ",
                            actor=ACTOR)
        with pytest.raises(ValueError, match="keeps"):
            repo.add_review(sid, clinician, outcome="accepted", decision="defer", reason=None,
                            actor=ACTOR)
        with pytest.raises(NotFound):
            repo.add_review("f" * 32, clinician, outcome="accepted", decision="eligible",
                            reason=None, actor=ACTOR)
        repo.add_review(sid, clinician, outcome="accepted", decision="eligible", reason=None,
                        actor=ACTOR)
        repo.add_review(sid, clinician, outcome="changed", decision="needs_evaluation",
                        reason="new history from the GP", actor=ACTOR)
    with db.read() as s:
        record = Screenings(s).get(sid)
    assert record is not None
    assert [r.outcome for r in record.reviews] == ["accepted", "changed"]
    assert record.latest_review is not None and record.latest_review.decision == (
        "needs_evaluation")
    assert record.decision == "eligible"  # the assessment itself is never changed


def test_patient_token_opens_only_its_screening(db: Database, screener: Screener) -> None:
    from ketascreen.storage.credentials import new_token, token_digest

    mine, other = new_token(), new_token()
    a = store(db, screener, patient_token_hash=token_digest(mine), shared=False)
    b = store(db, screener, patient_token_hash=token_digest(other), shared=False)
    with db.read() as s:
        repo = Screenings(s)
        found_a, found_b = repo.by_patient_token(mine), repo.by_patient_token(other)
        assert found_a is not None and found_a.id == a
        assert found_b is not None and found_b.id == b
        assert repo.by_patient_token(mine[:-1] + ("A" if mine[-1] != "A" else "B")) is None
        assert repo.by_patient_token("") is None
    assert len(mine) >= 43  # 32 random bytes, URL-safe: 256 bits


# --------------------------------------------------------------------------------------------
# Accounts, tokens, sessions, drafts, CDS feedback


def test_users_create_authenticate_and_lock(db: Database) -> None:
    with db.write() as s:
        user = Users(s).create("  Dr.Who@Clinic.Test ", "clinician", PASSWORD, actor=ACTOR)
        assert user.email == "dr.who@clinic.test"
        with pytest.raises(Conflict):
            Users(s).create("dr.who@clinic.test", "viewer", PASSWORD, actor=ACTOR)
        with pytest.raises(ValueError, match="role"):
            Users(s).create("x@clinic.test", "root", PASSWORD, actor=ACTOR)
        with pytest.raises(ValueError, match="12 characters"):
            Users(s).create("y@clinic.test", "viewer", "short", actor=ACTOR)
    now = datetime.now(UTC)
    for _ in range(2):
        with db.write() as s:
            assert Users(s).authenticate(user.email, "wrong password!", actor=ACTOR,
                                         max_failures=3, now=now).reason == "bad_credentials"
    with db.write() as s:
        assert Users(s).authenticate(user.email, "wrong password!", actor=ACTOR,
                                     max_failures=3, now=now).reason == "locked"
    with db.write() as s:  # locked: even the right password is refused
        assert Users(s).authenticate(user.email, PASSWORD, actor=ACTOR, max_failures=3,
                                     now=now).reason == "locked"
    with db.write() as s:  # after the lockout
        ok = Users(s).authenticate(user.email, PASSWORD, actor=ACTOR, max_failures=3,
                                   now=now + timedelta(minutes=16))
        assert ok.reason == "ok" and ok.user is not None
    with db.write() as s:
        assert Users(s).authenticate("nobody@clinic.test", PASSWORD, actor=ACTOR
                                     ).reason == "bad_credentials"
        Users(s).set_disabled(user.email, True, actor=ACTOR)
    with db.write() as s:
        assert Users(s).authenticate(user.email, PASSWORD, actor=ACTOR).reason == "disabled"
    with db.read() as s:
        stored = s.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_tokens_are_hashed_and_revocable(db: Database) -> None:
    with db.write() as s:
        user = Users(s).create("api@clinic.test", "clinician", PASSWORD, actor=ACTOR)
        token, record = Tokens(s).create(user, actor=ACTOR)
    assert token.startswith("ks_") and len(token) > 40 and record.prefix == token[:10]
    with db.read() as s:
        found = Tokens(s).authenticate(token)
        assert found is not None and found[0].id == user.id
        assert Tokens(s).authenticate(token + "x") is None
        assert Tokens(s).authenticate("Bearer") is None
        assert token not in str(s.execute(text("SELECT token_hash FROM api_tokens")).all())
    with db.write() as s:
        assert Tokens(s).revoke_all(user, actor=ACTOR) == 1
    with db.read() as s:
        assert Tokens(s).authenticate(token) is None


def test_sessions_expire(db: Database) -> None:
    with db.write() as s:
        user = Users(s).create("s@clinic.test", "viewer", PASSWORD, actor=ACTOR)
        token = Sessions(s).create(user, hours=1)
    with db.read() as s:
        found = Sessions(s).user_for(token)
        assert found is not None and found.id == user.id
        assert Sessions(s).user_for(token, now=datetime.now(UTC) + timedelta(hours=2)) is None
    with db.write() as s:
        Sessions(s).end(token)
    with db.read() as s:
        assert Sessions(s).user_for(token) is None


def test_drafts_keep_answers_then_forget_them(db: Database) -> None:
    with db.write() as s:
        token = Drafts(s).create(hours=1)
        Drafts(s).save(token, {"age": 40, "reasons": ["ptsd"]}, frozenset({"suicide_crisis"}))
    with db.read() as s:
        draft = Drafts(s).get(token)
    assert draft is not None and draft.answers == {"age": 40, "reasons": ["ptsd"]}
    assert draft.alerts_seen == {"suicide_crisis"}
    with db.write() as s:
        Drafts(s).complete(token, "a" * 32, "result-token")
    with db.read() as s:
        done = Drafts(s).get(token)
        assert done is not None and done.answers == {} and done.result_token == "result-token"
        assert Drafts(s).get(token, now=datetime.now(UTC) + timedelta(hours=2)) is None
    with db.write() as s:
        assert Drafts(s).purge_expired(now=datetime.now(UTC) + timedelta(hours=2)) == 1


def test_cds_feedback_is_idempotent_and_audited(db: Database) -> None:
    with db.write() as s:
        log = CdsFeedbackLog(s)
        first, created = log.append(service_id="ketascreen-order-sign", idempotency_key="fb-1",
                                    payload={"outcome": "overridden"}, actor=ACTOR,
                                    card_id="card-1", outcome="overridden")
        again, created_again = log.append(service_id="ketascreen-order-sign",
                                          idempotency_key="fb-1", payload={"other": 1},
                                          actor=ACTOR)
    assert created and not created_again and again.id == first.id
    assert again.payload == {"outcome": "overridden"}
    with db.read() as s:
        assert [r.idempotency_key for r in CdsFeedbackLog(s).recent()] == ["fb-1"]
        actions = s.execute(text("SELECT action FROM audit_log")).scalars().all()
    assert actions.count("cds_feedback") == 1


# --------------------------------------------------------------------------------------------
# The audit chain


def _tamper(db: Database, db_kind: str, table: str, statement: str) -> None:
    """Change a record behind the application's back (dropping the append-only guard)."""
    with db.engine.begin() as conn:
        if db_kind == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            conn.exec_driver_sql(statement)
            conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            for what in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER {table}_no_{what}")
            conn.exec_driver_sql(statement)


def _populated(db: Database, screener: Screener) -> str:
    sid = store(db, screener)
    with db.write() as s:
        user = Users(s).create("c@clinic.test", "clinician", PASSWORD, actor=ACTOR)
        Screenings(s).add_review(sid, user, outcome="changed", decision="defer",
                                 reason="reason", actor=ACTOR)
    store(db, screener)
    return sid


def test_audit_verify_passes_on_an_honest_log(db: Database, screener: Screener) -> None:
    _populated(db, screener)
    with db.read() as s:
        report = verify(s)
    assert report.ok, report.problems
    assert report.entries == 4 and report.screenings == 2 and report.reviews == 1


@pytest.mark.parametrize(("table", "statement", "expected"), [
    ("audit_log", "UPDATE audit_log SET actor = 'someone else' WHERE seq = 2",
     "entry 2: content does not match"),
    ("audit_log", "DELETE FROM audit_log WHERE seq = 2", "expected sequence number 2"),
    ("audit_log", "DELETE FROM audit_log WHERE seq = 4", "the chain ends at entry 3"),
    ("screenings", "UPDATE screenings SET assessment_json = replace(assessment_json, "
                   "'\"eligible\"', '\"defer\"')", "content changed after it was stored"),
    ("reviews", "UPDATE reviews SET reason = 'edited'", "content changed after it was signed"),
])
def test_audit_verify_detects_tampering(db: Database, db_kind: str, screener: Screener,
                                        table: str, statement: str, expected: str) -> None:
    _populated(db, screener)
    _tamper(db, db_kind, table, statement)
    with db.read() as s:
        report = verify(s)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems


def test_audit_entries_hold_no_patient_data(db: Database, screener: Screener) -> None:
    store(db, screener, {"id": "Jane Q. Patient", "medications": [{"name": "sertraline"}]})
    with db.read() as s:
        rows = s.execute(text("SELECT actor, action, detail_json FROM audit_log")).all()
    dump = repr(rows)
    assert "Jane" not in dump and "sertraline" not in dump
    assert date.today().year > 2000  # the clock is sane (timestamps above are UTC-aware)
