"""A small in-process IMAP4rev1 server for the bounce mailbox tests.

Enough of RFC 3501 (+ MOVE, UIDPLUS, STARTTLS) for a real client
(:mod:`imapclient` over :mod:`imaplib`): CAPABILITY, STARTTLS, LOGIN, SELECT,
UID SEARCH, UID FETCH with literals, LIST, CREATE, UID MOVE, UID COPY,
UID STORE, EXPUNGE, UID EXPUNGE, NOOP, LOGOUT. It records whether each login
came over TLS, so a test can prove the password never crossed in clear text.
"""

from __future__ import annotations

import re
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import tls_support

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\()|(\))|([^\s()"]+)')


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 and its key, as PEM files."""
    return tls_support.self_signed(folder, "imap", "localhost")


@dataclass
class Mailbox:
    """The server's folders: name → list of (uid, message, flags)."""

    folders: dict[str, list[tuple[int, bytes, set[str]]]] = field(
        default_factory=lambda: {"INBOX": []}
    )
    next_uid: int = 1
    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, data: bytes, folder: str = "INBOX") -> int:
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            self.folders.setdefault(folder, []).append((uid, data, set()))
            return uid


def _tokens(line: bytes) -> list[Any]:
    out: list[Any] = []
    stack: list[list[Any]] = [out]
    for quoted, open_, close, atom in _TOKEN.findall(line):
        if open_:
            stack[-1].append([])
            stack.append(stack[-1][-1])
        elif close:
            stack.pop()
        elif atom:
            stack[-1].append(atom.decode())
        else:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", quoted).decode())
    return out


def _uids(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        if ":" in part:
            lo, hi = part.split(":")
            out.update(range(int(lo), (10**9 if hi == "*" else int(hi)) + 1))
        else:
            out.add(int(part))
    return out


def _fetch_line(seq: int, uid: int, data: bytes, items: list[str]) -> bytes:
    """One FETCH response: UID, RFC822.SIZE, and at most one literal (last)."""
    parts = [f"UID {uid}".encode()]
    literal: tuple[str, bytes] | None = None
    for item in items:
        if item == "RFC822.SIZE":
            parts.append(f"RFC822.SIZE {len(data)}".encode())
        elif item in ("BODY.PEEK[]", "BODY[]"):
            literal = ("BODY[]", data)
        elif item in ("BODY.PEEK[HEADER]", "BODY[HEADER]"):
            end = data.find(b"\r\n\r\n")
            literal = ("BODY[HEADER]", data[: end + 4] if end >= 0 else data)
    line = f"* {seq} FETCH (".encode() + b" ".join(parts)
    if literal is not None:
        name, body = literal
        line += f" {name} {{{len(body)}}}".encode() + b"\r\n" + body
    return line + b")"


class _Handler(socketserver.StreamRequestHandler):
    server: ImapServer

    def setup(self) -> None:
        self.sock = self.request
        self.tls = False
        if self.server.implicit_tls:
            self.sock = self.server.context.wrap_socket(self.sock, server_side=True)
            self.tls = True
        self._files()
        self.selected: str | None = None

    def _files(self) -> None:
        self.rfile = self.sock.makefile("rb")
        self.wfile = self.sock.makefile("wb")

    def send(self, line: str | bytes) -> None:
        self.wfile.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        self.wfile.flush()

    def caps(self) -> str:
        caps = ["IMAP4rev1", "AUTH=PLAIN", "UIDPLUS"]
        if self.server.move:
            caps.append("MOVE")
        if not self.tls and self.server.starttls:
            caps.append("STARTTLS")
        return " ".join(caps)

    def handle(self) -> None:
        self.send("* OK IMAP4rev1 kabarfeed test server ready")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            parts = _tokens(line.rstrip(b"\r\n"))
            if len(parts) < 2:
                self.send("* BAD no command")
                continue
            tag, command, args = parts[0], parts[1].upper(), parts[2:]
            if command == "UID":
                command, args = "UID " + args[0].upper(), args[1:]
            if not self.dispatch(tag, command, args):
                return

    def dispatch(self, tag: str, command: str, args: list[Any]) -> bool:
        box = self.server.mailbox
        if command == "CAPABILITY":
            self.send(f"* CAPABILITY {self.caps()}")
        elif command == "STARTTLS" and not self.tls and self.server.starttls:
            self.send(f"{tag} OK Begin TLS negotiation now")
            self.sock = self.server.context.wrap_socket(self.sock, server_side=True)
            self.tls = True
            self._files()
            return True
        elif command == "LOGIN":
            box.logins.append((args[0], args[1], self.tls))
            if (args[0], args[1]) != (self.server.user, self.server.password):
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials")
                return True
        elif command in ("SELECT", "EXAMINE"):
            self.selected = args[0]
            msgs = box.folders.setdefault(args[0], [])
            self.send(f"* {len(msgs)} EXISTS")
            self.send("* 0 RECENT")
            self.send("* OK [UIDVALIDITY 7] UIDs valid")
            self.send("* FLAGS (\\Seen \\Deleted)")
            self.send(f"{tag} OK [READ-WRITE] SELECT completed")
            return True
        elif command == "LIST":
            if args[1] in box.folders:
                self.send(f'* LIST (\\HasNoChildren) "/" "{args[1]}"')
        elif command == "CREATE":
            box.folders.setdefault(args[0], [])
        elif command == "UID SEARCH":
            msgs = box.folders[self.selected or "INBOX"]
            self.send("* SEARCH " + " ".join(str(u) for u, _, f in msgs if "\\Deleted" not in f))
        elif command == "UID FETCH":
            msgs = box.folders[self.selected or "INBOX"]
            wanted = _uids(args[0])
            items = [str(i).upper() for i in (args[1] if isinstance(args[1], list) else [args[1]])]
            for seq, (uid, data, _) in enumerate(msgs, start=1):
                if uid in wanted:
                    self.send(_fetch_line(seq, uid, data, items))
        elif command in ("UID MOVE", "UID COPY"):
            self.copy(_uids(args[0]), args[1], move=command == "UID MOVE")
        elif command == "UID STORE":
            for uid, _, flags in box.folders[self.selected or "INBOX"]:
                if uid in _uids(args[0]) and "\\Deleted" in str(args[2]):
                    flags.add("\\Deleted")
        elif command in ("EXPUNGE", "UID EXPUNGE"):
            self.expunge(None if command == "EXPUNGE" else _uids(args[0]))
        elif command == "NOOP":
            pass
        elif command == "LOGOUT":
            self.send("* BYE see you")
            self.send(f"{tag} OK LOGOUT completed")
            return False
        else:
            self.send(f"{tag} BAD unknown command {command}")
            return True
        self.send(f"{tag} OK {command} completed")
        return True

    def copy(self, uids: set[int], folder: str, *, move: bool) -> None:
        box = self.server.mailbox
        source = box.folders[self.selected or "INBOX"]
        for uid, data, _ in source:
            if uid in uids:
                box.folders.setdefault(folder, []).append((uid, data, set()))
        if move:
            self.expunge(uids, everything=True)

    def expunge(self, uids: set[int] | None, *, everything: bool = False) -> None:
        msgs = self.server.mailbox.folders[self.selected or "INBOX"]
        for seq in range(len(msgs), 0, -1):
            uid, _, flags = msgs[seq - 1]
            if (uids is None or uid in uids) and (everything or "\\Deleted" in flags):
                del msgs[seq - 1]
                self.send(f"* {seq} EXPUNGE")


class ImapServer(socketserver.ThreadingTCPServer):
    """Serves :class:`Mailbox` on 127.0.0.1 (a free port) until ``close``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        implicit_tls: bool = True,
        starttls: bool = True,
        move: bool = True,
        user: str = "bounces",
        password: str = "rahasia",
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.implicit_tls, self.starttls, self.move = implicit_tls, starttls, move
        self.user, self.password = user, password
        self.mailbox = Mailbox()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> ImapServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
