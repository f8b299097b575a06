"""A real ``tritonserver`` on loopback for tests and local runs.

The ``nvidia-pytriton`` wheel ships Triton 2.51 with the Python backend; this module runs that
binary directly (no PyTriton), on free ports bound to 127.0.0.1 only::

    from reference_system.serving.triton_server import TritonServer
    with TritonServer(repo) as server:              # ready: /v2/health/ready returned 200
        with TritonGrpcClient(server.grpc_url) as client:
            client.infer(feeds)
    # stopped with SIGINT, then the process group killed; its temp dir is gone

Close every client before the server stops: Triton waits for open connections and a lingering
gRPC channel delays shutdown (30 s by default; we set ``--exit-timeout-secs``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import sys
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self

from reference_system.predictors import BackendUnavailable
from reference_system.serving.leftovers import remove_shm
from reference_system.serving.ports import LOOPBACK, free_port
from reference_system.serving.processes import (
    START_ATTEMPTS,
    ManagedProcess,
    PortInUse,
    ServerBase,
)

__all__ = ["TRITON_INSTALL_COMMAND", "TritonServer", "find_tritonserver"]

TRITON_INSTALL_COMMAND = "pip install nvidia-pytriton==0.7.0"


def _pytriton_dir() -> Path | None:
    # Found, not imported: importing pytriton is slow and pulls in its own logging setup.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver() -> Path:
    """The ``tritonserver`` binary: the nvidia-pytriton wheel's, else the one on ``PATH``.

    Raises :class:`BackendUnavailable` naming ``pip install nvidia-pytriton==0.7.0`` when
    neither exists.
    """
    pkg = _pytriton_dir()
    if pkg is not None:
        binary = pkg / "tritonserver" / "bin" / "tritonserver"
        if binary.is_file():
            return binary
    on_path = shutil.which("tritonserver")
    if on_path:
        return Path(on_path)
    raise BackendUnavailable(
        "triton",
        "no tritonserver binary (neither the nvidia-pytriton wheel's nor one on PATH)",
        TRITON_INSTALL_COMMAND,
    )


def _http_ready(port: int) -> Callable[[], bool]:
    url = f"http://{LOOPBACK}:{port}/v2/health/ready"

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    return check


class TritonServer(ServerBase):
    """``tritonserver`` in its own process group, ready when ``/v2/health/ready`` says 200.

    Every listener (HTTP, gRPC, metrics) binds to 127.0.0.1 on a free port. With the wheel's
    binary, the Python backend is assembled in the server's temp dir with the backend stub for
    this interpreter's Python version (the wheel keeps one stub per version, as PyTriton does),
    and ``LD_LIBRARY_PATH`` starts with this interpreter's ``LIBDIR`` so the stub embeds the
    same libpython as the interpreter whose packages (numpy, onnxruntime) the model imports.
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        binary: Path | None = None,
        start_timeout_s: float = 60.0,
        exit_timeout_s: int = 5,
        log_verbose: int = 0,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        if not self.model_repository.is_dir():
            raise FileNotFoundError(f"model repository not found: {self.model_repository}")
        self.binary = Path(binary) if binary is not None else find_tritonserver()
        self.start_timeout_s = start_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.log_verbose = log_verbose
        # The Python backend's shared-memory regions (/dev/shm) start with this: unique, so two
        # servers on one machine never share regions, and a test can find leftovers.
        self.shm_prefix = f"pytest-latency-{os.getpid()}-{secrets.token_hex(4)}-"
        self._process = self._new_process()

    def _new_process(self) -> ManagedProcess:
        """The server on fresh ports, with a temp dir of its own (not started)."""
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        argv = [
            str(self.binary),
            f"--model-repository={self.model_repository}",
            f"--http-address={LOOPBACK}",
            f"--http-port={self.http_port}",
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={LOOPBACK}",
            f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
        ]
        return ManagedProcess(
            "tritonserver",
            argv,
            ready=_http_ready(self.http_port),
            env=self._env(),
            start_timeout_s=self.start_timeout_s,
            stop_signal=signal.SIGINT,  # Triton's graceful stop: unload models, then exit
            stop_timeout_s=self.exit_timeout_s + 5.0,
            # Ready only when these are Triton's own listeners, not another session's.
            ports=(self.http_port, self.grpc_port),
            shm_prefix=self.shm_prefix,  # removed on stop, and by the sweep if we are killed
        )

    # -- the wheel's layout ---------------------------------------------------------------

    def _wheel_root(self) -> Path | None:
        """``.../pytriton/tritonserver`` when ``binary`` is the wheel's, else None."""
        root = self.binary.resolve().parent.parent
        return root if (root / "python_backend_stubs").is_dir() else None

    def _env(self) -> dict[str, str]:
        libs = [str(sysconfig.get_config_var("LIBDIR") or "")]
        wheel = self._wheel_root()
        if wheel is not None:
            # The stub's RPATH is relative to its place in the wheel; once copied it needs this.
            libs.append(str(wheel.parent.parent / "nvidia_pytriton.libs"))
        old = os.environ.get("LD_LIBRARY_PATH")
        if old:
            libs.append(old)
        bin_dir = str(Path(sys.executable).parent)
        return {
            "LD_LIBRARY_PATH": ":".join(p for p in libs if p),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        }

    def _backend_args(self) -> list[str]:
        """Assemble the Python backend (library + this Python's stub) in the temp dir."""
        shm = f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}"
        wheel = self._wheel_root()
        if wheel is None:  # e.g. NVIDIA's image: /opt/tritonserver/{bin,backends}
            backends = self.binary.resolve().parent.parent / "backends"
            return [f"--backend-directory={backends}", shm] if backends.is_dir() else [shm]
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise BackendUnavailable(
                "triton",
                f"the nvidia-pytriton wheel has no Python backend stub for Python {version}",
                TRITON_INSTALL_COMMAND,
            )
        backends = self._process.tmpdir / "backends"
        python_dir = backends / "python"
        python_dir.mkdir(parents=True)
        for item in (wheel / "backends" / "python").iterdir():
            if item.is_file():
                (python_dir / item.name).symlink_to(item)
        shutil.copy2(stub, python_dir / "triton_python_backend_stub")
        return [f"--backend-directory={backends}", shm]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start and wait until ready. A port taken between choosing it and Triton binding it
        (another session on the machine) ends that start with ``PortInUse``: it is retried on
        fresh ports, up to ``START_ATTEMPTS`` times."""
        for attempt in range(START_ATTEMPTS):
            if attempt:
                self._process = self._new_process()
            try:
                extra = self._backend_args()
            except BaseException:
                self._process.cleanup()
                raise
            self._process.argv.extend(extra)
            try:
                self._process.start()  # on failure it stops itself and removes its temp dir
            except PortInUse:
                if attempt == START_ATTEMPTS - 1:
                    raise
                continue
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGINT (graceful), then SIGKILL to the process group; removes the temp dir."""
        self._process.stop()

    def kill(self) -> None:
        """SIGKILL the server and its backend stubs, as a crash or the OOM killer would.

        The ports and temp dir stay, so :meth:`restart` brings it back where its clients
        expect it. Its shared-memory regions are removed (a crash leaves them; the restarted
        server uses the same names)."""
        proc = self._process.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        remove_shm(self.shm_prefix)

    def restart(self) -> Self:
        """Start the server again on the same ports, after :meth:`kill` or a crash; returns
        when it is ready, like :meth:`start`."""
        proc = self._process.proc
        if proc is None:
            raise RuntimeError(f"{self!r} was never started: call start()")
        if proc.poll() is None:
            raise RuntimeError(f"{self!r} is still running: kill() or stop() it first")
        self._process.start()
        return self

    @property
    def process(self) -> ManagedProcess:
        return self._process

    # -- where it is ----------------------------------------------------------------------

    @property
    def grpc_url(self) -> str:
        """``127.0.0.1:PORT``, the form ``tritonclient.grpc`` takes."""
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT`` (KServe v2 REST)."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def __repr__(self) -> str:
        return f"<TritonServer grpc={self.grpc_url} http={self.http_url} pid={self.pid}>"
