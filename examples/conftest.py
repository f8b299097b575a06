"""Fixtures for the example SLO suite: a real TCP echo server in its own process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

ECHO_SERVER = r"""
import asyncio, sys

async def handle(reader, writer):
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


@pytest.fixture(scope="session")
def echo_port() -> Iterator[int]:
    """Port of an asyncio echo server on 127.0.0.1 (a free port the OS picked)."""
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"echo server did not start (exit {proc.poll()}): {line!r}")
        yield int(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
