"""Console accounts, passwords, sessions, login limits and their audit entries
(the use cases the CLI and the console share), on a real database."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ConfigFactory
from kabarfeed.admin import accounts, audit, sessions
from kabarfeed.admin.accounts import Role
from kabarfeed.admin.audit import Actor, AuditFilter
from kabarfeed.admin.auth import LoginLimits, LoginResult, account_key, login
from kabarfeed.admin.passwords import verify_password
from kabarfeed.admin.throttle import FailureWindow, wait_seconds
from kabarfeed.cli import main
from kabarfeed.errors import InputError, NotFoundError
from kabarfeed.store import Database

TTL = timedelta(days=3)
LIMITS = sessions.Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
PASSWORD = "kopi-tubruk-pagi"
CLI_ACTOR = Actor("cli:test", "cli")


def limits_for(
    db: Database, ip: str, email: str, *, ip_limit: int = 20, account_limit: int = 5
) -> LoginLimits:
    """The console's windows (real ``state`` rows) keyed as the web layer keys them."""
    window = timedelta(minutes=15)
    return LoginLimits(
        FailureWindow(db, "ip", ip_limit, window),
        FailureWindow(db, "account", account_limit, window),
        ip,
        account_key(email),
    )


def attempt(
    db: Database, email: str, password: str, *, ip: str, now: datetime, **limits: int
) -> LoginResult:
    return login(db, limits_for(db, ip, email, **limits), email, password, now=now)


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
    ok = attempt(db, "REDAKSI@example.id", PASSWORD, ip="ip1", now=fixed_now)
    assert ok.account is not None and ok.account.email == "redaksi@example.id"
    wrong = attempt(db, "redaksi@example.id", "wrong password!", ip="ip1", now=fixed_now)
    unknown = attempt(db, "nobody@example.id", PASSWORD, ip="ip1", now=fixed_now)
    garbage = attempt(db, "not an address", PASSWORD, ip="ip1", now=fixed_now)
    assert wrong == unknown == garbage == LoginResult(None, 0)


def test_only_failures_count_and_a_success_clears_the_account(
    db: Database, fixed_now: datetime
) -> None:
    _active(db, fixed_now)
    for _ in range(10):  # many devices logging in: never locked out
        assert attempt(db, "redaksi@example.id", PASSWORD, ip="a", now=fixed_now, account_limit=3)
    for _ in range(2):
        attempt(db, "redaksi@example.id", "typo", ip="a", now=fixed_now, account_limit=3)
    assert attempt(db, "redaksi@example.id", PASSWORD, ip="a", now=fixed_now, account_limit=3)
    for _ in range(2):  # the success cleared the two failures before it
        attempt(db, "redaksi@example.id", "typo", ip="a", now=fixed_now, account_limit=3)
    assert attempt(db, "redaksi@example.id", PASSWORD, ip="a", now=fixed_now, account_limit=3)


def test_login_rate_limit_per_account_also_for_unknown_addresses(
    db: Database, fixed_now: datetime
) -> None:
    _active(db, fixed_now)
    for address in ("redaksi@example.id", "nobody@example.id"):
        for i in range(3):
            result = attempt(db, address, "bad", ip=f"ip{i}", now=fixed_now, account_limit=3)
            assert result.retry_after == 0
        refused = attempt(db, address, PASSWORD, ip="fresh", now=fixed_now, account_limit=3)
        assert refused.account is None and refused.retry_after == 15 * 60
    later = fixed_now + timedelta(minutes=15, seconds=1)
    assert attempt(db, "redaksi@example.id", PASSWORD, ip="x", now=later, account_limit=3).account


def test_login_rate_limit_per_ip_is_shared_between_processes(
    db_url: str, db: Database, fixed_now: datetime
) -> None:
    _active(db, fixed_now)
    other = Database(db_url)  # a second process's pool
    for i in range(2):
        attempt(db, f"u{i}@example.id", "bad", ip="1.2.3.4", now=fixed_now, ip_limit=4)
        attempt(other, f"v{i}@example.id", "bad", ip="1.2.3.4", now=fixed_now, ip_limit=4)
    refused = attempt(db, "redaksi@example.id", PASSWORD, ip="1.2.3.4", now=fixed_now, ip_limit=4)
    assert refused.account is None and refused.retry_after > 0
    assert attempt(db, "redaksi@example.id", PASSWORD, ip="5.6.7.8", now=fixed_now, ip_limit=4)
    other.dispose()


def test_wait_seconds_is_the_window_arithmetic() -> None:
    assert wait_seconds([], 1000.0, 3, 60) == 0
    assert wait_seconds([990.0, 995.0], 1000.0, 3, 60) == 0
    assert wait_seconds([930.0, 990.0, 995.0, 999.0], 1000.0, 3, 60) == 50
    assert wait_seconds([941.0, 942.0, 943.0], 1000.0, 3, 60) == 1
    assert wait_seconds([940.0, 941.0, 942.0], 1000.0, 3, 60) == 0  # 940 left the window


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
    assert attempt(db, account.email, PASSWORD, ip="i", now=fixed_now).account is None
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
