"""Screenshot a real digest (.eml) as a mail client shows its HTML part.

    .venv/bin/python scripts/digest-screenshot.py [MESSAGE.eml] [-o docs/digest.png]

Without MESSAGE, takes the newest digest in var/maildir/new/ (what `make run`
writes for the demo readers). Images under /assets/ are read from the config's
[site] assets folder, so the service need not be running. Uses Debian's
Chromium (/usr/bin/chromium, installed by scripts/system-deps.sh) through
Playwright (the test extras).
"""

from __future__ import annotations

import argparse
import email
import mimetypes
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Route, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
WIDTH = 680
MAX_HEIGHT = 1800


def newest_digest(maildir: Path) -> Path:
    """The most recent message in ``maildir``/new."""
    files = sorted((maildir / "new").glob("*"), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit(f"no digest in {maildir / 'new'}: run `make run` first")
    return files[-1]


def html_part(path: Path) -> str:
    """The message's text/html body."""
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    if body is None:
        sys.exit(f"{path}: no HTML part")
    return str(body.get_content())


def serve_assets(folder: Path) -> object:
    """A Playwright route handler answering /assets/<name> from ``folder``."""

    def handle(route: Route) -> None:
        name = urlsplit(route.request.url).path.removeprefix("/assets/")
        file = (folder / name).resolve()
        if folder.resolve() in file.parents and file.is_file():
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            route.fulfill(status=200, body=file.read_bytes(), content_type=kind)
        else:
            route.fulfill(status=404, body=b"")

    return handle


def main() -> int:
    """Write the screenshot; print its path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("message", nargs="?", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "digest.png")
    parser.add_argument("--assets", type=Path, default=REPO / "examples" / "assets")
    args = parser.parse_args()
    message = args.message or newest_digest(REPO / "var" / "maildir")
    html = html_part(message)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.route("**/assets/**", serve_assets(args.assets))  # type: ignore[arg-type]
        page.set_content(html, wait_until="networkidle")
        height = min(int(page.evaluate("document.documentElement.scrollHeight")), MAX_HEIGHT)
        page.screenshot(
            path=str(args.output),
            full_page=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": height},
        )
        browser.close()
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
