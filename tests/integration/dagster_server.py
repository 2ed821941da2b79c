"""Start and stop a real ``dagster dev`` on loopback, and query its GraphQL endpoint.

``dagster dev`` runs a webserver, a daemon and a code server, and the daemon starts one process
per run. It shuts them down on SIGINT, but a background job of a shell starts with SIGINT
ignored, and an ignored signal stays ignored across exec. So the server is started from Python
with SIGINT at its default, in a session of its own: stopping interrupts the whole process
group, then kills whatever of it is still alive after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Loopback only: an HTTP(S)_PROXY in the environment must not see these requests.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

LOCATION_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


class GraphQLError(RuntimeError):
    """The server answered a GraphQL request with errors."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it; it may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_graphql(
    url: str, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """POST one GraphQL request and return its ``data``.

    Raises:
        GraphQLError: the answer holds ``errors`` (the message lists them).
        urllib.error.URLError: nothing answers at ``url``.
    """
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with NO_PROXY.open(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # A query the schema rejects comes back as HTTP 400 with the errors in the body.
        body = error.read()
        try:
            answer = json.loads(body)
        except ValueError:
            raise GraphQLError(f"HTTP {error.code} from {url}: {body[:500]!r}") from None
    if answer.get("errors"):
        raise GraphQLError(json.dumps(answer["errors"], indent=1)[:4000])
    return answer["data"]


def wait_for(
    probe: Callable[[], T | None], timeout: float, interval: float, what: str, log: Path
) -> T:
    """Call ``probe`` every ``interval`` s until it returns a value other than ``None``.

    Raises:
        TimeoutError: after ``timeout`` s; the message names ``what`` and ends with the tail of
            the server log ``log``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s\n{log_tail(log)}")


def log_tail(log: Path, n_chars: int = 6000) -> str:
    """The last ``n_chars`` characters of a log file, or a note when there is none."""
    if not log.exists():
        return f"(no log at {log})"
    return f"--- tail of {log} ---\n" + log.read_text(errors="replace")[-n_chars:]


def processes_with_env(name: str, value: str) -> list[int]:
    """Ids of live processes whose environment has ``name=value`` (Linux ``/proc``)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Children started meanwhile get SIGINT at its default even if this process ignores it.

    A handled signal is reset to its default on exec, an ignored one is not: when pytest itself
    runs with SIGINT ignored (a background job), Python's handler is installed for the moment.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def dagster_command(*args: str) -> list[str]:
    """The ``dagster`` command of this interpreter's environment, with ``args``."""
    return [str(Path(sys.executable).with_name("dagster")), *args]


def run_command(command: list[str], env: Mapping[str, str], cwd: Path, timeout: float) -> str:
    """Run ``command`` (``dagster`` resolved to this environment's) in a session of its own.

    Returns:
        stdout and stderr together.

    Raises:
        RuntimeError: the command exited non-zero, or ran past ``timeout`` s (then its whole
            process group, step processes included, is killed); the message holds its output.
    """
    if command[0] == "dagster":
        command = dagster_command(*command[1:])
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise RuntimeError(
            f"{command} ran past {timeout:.0f} s\n{output.decode(errors='replace')[-6000:]}"
        ) from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited with {process.returncode}\n{text[-6000:]}")
    return text


class DagsterDev:
    """One ``dagster dev`` (webserver, daemon, code server) on 127.0.0.1 and a free port.

    Args:
        workspace: The ``workspace.yaml`` to load; its folder is the working directory.
        home: An empty ``DAGSTER_HOME`` holding the ``dagster.yaml`` to use.
        env: Variables set on top of this process's environment (config and storage paths).
    """

    def __init__(self, workspace: Path, home: Path, env: Mapping[str, str]) -> None:
        self.workspace = workspace
        self.home = home
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.port = free_port()
        self.log = home / "dagster_dev.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self) -> None:
        """Start ``dagster dev``; it is reachable once ``wait_for_location`` returns."""
        command = dagster_command(
            "dev",
            "--workspace",
            str(self.workspace),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        )
        with self.log.open("wb") as log, sigint_not_ignored():
            self.process = subprocess.Popen(
                command,
                cwd=self.workspace.parent,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def query(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of one GraphQL request to this server."""
        return post_graphql(self.url, query, variables)

    def wait_for_location(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll until code location ``name`` has loaded; returns its workspace entry.

        Raises:
            RuntimeError: ``dagster dev`` exited, or the location failed to load (the message
                holds the error the code server raised).
            TimeoutError: the location did not load within ``timeout`` s.
        """

        def probe() -> dict[str, Any] | None:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"dagster dev is not running\n{log_tail(self.log)}")
            try:
                workspace = self.query(LOCATION_QUERY)["workspaceOrError"]
            except (urllib.error.URLError, OSError, GraphQLError, ValueError):
                return None  # still starting
            entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
            entry = entries.get(name)
            if entry is None or entry["loadStatus"] != "LOADED":
                return None
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {name!r} failed to load: {location}")
            return entry

        return wait_for(probe, timeout, 1.0, f"code location {name!r} loaded", self.log)

    def stop(self, grace: float = 30.0) -> None:
        """Interrupt the process group, wait ``grace`` s, then kill whatever is left of it.

        Run processes the daemon started are in the same group and go with it; any process
        that still carries this server's ``DAGSTER_HOME`` afterwards is killed on its own.

        Raises:
            RuntimeError: a process of this server is still alive ``grace`` s after the kill.
        """
        if self.process is None:
            return
        pgid = self.process.pid  # leader of its own session, so its id is the group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=grace)
        self.process = None

        def all_gone() -> bool | None:
            pids = processes_with_env("DAGSTER_HOME", str(self.home))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return None if pids else True

        try:
            wait_for(all_gone, grace, 0.2, "every dagster dev process gone", self.log)
        except TimeoutError as error:
            raise RuntimeError(str(error)) from None
