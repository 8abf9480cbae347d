"""Liveness and readiness probes of one running container, run the way kubelet runs them (ACI's
probes are Kubernetes probes, and its events carry kubelet's wording).

One :class:`ContainerProber` per container *instance* (a restart makes a new instance and a new
prober). :meth:`ContainerProber.until_exit` runs the probes while it waits for the container to
exit, and returns either the exit or the :class:`ProbeFailure` that made liveness fail; the caller
owns the container, so killing it and applying the restart policy stay the caller's job.

One attempt:

* ``exec``: the command runs in the container through the runtime's exec (no shell, stdin
  closed). Exit code 0 passes; otherwise the output (stdout, then stderr) is the failure text;
  outliving ``timeoutSeconds`` fails with ``command "..." timed out`` (the process is killed).
* ``httpGet``: a ``GET`` from the host to the group's address (the sandbox's IP) on ``port``,
  ``path`` (default ``/``) with ``httpHeaders``; ``Host`` defaults to ``ip:port``, ``User-Agent``
  to ``kube-probe/<version>``. A status from 200 to 399 passes (redirects are not followed: a
  redirect passes, as kubelet treats one to another host); ``https`` does not verify the
  certificate, like kubelet. Failures read like Go's: ``HTTP probe failed with statuscode:
  404``, ``Get "http://10.88.0.2:80/": dial tcp 10.88.0.2:80: connect: connection refused``.

Timing and thresholds follow kubelet's worker: the first attempt after ``initialDelaySeconds``,
then one every ``periodSeconds`` (a slow attempt delays the next tick, ticks never pile up); a
result sticks after ``failureThreshold`` consecutive failures or ``successThreshold`` consecutive
successes. Liveness starts healthy and readiness not ready. *Every* failed attempt is reported
(the caller turns it into an aggregated ``Unhealthy`` event); liveness reaching its failure
threshold ends :meth:`~ContainerProber.until_exit`. A container that is gone (not running, not
found) ends probing quietly: its exit is the caller's news.

Nothing outlives :meth:`~ContainerProber.until_exit`: the attempts run in a task group, so a
return, an exception or a cancellation of the caller ends every one of them (an exec in flight
is killed by the runtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from moorage.core.errors import MoorageError
from moorage.core.log import get_logger
from moorage.instances.model import HttpGetDefinition, ProbeDefinition
from moorage.instances.runtime.base import ContainerNotFound, ContainerNotRunning, ExecResult, ExecTimeout

log = get_logger("instances.probes")

ProbeKind = Literal["Liveness", "Readiness"]
LIVENESS: ProbeKind = "Liveness"
READINESS: ProbeKind = "Readiness"

# kubelet's User-Agent (its minor version is the Kubernetes version ACI runs; any is fine).
USER_AGENT = "kube-probe/1.27"
# Failure texts are bounded like kubelet's (it reads at most 10 KiB of a probe's output); events
# are shown to people, so ours are shorter.
MAX_OUTPUT = 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: |\r?\n|$)")

_T = TypeVar("_T")


class ProbeExecutor(Protocol):
    """What probing needs of the runtime (:class:`~moorage.instances.runtime.base.Runtime`)."""

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        """Run ``args`` in the running container; see ``Runtime.exec``."""
        ...


@dataclass(frozen=True)
class ProbeFailure:
    """One failed attempt; ``output`` is what failed (the command's output, the HTTP status)."""

    kind: ProbeKind
    output: str

    @property
    def message(self) -> str:
        """The ``Unhealthy`` event's message, worded like kubelet's."""
        return f"{self.kind} probe failed: {self.output}"


@dataclass(frozen=True)
class ContainerProbes:
    """What to probe in one container: its probes, the group's address (for ``httpGet``; ``None``
    when the runtime gives the group none) and secret values that must never appear in a
    failure text (a command may well print its secure environment)."""

    liveness: ProbeDefinition | None = None
    readiness: ProbeDefinition | None = None
    ip: str | None = None
    secrets: tuple[str, ...] = ()


Report = Callable[[ProbeFailure], Awaitable[None]]


class ContainerProber:
    """Probes one container instance (see the module docstring)."""

    def __init__(
        self, runtime: ProbeExecutor, container_id: str, probes: ContainerProbes, report: Report
    ) -> None:
        self._runtime = runtime
        self._container_id = container_id
        self._probes = probes
        self._report = report
        self._ready = probes.readiness is None

    @property
    def ready(self) -> bool:
        """The readiness verdict (``True`` without a readiness probe). ACI's instance view has
        no field for it; only the ``Unhealthy`` events show it."""
        return self._ready

    async def until_exit(self, exited: Awaitable[_T]) -> _T | ProbeFailure:
        """Probe until ``exited`` (the runtime's wait for this container) completes, and return
        its result (or raise its error); or until liveness fails, and return the failure that
        crossed the threshold (``exited`` is then abandoned). Every probe has stopped when this
        returns, raises or is cancelled."""
        probes = self._probes
        if probes.liveness is None and probes.readiness is None:
            return await exited
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(_settle(exited))
            liveness = group.create_task(self._run(LIVENESS, probes.liveness)) if probes.liveness else None
            readiness = (
                group.create_task(self._run(READINESS, probes.readiness)) if probes.readiness else None
            )
            watched: set[asyncio.Task[_Outcome[_T]] | asyncio.Task[ProbeFailure | None]] = {waiting}
            if liveness is not None:
                watched.add(liveness)
            while True:
                done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                watched = set(pending)
                if waiting in done or (liveness in done and liveness is not None and liveness.result()):
                    break
            for task in (waiting, liveness, readiness):
                if task is not None:
                    task.cancel()
        if not waiting.cancelled():  # the exit wins a tie: nothing left to kill
            return waiting.result().unwrap()
        assert liveness is not None  # noqa: S101 - only a liveness failure ends the loop otherwise
        failure = liveness.result()
        assert failure is not None  # noqa: S101 - the loop ends on a failure only
        return failure

    async def _run(self, kind: ProbeKind, probe: ProbeDefinition) -> ProbeFailure | None:
        """Probe until liveness crosses its failure threshold (that failure is returned) or the
        container is gone (``None``); readiness only ends by cancellation or the container
        going away. Never raises: a failure of this machinery must not end supervision."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(probe.initial_delay_seconds)
        verdict = _Verdict(probe, healthy=kind == LIVENESS)
        due = loop.time()
        while True:
            try:
                output = await self._attempt(probe)
            except (ContainerNotRunning, ContainerNotFound):
                return None
            except Exception:  # a bug here must not kill or restart containers
                log.exception("probe stopped", container=self._container_id, kind=kind)
                return None
            failure = None if output is None else ProbeFailure(kind, self._redact(output))
            if failure is not None:
                log.info("probe failed", container=self._container_id, kind=kind, output=failure.output)
                try:
                    await self._report(failure)
                except Exception:  # an unwritten event is no reason to stop probing
                    log.exception("probe failure not recorded", container=self._container_id, kind=kind)
            healthy = verdict.observe(failure is None)
            if kind == READINESS:
                self._ready = healthy
            elif failure is not None and not healthy:
                return failure
            now = loop.time()
            while due <= now:
                due += probe.period_seconds
            await asyncio.sleep(due - now)

    async def _attempt(self, probe: ProbeDefinition) -> str | None:
        """One attempt: ``None`` when it passed, else the failure text. Raises
        ``ContainerNotRunning``/``ContainerNotFound`` when the container is gone."""
        if probe.exec_command is not None:
            return await exec_attempt(
                self._runtime, self._container_id, probe.exec_command, probe.timeout_seconds
            )
        if probe.http_get is not None:
            return await http_get_attempt(probe.http_get, self._probes.ip, probe.timeout_seconds)
        return None  # pragma: no cover - validation requires exactly one of them

    def _redact(self, text: str) -> str:
        for secret in self._probes.secrets:
            if len(secret) >= 3:  # shorter ones would blank ordinary words, and guess nothing
                text = text.replace(secret, "***")
        return text


async def exec_attempt(
    runtime: ProbeExecutor, container_id: str, command: Sequence[str], timeout_s: float
) -> str | None:
    """Run an ``exec`` probe's ``command`` once: ``None`` when it exits 0, else its output (or
    the reason it could not run). Raises ``ContainerNotRunning``/``ContainerNotFound``."""
    try:
        result = await runtime.exec(container_id, list(command), timeout_s=timeout_s)
    except ExecTimeout:
        return f'command "{" ".join(command)}" timed out'
    except (ContainerNotRunning, ContainerNotFound):
        raise
    except MoorageError as error:  # the runtime could not run it (runc's own failure)
        return _clip(error.message)
    if result.exit_code == 0:
        return None
    output = _clip((result.stdout + result.stderr).strip())
    return output or f'command "{" ".join(command)}" exited with code {result.exit_code}'


async def http_get_attempt(get: HttpGetDefinition, ip: str | None, timeout_s: float) -> str | None:
    """Send an ``httpGet`` probe's request once: ``None`` for a status from 200 to 399, else
    the failure text (status, connection error, timeout), worded like Go's HTTP client."""
    path = get.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    host = f"{ip}:{get.port}" if ip else f":{get.port}"
    url = f"{get.scheme}://{host}{path}"
    if ip is None:
        return f'Get "{url}": the container group has no IP address on this host\'s runtime'
    headers = {"host": ("Host", host), "user-agent": ("User-Agent", USER_AGENT), "accept": ("Accept", "*/*")}
    for header in get.headers:  # the probe's own headers win, Host included (as in kubelet)
        headers[header.name.lower()] = (header.name, header.value)
    headers["connection"] = ("Connection", "close")
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers.values()) + "\r\n"
    try:
        async with asyncio.timeout(timeout_s):
            status = await _status(ip, get.port, get.scheme == "https", request.encode())
    except TimeoutError:
        return f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except ssl.SSLError as exc:
        return f'Get "{url}": tls: {_clip(exc.reason or str(exc))}'
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return f'Get "{url}": read tcp {ip}:{get.port}: {reason}'
        return f'Get "{url}": dial tcp {ip}:{get.port}: connect: {reason}'
    except _Malformed as exc:
        return f'Get "{url}": {exc}'
    if 200 <= status < 400:
        return None
    return f"HTTP probe failed with statuscode: {status}"


async def _status(ip: str, port: int, tls: bool, request: bytes) -> int:
    """Send ``request`` and read the response's status code (nothing more is needed)."""
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # kubelet does not verify probe certificates either
    reader, writer = await asyncio.open_connection(ip, port, ssl=context)
    try:
        writer.write(request)
        await writer.drain()
        line = await reader.readline()
    finally:
        # The rest of the response does not matter: drop the connection at once (a TLS close
        # would wait for the server's close_notify).
        writer.transport.abort()
        with contextlib.suppress(OSError, ssl.SSLError):  # the abort itself, reported back
            await writer.wait_closed()
    if not line:
        raise _Malformed("EOF")
    found = _STATUS_LINE.match(line)
    if found is None:
        raise _Malformed(f'malformed HTTP response "{_clip(line.decode(errors="replace").strip(), 80)}"')
    return int(found.group(1))


class _Malformed(Exception):
    """The server's answer is not an HTTP/1.x status line."""


class _Verdict:
    """kubelet's thresholds: a result counts once it repeated ``failureThreshold`` (failures)
    or ``successThreshold`` (successes) times in a row."""

    def __init__(self, probe: ProbeDefinition, *, healthy: bool) -> None:
        self._probe = probe
        self.healthy = healthy
        self._last: bool | None = None
        self._run = 0

    def observe(self, passed: bool) -> bool:
        if passed is self._last:
            self._run += 1
        else:
            self._last, self._run = passed, 1
        needed = self._probe.success_threshold if passed else self._probe.failure_threshold
        if self._run >= needed:
            self.healthy = passed
        return self.healthy


@dataclass(frozen=True)
class _Outcome(Generic[_T]):
    """An awaited result or the exception it raised (so that a task group does not turn the
    caller's own error into an ``ExceptionGroup``)."""

    value: _T | None = None
    error: Exception | None = None

    def unwrap(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set whenever error is None


async def _settle(awaitable: Awaitable[_T]) -> _Outcome[_T]:
    try:
        return _Outcome(value=await awaitable)
    except Exception as exc:  # handed back to the caller by unwrap()
        return _Outcome(error=exc)


def _clip(text: str, limit: int = MAX_OUTPUT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "LIVENESS",
    "READINESS",
    "ContainerProber",
    "ContainerProbes",
    "ProbeExecutor",
    "ProbeFailure",
    "ProbeKind",
    "exec_attempt",
    "http_get_attempt",
]
