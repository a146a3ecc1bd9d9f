"""A throwaway Postfix instance for the end-to-end bounce test.

It listens on 127.0.0.1:<free port>, accepts mail for any local part of
``localhost.test.invalid`` (``local_recipient_maps`` empty), so delivering to
an unknown user fails *after* the SMTP dialogue, and Postfix's own bounce
daemon sends the RFC 3464 DSN to the envelope sender. ``news.example.id`` is
a virtual mailbox domain: ``bounces+anything@news.example.id`` (recipient
delimiter ``+``) lands in the Maildir ``<root>/mail/bounces/``.

Postfix's master must start as root; the instance lives in its own folder
(queue, data, config, log) and is stopped and removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

LOCAL_DOMAIN = "localhost.test.invalid"
BOUNCE_DOMAIN = "news.example.id"

_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _binary() -> str | None:
    found = shutil.which("postfix")
    if found:
        return found
    return "/usr/sbin/postfix" if os.access("/usr/sbin/postfix", os.X_OK) else None


def unavailable() -> str | None:
    """Why this machine cannot run the instance (``None``: it can)."""
    if _binary() is None:
        return "postfix is not installed (scripts/system-deps.sh installs it as root)"
    if os.geteuid() != 0:
        return "Postfix's master process must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postfix:
    """Start with ``with Postfix() as mta:``; ``mta.port``, ``mta.maildir``."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its folders are 0700 and the postfix
        # user must reach the queue and the Maildir.
        self.root = Path(tempfile.mkdtemp(prefix="kf-postfix-"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.port = _free_port()
        self.maildir = self.root / "mail" / "bounces"
        self.log = self.root / "maillog"

    def _write_config(self) -> None:
        user = pwd.getpwnam("postfix")
        for sub in ("conf", "queue", "data", "mail"):
            (self.root / sub).mkdir()
        os.chown(self.root / "data", user.pw_uid, user.pw_gid)
        os.chown(self.root / "mail", user.pw_uid, user.pw_gid)
        (self.conf / "vmailbox").write_text(f"bounces@{BOUNCE_DOMAIN} bounces/\n")
        (self.conf / "master.cf").write_text(_MASTER.format(port=self.port))
        r = self.root
        (self.conf / "main.cf").write_text(
            "\n".join(
                [
                    "compatibility_level = 3.6",
                    f"queue_directory = {r}/queue",
                    f"data_directory = {r}/data",
                    "mail_owner = postfix",
                    "myhostname = mx.test.invalid",
                    "mydomain = test.invalid",
                    f"mydestination = {LOCAL_DOMAIN}",
                    "inet_interfaces = 127.0.0.1",
                    "inet_protocols = ipv4",
                    "mynetworks = 127.0.0.0/8",
                    "local_recipient_maps =",
                    "alias_maps =",
                    "alias_database =",
                    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
                    f"virtual_mailbox_domains = {BOUNCE_DOMAIN}",
                    f"virtual_mailbox_base = {r}/mail",
                    f"virtual_mailbox_maps = texthash:{self.conf}/vmailbox",
                    f"virtual_uid_maps = static:{user.pw_uid}",
                    f"virtual_gid_maps = static:{user.pw_gid}",
                    "recipient_delimiter = +",
                    f"maillog_file = {self.log}",
                    f"maillog_file_prefixes = {r}",
                    "smtputf8_enable = no",
                    "biff = no",
                    "",
                ]
            )
        )

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_binary() or "postfix", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def __enter__(self) -> Postfix:
        self._write_config()
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr} {self.log_text()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix is not listening on {self.port}: {self.log_text()}")

    def __exit__(self, *exc: object) -> None:
        self._postfix("stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def wait_for_bounce(self, timeout: float = 60.0) -> list[Path]:
        """The messages in the bounce Maildir's ``new/``, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = sorted((self.maildir / "new").glob("*")) if self.maildir.exists() else []
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no DSN reached {self.maildir}:\n{self.log_text()}")
