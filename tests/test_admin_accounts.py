"""Console accounts, passwords, sessions, login limits and their audit entries
(the use cases the CLI and the console share), on a real database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ConfigFactory
from kabarfeed.admin import accounts, audit, sessions
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.admin.auth import login
from kabarfeed.admin.passwords import verify_password
from kabarfeed.cli import main
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.store import Database
from kabarfeed.web.limits import SharedWindowLimiter

TTL = timedelta(days=3)
LIMITS = sessions.Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
PASSWORD = "kopi-tubruk-pagi"
CLI_ACTOR = Actor("cli:test", "cli")


@dataclass
class DbLimits:
    """The console's login limits over the shared-window limiter (real rows)."""

    db: Database
    ip_limit: int = 20
    account_limit: int = 5
    window: timedelta = timedelta(minutes=15)
    ip: SharedWindowLimiter = field(init=False)
    account: SharedWindowLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.ip = SharedWindowLimiter(self.db, "admin-ip", self.ip_limit, self.window)
        self.account = SharedWindowLimiter(
            self.db, "admin-account", self.account_limit, self.window
        )

    def per_ip(self, ip: str, now: datetime) -> int:
        return self.ip.hit(ip, now)

    def per_account(self, key: str, now: datetime) -> int:
        return self.account.hit(key, now)


def _active(
    db: Database, now: datetime, email: str = "redaksi@example.id", role: Role = Role.ADMIN
) -> accounts.Account:
    invite = accounts.add_account(db, email, role, CLI_ACTOR, now=now, ttl=TTL)
    done = accounts.set_password(db, invite.token, PASSWORD, now=now)
    assert done is not None
    return done


def test_invite_link_works_once_and_hash_is_argon2(db: Database, fixed_now: datetime) -> None:
    invite = accounts.add_account(
        db, "Redaksi@Example.ID", Role.EDITOR, CLI_ACTOR, now=fixed_now, ttl=TTL
    )
    assert invite.url("https://news.example.id/").startswith(
        "https://news.example.id/admin/set-password/"
    )
    assert accounts.invite_account(db, invite.token, fixed_now) == invite.account
    with pytest.raises(InputError, match="at least"):
        accounts.set_password(db, invite.token, "short", now=fixed_now)
    account = accounts.set_password(db, invite.token, PASSWORD, now=fixed_now)
    assert account is not None and account.has_password
    assert accounts.set_password(db, invite.token, PASSWORD, now=fixed_now) is None
    assert accounts.invite_account(db, invite.token, fixed_now) is None
    from sqlalchemy import select

    from kabarfeed.admin.tables import admin_accounts

    with db.connect() as conn:
        stored = conn.execute(select(admin_accounts.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD) and not verify_password(stored, PASSWORD + "x")


def test_expired_invite_is_refused_like_an_unknown_one(db: Database, fixed_now: datetime) -> None:
    invite = accounts.add_account(
        db, "a@example.id", Role.EDITOR, CLI_ACTOR, now=fixed_now, ttl=TTL
    )
    later = fixed_now + TTL
    assert accounts.invite_account(db, invite.token, later) is None
    assert accounts.set_password(db, invite.token, PASSWORD, now=later) is None
    assert accounts.set_password(db, "not-a-token", PASSWORD, now=fixed_now) is None


def test_login_success_failure_and_no_enumeration(db: Database, fixed_now: datetime) -> None:
    _active(db, fixed_now)
    limits = DbLimits(db)
    ok = login(db, limits, "REDAKSI@example.id", PASSWORD, ip="ip1", now=fixed_now)
    assert ok.account is not None and ok.account.email == "redaksi@example.id"
    wrong = login(db, limits, "redaksi@example.id", "wrong password!", ip="ip1", now=fixed_now)
    unknown = login(db, limits, "nobody@example.id", PASSWORD, ip="ip1", now=fixed_now)
    garbage = login(db, limits, "not an address", PASSWORD, ip="ip1", now=fixed_now)
    assert wrong == unknown == garbage == type(wrong)(None, 0)


def test_login_rate_limit_per_account_also_for_unknown_addresses(
    db: Database, fixed_now: datetime
) -> None:
    _active(db, fixed_now)
    limits = DbLimits(db, account_limit=3)
    for address in ("redaksi@example.id", "nobody@example.id"):
        for i in range(3):
            assert login(db, limits, address, "bad", ip=f"ip{i}", now=fixed_now).retry_after == 0
        refused = login(db, limits, address, PASSWORD, ip="fresh", now=fixed_now)
        assert refused.account is None and refused.retry_after > 0
    later = fixed_now + timedelta(minutes=16)
    assert login(db, limits, "redaksi@example.id", PASSWORD, ip="x", now=later).account


def test_login_rate_limit_per_ip_is_shared_between_processes(
    db_url: str, db: Database, fixed_now: datetime
) -> None:
    _active(db, fixed_now)
    other = Database(db_url)  # a second process's pool
    first, second = DbLimits(db, ip_limit=4), DbLimits(other, ip_limit=4)
    for i in range(2):
        login(db, first, f"u{i}@example.id", "bad", ip="1.2.3.4", now=fixed_now)
        login(other, second, f"v{i}@example.id", "bad", ip="1.2.3.4", now=fixed_now)
    refused = login(db, first, "redaksi@example.id", PASSWORD, ip="1.2.3.4", now=fixed_now)
    assert refused.account is None and refused.retry_after > 0
    assert login(db, first, "redaksi@example.id", PASSWORD, ip="5.6.7.8", now=fixed_now).account
    other.dispose()


def test_session_idle_and_absolute_timeouts(db: Database, fixed_now: datetime) -> None:
    account = _active(db, fixed_now)
    token, _ = sessions.start_session(db, account, now=fixed_now)
    now = fixed_now
    # Active use keeps it alive past the idle timeout (every 25 minutes)...
    while now + timedelta(minutes=25) < fixed_now + timedelta(hours=12):
        now += timedelta(minutes=25)
        assert sessions.load_session(db, token, now=now, limits=LIMITS) is not None
    # ...but not past the absolute one.
    late = fixed_now + timedelta(hours=12)
    assert sessions.load_session(db, token, now=late, limits=LIMITS) is None
    # Idle too long: gone for good (the row is deleted).
    token3, _ = sessions.start_session(db, account, now=fixed_now)
    idle = fixed_now + timedelta(minutes=30)
    assert sessions.load_session(db, token3, now=idle, limits=LIMITS) is None
    assert sessions.load_session(db, token3, now=fixed_now, limits=LIMITS) is None


def test_logout_and_logout_everywhere(db: Database, fixed_now: datetime) -> None:
    account = _active(db, fixed_now)
    a, _ = sessions.start_session(db, account, now=fixed_now)
    b, _ = sessions.start_session(db, account, now=fixed_now)
    sessions.end_session(db, a)
    assert sessions.load_session(db, a, now=fixed_now, limits=LIMITS) is None
    assert sessions.load_session(db, b, now=fixed_now, limits=LIMITS) is not None
    c, _ = sessions.start_session(db, account, now=fixed_now)
    ended = sessions.end_all_sessions(db, account, Actor.console(account.email), now=fixed_now)
    assert ended == 2
    assert sessions.load_session(db, b, now=fixed_now, limits=LIMITS) is None
    assert sessions.load_session(db, c, now=fixed_now, limits=LIMITS) is None
    # A session created from the stale account object (old generation) is refused.
    stale, _ = sessions.start_session(db, account, now=fixed_now)
    assert sessions.load_session(db, stale, now=fixed_now, limits=LIMITS) is None
    entry = audit.search(db, AuditFilter(action="account.logout_all"))[0]
    assert entry.actor == account.email and entry.after == {"sessions_ended": 2}


def test_reset_and_remove_end_sessions(db: Database, fixed_now: datetime) -> None:
    account = _active(db, fixed_now)
    token, _ = sessions.start_session(db, account, now=fixed_now)
    invite = accounts.reset_account(db, account.email, CLI_ACTOR, now=fixed_now, ttl=TTL)
    assert sessions.load_session(db, token, now=fixed_now, limits=LIMITS) is None
    assert login(db, DbLimits(db), account.email, PASSWORD, ip="i", now=fixed_now).account is None
    fresh = accounts.set_password(db, invite.token, "a-new-password-1", now=fixed_now)
    assert fresh is not None
    token, _ = sessions.start_session(db, fresh, now=fixed_now)
    accounts.remove_account(db, account.email, CLI_ACTOR, now=fixed_now)
    assert sessions.load_session(db, token, now=fixed_now, limits=LIMITS) is None
    with pytest.raises(NotFoundError):
        accounts.remove_account(db, account.email, CLI_ACTOR, now=fixed_now)


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_commands_and_their_audit_entries(
    tmp_path: Path, make_config: ConfigFactory, fixed_now: datetime
) -> None:
    config = make_config()
    code, out, _ = _cli(tmp_path, "admin", "add", "Pemred@Example.ID", "--role", "admin")
    assert code == 0, out
    link = next(line.strip() for line in out.splitlines() if "/admin/set-password/" in line)
    assert link.startswith("https://news.example.id/admin/set-password/")
    code, _, err = _cli(tmp_path, "admin", "add", "pemred@example.id")
    assert code != 0 and "already exists" in err
    code, _, err = _cli(tmp_path, "admin", "add", "x@example.id", "--role", "owner")
    assert code != 0
    code, out, _ = _cli(tmp_path, "admin", "list")
    assert "pemred@example.id\tadmin\tinvited" in out.replace("Pemred", "pemred")
    code, out, _ = _cli(tmp_path, "admin", "role", "pemred@example.id", "editor")
    assert code == 0 and "now editor" in out
    code, out, _ = _cli(tmp_path, "admin", "reset", "pemred@example.id")
    assert code == 0 and "/admin/set-password/" in out and link not in out
    code, out, _ = _cli(tmp_path, "admin", "remove", "pemred@example.id")
    assert code == 0
    code, _, err = _cli(tmp_path, "admin", "remove", "pemred@example.id")
    assert code == 3 and "no console account" in err
    code, out, _ = _cli(tmp_path, "config", "check")
    assert code == 0 and out.startswith("ok ")
    db = Database(config.storage.url)
    entries = audit.search(db, AuditFilter())
    db.dispose()
    assert [e.action for e in entries] == [
        "account.remove",
        "account.reset",
        "account.role",
        "account.add",
    ]
    assert all(e.via == "cli" and e.actor.startswith("cli:") for e in entries)
    assert entries[2].before == "admin" and entries[2].after == "editor"
    assert entries[3].after == {"email": "Pemred@example.id", "role": "admin"}
