"""The configuration editor (admins only): the file in force in a textarea
(raw mode) or a few keys in a form (kept comments), a check with the
problems at their key path and line plus the diff, Apply (atomic write, then
the service's own reload), and the history with one-click rollback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from kabarfeed.admin import configedit
from kabarfeed.admin.audit import Actor
from kabarfeed.admin.sessions import Session
from kabarfeed.errors import ConfigError, NotFoundError
from kabarfeed.web.admin.core import PREFIX, Console, Notice, field_of, form_of

log = logging.getLogger(__name__)


def _path(console: Console) -> Path:
    if console.config.path is None:
        raise NotFoundError("this process was started without a config file")
    return console.config.path


async def _page(
    console: Console,
    request: Request,
    session: Session,
    *,
    text: str,
    base: str,
    status: int = 200,
    checked: configedit.Checked | None = None,
    notices: tuple[Notice, ...] = (),
    mode: str = "raw",
) -> Response:
    path = _path(console)
    current = await run_in_threadpool(configedit.read_text, path)
    versions = await run_in_threadpool(configedit.history, console.db)
    context: dict[str, Any] = {
        "text": text,
        "base": base,
        "mode": mode,
        "file_name": path.name,
        "fields": configedit.FIELDS,
        "values": configedit.field_values(text),
        "versions": versions,
        "current_sha": configedit.sha256(current),
        "checked": checked,
        "diff": [],
        "changes": [],
        "restart": [],
    }
    if checked is not None:
        context["diff"] = configedit.unified_diff(current, text, path.name)
        if checked.config is not None:
            changes, restart = configedit.running_changes(console.config, checked.config)
            context["changes"], context["restart"] = changes, restart
    return console.render(
        request,
        "config.html.j2",
        "config_title",
        session=session,
        status=status,
        notices=notices,
        **context,
    )


async def config_page(console: Console, request: Request, session: Session) -> Response:
    """GET /admin/config: the file now, the form, the history."""
    text = await run_in_threadpool(configedit.read_text, _path(console))
    notices: tuple[Notice, ...] = ()
    done = request.query_params.get("done", "")
    if done in ("applied", "applied_pending"):
        notices = (Notice(console.text(request, done)),)
    elif done == "rolled_back" and request.query_params.get("id", "").isdigit():
        notices = (Notice(console.text(request, "rolled_back", id=request.query_params["id"])),)
    restart = request.query_params.get("restart", "")
    if restart:
        notices += (Notice(console.text(request, "restart_needed", keys=restart), "error"),)
    mode = "form" if request.query_params.get("mode") == "form" else "raw"
    return await _page(
        console,
        request,
        session,
        text=text,
        base=configedit.sha256(text),
        notices=notices,
        mode=mode,
    )


def _candidate(console: Console, request: Request, current: str) -> tuple[str, str]:
    """The edited text from the posted form (raw text, or form fields applied
    to the file with tomlkit) and the mode it came from."""
    form = form_of(request)
    if field_of(form, "mode") == "form":
        values = {f.name: field_of(form, f.name) for f in configedit.FIELDS}
        return configedit.apply_fields(current, values), "form"
    raw = form.get("text")
    return (raw if isinstance(raw, str) else "").replace("\r\n", "\n"), "raw"


async def config_check(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/config/check: validate, diff, changes; nothing is written."""
    path = _path(console)
    current = await run_in_threadpool(configedit.read_text, path)
    base = field_of(form_of(request), "base") or configedit.sha256(current)
    text, mode = _candidate(console, request, current)
    checked = await run_in_threadpool(configedit.check_text, text, path)
    notice = Notice(
        console.text(request, "valid" if checked.valid else "invalid"),
        "ok" if checked.valid else "error",
    )
    return await _page(
        console,
        request,
        session,
        text=text,
        base=base,
        checked=checked,
        status=200 if checked.valid else 400,
        notices=(notice,),
        mode=mode,
    )


async def _apply(
    console: Console,
    request: Request,
    session: Session,
    text: str,
    *,
    base: str | None,
    rollback_of: int | None = None,
) -> Response:
    path = _path(console)
    actor = Actor.console(session.account.email)
    now = console.clock()
    try:
        if rollback_of is None:
            version, checked = await run_in_threadpool(
                lambda: configedit.apply_text(console.db, path, text, actor, base_sha=base, now=now)
            )
        else:
            version, checked = await run_in_threadpool(
                lambda: configedit.rollback(console.db, path, rollback_of, actor, now=now)
            )
    except configedit.ConfigConflict:
        return await _page(
            console,
            request,
            session,
            text=text,
            base=base or "",
            status=409,
            notices=(Notice(console.text(request, "conflict"), "error"),),
        )
    except ConfigError:
        checked = await run_in_threadpool(configedit.check_text, text, path)
        notice = Notice(console.text(request, "invalid"), "error")
        return await _page(
            console,
            request,
            session,
            text=text,
            base=base or "",
            checked=checked,
            status=400,
            notices=(notice,),
        )
    log.info("config version #%d applied from the console by %s", version.id, actor.name)
    restart: list[str] = []
    if checked.config is not None:
        restart = configedit.running_changes(console.config, checked.config)[1]
    reload = getattr(request.app.state, "reload", None) or console.reload
    done = "applied_pending"
    if reload is not None:
        if not await reload("console"):
            return await _page(
                console,
                request,
                session,
                text=text,
                base=configedit.sha256(text),
                status=500,
                notices=(Notice(console.text(request, "reload_failed"), "error"),),
            )
        done = "applied"
    shown = version.id
    if rollback_of is not None:
        done, shown = "rolled_back", rollback_of
    target = f"{PREFIX}/config?done={done}&id={shown}"
    if restart:
        target += "&restart=" + ",".join(restart)
    return RedirectResponse(target, status_code=303)


async def config_apply(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/config/apply: validate again, write atomically, reload."""
    path = _path(console)
    current = await run_in_threadpool(configedit.read_text, path)
    form = form_of(request)
    text, _ = _candidate(console, request, current)
    return await _apply(console, request, session, text, base=field_of(form, "base") or None)


async def config_rollback(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/config/rollback/{id}: apply an earlier version again."""
    version_id = int(request.path_params["id"])
    try:
        old = await run_in_threadpool(configedit.get_version, console.db, version_id)
    except NotFoundError:
        message = console.text(request, "not_found")
        return console.render(
            request, "message.html.j2", "not_found", session=session, status=404, message=message
        )
    return await _apply(console, request, session, old.text, base=None, rollback_of=version_id)


async def config_validate(console: Console, request: Request, session: Session) -> Response:
    """POST /admin/config/validate: the check as JSON, for live validation while
    typing (``{"valid": bool, "problems": [{"key", "message", "line"}]}``)."""
    path = _path(console)
    raw = form_of(request).get("text")
    text = (raw if isinstance(raw, str) else "").replace("\r\n", "\n")
    checked = await run_in_threadpool(configedit.check_text, text, path)
    return JSONResponse(
        {
            "valid": checked.valid,
            "label": console.text(request, "valid" if checked.valid else "invalid"),
            "problems": [
                {
                    "key": p.key,
                    "message": f"{path.name}: {p.text}",
                    "line": p.line,
                    "where": console.text(request, "line", line=p.line) if p.line else "",
                }
                for p in checked.problems
            ],
        },
        headers={"Cache-Control": "no-store"},
    )
