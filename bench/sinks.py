"""SMTP sinks shared by the delivery benchmarks (`send.py`, `scale.py`).

Postfix's C ``smtp-sink`` when installed (it is the fastest receiver, so the
measured sender is the bottleneck), else an aiosmtpd sink in its own process.
``python bench/sinks.py PORT`` serves that aiosmtpd sink.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

POSTFIX_HINT = (
    "Postfix's smtp-sink/smtp-source not found: install them with "
    "`DEBIAN_FRONTEND=noninteractive apt-get install -y postfix` (they land in /usr/sbin) "
    "for the C sink and the loopback limit; falling back to an aiosmtpd sink process"
)


def postfix_tool(name: str) -> str | None:
    """``smtp-sink``/``smtp-source`` on PATH or in Debian's /usr/sbin."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/postfix")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int, str]:
    """Start a sink on a free port; return the process, the port and its kind."""
    port = free_port()
    sink = postfix_tool("smtp-sink")
    if sink:
        cmd = [sink, "-c", "-u", "nobody", "-m", "256", f"127.0.0.1:{port}", "256"]
        kind = "postfix smtp-sink (C)"
    else:
        print(POSTFIX_HINT)
        cmd = [sys.executable, __file__, str(port)]
        kind = "aiosmtpd sink (separate process)"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, kind
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"sink did not start: {cmd}")


def run_aiosmtpd_sink(port: int) -> None:
    """Accept and discard every message on ``port`` until killed."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 Ok: discarded"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Discard(), hostname="sink", loop=loop), "127.0.0.1", port
        )
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    run_aiosmtpd_sink(int(sys.argv[1]))
