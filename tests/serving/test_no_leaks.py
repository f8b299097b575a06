"""Nothing outlives the test session, however it ends: a normal exit, SIGKILL, SIGTERM, Ctrl-C
during a readiness wait, a failed start, a server built but never started; a SIGTERM while
the registry lock is held; and no session talks to another's servers (ports)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from reference_system.serving.leaks import group_members
from reference_system.serving.leftovers import SHM_DIR, sweep_stale
from reference_system.serving.ports import listened_by
from reference_system.serving.processes import ManagedProcess, ServerStartError
from reference_system.serving.redis_server import RedisServer, find_redis_server

REPO = Path(__file__).resolve().parents[2]

CHILD_TEST = """
import json, os, time
from pathlib import Path
from reference_system.serving import processes
from reference_system.serving.redis_server import RedisServer
from reference_system.serving.services import SentimentService
from reference_system.serving.triton_server import TritonServer

def test_servers_then_wait():
    servers = [RedisServer().start(), SentimentService("colocated", profile={profile!r}).start()]
    shm = None
    if {repo!r}:
        triton = TritonServer(Path({repo!r})).start()
        servers.append(triton)
        shm = triton.shm_prefix
    info = {{"pids": [s.pid for s in servers], "tmpdirs": [str(s.tmpdir) for s in servers],
             "shm": shm, "reaper": processes._reaper.pid}}
    Path({out!r}).write_text(json.dumps(info))
    if {wait!r}:
        time.sleep(300)
"""


def _start_child(
    tmp_path: Path, artifacts: Any, with_triton: bool, wait: bool = True
) -> tuple[Any, dict[str, Any]]:
    repo = ""
    if with_triton:
        from reference_system.serving.triton_repo import write_model_repository

        repo = str(write_model_repository(tmp_path / "repo", artifacts.onnx_int8_dynamic))
    out = tmp_path / "servers.json"
    test = tmp_path / "test_child.py"
    test.write_text(
        textwrap.dedent(CHILD_TEST).format(
            profile=artifacts.profile, repo=repo, out=str(out), wait=wait
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not out.exists():
        if (wait and child.poll() is not None) or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the child pytest did not start its servers (status {child.poll()})")
        time.sleep(0.2)
    return child, json.loads(out.read_text())


def _members(pids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for pid in pids:
        found.update(group_members(pid))  # each server leads its own process group
    return found


def _gone_within(pids: list[int], seconds: float) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while (left := _members(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _triton_available() -> bool:
    try:
        from reference_system.serving.triton_server import find_tritonserver

        find_tritonserver()
    except Exception:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _left_behind(info: dict[str, Any]) -> list[str]:
    left = [f"process {pid} ({comm})" for pid, comm in _members(info["pids"]).items()]
    left += [f"temp dir {d}" for d in info["tmpdirs"] if Path(d).exists()]
    if info["shm"]:
        left += [f"shm {n}" for n in os.listdir(SHM_DIR) if n.startswith(info["shm"])]
    if _alive(info["reaper"]):
        left.append(f"reaper {info['reaper']}")
    return left


@pytest.mark.parametrize("how", ["exit", "SIGKILL", "SIGTERM"])
def test_a_killed_session_leaves_no_server_temp_dir_or_shared_memory(
    tmp_path: Path, artifacts: Any, how: str
) -> None:
    """Redis, the co-located front and (where its wheel is installed) Triton with its
    Python-backend stub, started by a child pytest that then finishes normally ("exit") or
    is killed. Within a few seconds no server process, temp dir or shared-memory region of
    the child is left, and no reaper: after a SIGKILL the child's reaper cleans up, with no
    help from a later session."""
    child, info = _start_child(
        tmp_path, artifacts, with_triton=_triton_available(), wait=how != "exit"
    )
    try:
        if how == "exit":
            assert child.wait(timeout=60) == 0
        else:
            running = _members(info["pids"])
            assert len(running) >= len(info["pids"]), running  # seen alive: a survivor shows
            if info["shm"]:
                assert any(n.startswith(info["shm"]) for n in os.listdir(SHM_DIR))
            os.kill(child.pid, getattr(signal, how))
            child.wait(timeout=30)
        deadline = time.monotonic() + 10.0
        while (left := _left_behind(info)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"left 10 s after the {how}"
    finally:
        if child.poll() is None:
            child.kill()


class Interrupt(BaseException):
    pass


def test_an_interrupted_readiness_wait_or_a_failed_start_stops_the_server() -> None:
    """Ctrl-C (any BaseException) while waiting, or a server that never becomes ready: the
    process is stopped and its temp dir removed before the error propagates."""
    calls = []

    def interrupted() -> bool:
        calls.append(1)
        if len(calls) > 3:
            raise Interrupt
        return False

    sleeper = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], ready=interrupted
    )
    with pytest.raises(Interrupt):
        sleeper.start()
    assert sleeper.proc is not None
    assert sleeper.proc.poll() is not None
    assert not sleeper.tmpdir.exists()

    never = ManagedProcess(
        "never",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        ready=lambda: False,
        start_timeout_s=0.5,
    )
    with pytest.raises(ServerStartError, match=r"not ready within 0\.5 s"):
        never.start()
    assert never.proc is not None
    assert never.proc.poll() is not None
    assert not never.tmpdir.exists()


NEVER_STARTED = """
import json, sys
from reference_system.serving.processes import ManagedProcess
from reference_system.serving.services import SentimentService
process = ManagedProcess("never-started", [sys.executable, "-c", "pass"], ready=lambda: True)
service = SentimentService("colocated")
print(json.dumps({"tmpdirs": [str(process.tmpdir), str(service.tmpdir)], "port": service.port}))
"""


def test_a_server_built_but_never_started_leaves_no_temp_dir_or_socket() -> None:
    """TritonServer and SentimentService build their ManagedProcess (temp dir, and the
    service's bound socket) before start(): the process that built them removes them at
    exit, never started."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", NEVER_STARTED], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert not [d for d in info["tmpdirs"] if Path(d).exists()]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", info["port"])) != 0  # nobody listens there


SIGTERM_WHILE_LOCKED = """
import os, signal, sys, time
from reference_system.serving import processes
process = processes.ManagedProcess(
    "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], ready=lambda: True
).start()
print(process.pid, process.tmpdir, flush=True)
with processes._live_lock:  # as if the main thread were registering a server
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
"""


def test_a_sigterm_while_the_registry_lock_is_held_stops_the_servers_and_exits() -> None:
    """The SIGTERM handler runs in the main thread, which may hold the lock that guards the
    set of live servers: it must not deadlock there."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_WHILE_LOCKED], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid, tmpdir = child.stdout.readline().split()
        assert child.wait(timeout=20) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    assert not _alive(int(pid))
    assert not Path(tmpdir).exists()


def test_a_live_owners_temp_dir_is_never_swept(tmp_path: Path) -> None:
    process = ManagedProcess("owner", [sys.executable, "-c", "pass"], ready=lambda: True)
    try:
        assert process.tmpdir not in sweep_stale()  # our lock is held: we are alive
        assert process.tmpdir.exists()
    finally:
        process.cleanup()
    assert not process.tmpdir.exists()


def test_a_port_taken_by_another_process_is_never_mistaken_for_our_server() -> None:
    """Another session's listener on the chosen port: Redis fails to bind, and the
    readiness check would not accept that listener anyway; the server retries elsewhere."""
    find_redis_server()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        assert listened_by(os.getpid(), taken)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not listened_by(sleeper.pid, taken)  # a listener, but not that process's
        finally:
            sleeper.kill()
            sleeper.wait()
        server = RedisServer()
        server.port = taken  # as if another session took it after we chose it
        with server:
            assert server.port != taken
            assert listened_by(server.pid or -1, server.port)


FORKED_CHILDREN = """
import os, sys, time
from reference_system.serving.processes import ManagedProcess
sleeper = ManagedProcess(
    "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], ready=lambda: True
).start()
# A forked child that exits normally (its atexit runs) must not stop the session's server.
child = os.fork()
if child == 0:
    sys.exit(0)
os.waitpid(child, 0)
alive_after_child_exit = sleeper.proc.poll() is None
# A forked child that outlives the session must not keep the reaper waiting.
lingering = os.fork()
if lingering == 0:
    sys.stdout.close()
    time.sleep(30)
    os._exit(0)
print(alive_after_child_exit, sleeper.pid, sleeper.tmpdir, lingering, flush=True)
time.sleep(60)
"""


def test_a_forked_child_neither_stops_the_sessions_servers_nor_holds_its_reaper() -> None:
    """A child forked without exec (multiprocessing's fork start method) is not the session:
    its exit leaves the session's servers alone, and when the session is killed its reaper
    cleans up at once, though the child still lives."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    session = subprocess.Popen(
        [sys.executable, "-c", FORKED_CHILDREN], env=env, stdout=subprocess.PIPE, text=True
    )
    lingering = 0
    try:
        assert session.stdout is not None
        alive, _server, tmpdir, child = session.stdout.readline().split()
        lingering = int(child)
        assert alive == "True", "the forked child's exit stopped the session's server"
        session.kill()
        session.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(tmpdir).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(tmpdir).exists(), "the reaper waited on the forked child's pipe end"
        assert Path(f"/proc/{lingering}").exists()  # the child still ran meanwhile
    finally:
        if session.poll() is None:
            session.kill()
        if lingering:
            with contextlib.suppress(ProcessLookupError):
                os.kill(lingering, signal.SIGKILL)
