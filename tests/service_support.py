"""``kabarfeed`` as a real subprocess for end-to-end tests: start it with a
clean environment, follow its log, find the URL it listens on, stop it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

KABARFEED = Path(sys.executable).with_name("kabarfeed")


def clean_env() -> dict[str, str]:
    """This process's environment without any ``KABARFEED_*`` override."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KABARFEED_")}


def start(config: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``kabarfeed --config config *args`` with its log on a text pipe."""
    return subprocess.Popen(
        [str(KABARFEED), "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def follow_log(
    process: subprocess.Popen[str],
    output: list[str],
    on_line: Callable[[str], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> None:
    """Append every log line to ``output`` (and hand it to ``on_line``) in a
    thread; ``on_end`` runs when the log closes."""

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            output.append(line)
            if on_line is not None:
                on_line(line)
        if on_end is not None:
            on_end()

    threading.Thread(target=pump, daemon=True).start()


def wait_for_url(
    process: subprocess.Popen[str],
    output: list[str],
    pattern: re.Pattern[str],
    *,
    timeout: float,
    what: str,
) -> str:
    """Read the log until ``pattern`` names the URL (its group 1); bounded wait."""
    found: list[str] = []
    ready = threading.Event()

    def on_line(line: str) -> None:
        match = pattern.search(line)
        if match and not found:
            found.append(match[1])
            ready.set()

    follow_log(process, output, on_line, ready.set)
    ready.wait(timeout)
    if not found:
        process.kill()
        raise AssertionError(f"{what} did not report its port:\n" + "".join(output))
    return found[0]


def stop(process: subprocess.Popen[str], timeout: float) -> None:
    """Terminate ``process``; kill it if it has not ended after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
