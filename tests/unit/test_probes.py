"""The container prober against the in-memory fake runtime (exec probes) and real local HTTP(S)
servers (httpGet probes): kubelet's thresholds and wording, and that no probing outlives
``until_exit``. The same paths on runc, through the ARM API: tests/api/test_container_probes.py."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from moorage.instances.model import HttpGetDefinition, HttpHeaderDefinition, ProbeDefinition, ProbeScheme
from moorage.instances.probes import (
    ContainerProber,
    ContainerProbes,
    ProbeFailure,
    http_get_attempt,
)
from moorage.instances.runtime.base import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ExecResult,
    SandboxSpec,
)
from moorage.instances.runtime.fake import FakeRuntime
from moorage.tls import ensure_server_tls


class CountingRuntime(FakeRuntime):
    """The fake runtime, counting the execs it ran (the probes' attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.execs: list[list[str]] = []

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        self.execs.append(list(args))
        return await super().exec(container_id, args, timeout_s=timeout_s)


class Flaky(CountingRuntime):
    """Answers every exec with the next of ``codes`` (then 0), writing "flaky" to stderr."""

    def __init__(self, codes: Sequence[int]) -> None:
        super().__init__()
        self.codes = iter(codes)

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        self.execs.append(list(args))
        return ExecResult(next(self.codes, 0), "", "flaky\n")


@dataclass
class Probed:
    runtime: CountingRuntime
    container_id: str
    failures: list[ProbeFailure] = field(default_factory=list)

    async def report(self, failure: ProbeFailure) -> None:
        self.failures.append(failure)

    def prober(
        self,
        *,
        liveness: ProbeDefinition | None = None,
        readiness: ProbeDefinition | None = None,
        secrets: tuple[str, ...] = (),
    ) -> ContainerProber:
        probes = ContainerProbes(liveness=liveness, readiness=readiness, secrets=secrets)
        return ContainerProber(self.runtime, self.container_id, probes, self.report)

    async def until_exit(self, prober: ContainerProber) -> ContainerState | ProbeFailure:
        return await asyncio.wait_for(prober.until_exit(self.runtime.wait(self.container_id)), 20)


Start = Callable[..., Awaitable[Probed]]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Start]:
    """Starts a fake container (``args``, optionally on a runtime of the test's choice); every
    container and sandbox is removed afterwards."""
    runtimes: list[CountingRuntime] = []

    async def start(args: list[str], runtime: CountingRuntime | None = None) -> Probed:
        runtime = runtime or CountingRuntime()
        runtimes.append(runtime)
        sandbox = await runtime.create_sandbox(SandboxSpec(id=f"sb-{secrets.token_hex(3)}", hostname="g"))
        container_id = f"c-{secrets.token_hex(3)}"
        await runtime.create(ContainerSpec(container_id, sandbox.id, [tmp_path], args))
        await runtime.start(container_id)
        return Probed(runtime, container_id)

    yield start
    for runtime in runtimes:
        for container in await runtime.containers():
            await runtime.delete(container.id)
        for sandbox in await runtime.sandboxes():
            await runtime.delete_sandbox(sandbox.id)


def exec_probe(
    *command: str,
    failure_threshold: int = 3,
    success_threshold: int = 1,
    timeout_seconds: int = 1,
    initial_delay_seconds: int = 0,
) -> ProbeDefinition:
    """An exec probe that runs every second."""
    return ProbeDefinition(
        exec_command=command,
        period_seconds=1,
        failure_threshold=failure_threshold,
        success_threshold=success_threshold,
        timeout_seconds=timeout_seconds,
        initial_delay_seconds=initial_delay_seconds,
    )


async def test_liveness_fails_after_the_failure_threshold(running: Start) -> None:
    probed = await running(["sleep", "infinity"])
    prober = probed.prober(
        liveness=exec_probe("sh", "-c", "echo not healthy >&2; exit 1", failure_threshold=2)
    )
    outcome = await probed.until_exit(prober)
    assert outcome == ProbeFailure("Liveness", "not healthy")
    assert outcome.message == "Liveness probe failed: not healthy"
    assert [f.message for f in probed.failures] == ["Liveness probe failed: not healthy"] * 2
    assert len(probed.runtime.execs) == 2  # probing stopped with the verdict
    assert (await probed.runtime.state(probed.container_id)).status is ContainerStatus.RUNNING


async def test_a_passing_liveness_probe_waits_for_the_exit(running: Start) -> None:
    probed = await running(["sh", "-c", "sleep 2.5; exit 4"])
    outcome = await probed.until_exit(probed.prober(liveness=exec_probe("true", failure_threshold=1)))
    assert isinstance(outcome, ContainerState)
    assert outcome.exit_code == 4
    assert probed.failures == []
    assert len(probed.runtime.execs) >= 2


async def test_a_success_resets_the_failure_run(running: Start) -> None:
    """Failures must be consecutive: fail, pass, fail, pass... never reaches a threshold of 2."""
    probed = await running(["sh", "-c", "sleep 3.5"], Flaky([1, 0, 1, 0, 1, 0]))
    outcome = await probed.until_exit(probed.prober(liveness=exec_probe("check", failure_threshold=2)))
    assert isinstance(outcome, ContainerState)
    assert len(probed.failures) >= 2
    assert {f.message for f in probed.failures} == {"Liveness probe failed: flaky"}


async def test_readiness_failures_are_reported_and_never_end_probing(running: Start) -> None:
    probed = await running(["sh", "-c", "sleep 2.5"])
    prober = probed.prober(readiness=exec_probe("sh", "-c", "echo warming up; exit 1"))
    assert not prober.ready
    outcome = await probed.until_exit(prober)
    assert isinstance(outcome, ContainerState)
    assert len(probed.failures) >= 2
    assert {f.message for f in probed.failures} == {"Readiness probe failed: warming up"}
    assert not prober.ready


async def test_readiness_turns_ready_after_the_success_threshold(running: Start) -> None:
    probed = await running(["sh", "-c", "sleep 1.5"])
    prober = probed.prober(readiness=exec_probe("true", success_threshold=2))
    await probed.until_exit(prober)
    assert prober.ready


async def test_a_slow_command_times_out(running: Start) -> None:
    probed = await running(["sleep", "infinity"])
    prober = probed.prober(liveness=exec_probe("sleep", "5", failure_threshold=1, timeout_seconds=1))
    outcome = await probed.until_exit(prober)
    assert outcome == ProbeFailure("Liveness", 'command "sleep 5" timed out')


async def test_initial_delay_postpones_the_first_attempt(running: Start) -> None:
    probed = await running(["sh", "-c", "sleep 1.5"])
    await probed.until_exit(probed.prober(liveness=exec_probe("true", initial_delay_seconds=5)))
    assert probed.runtime.execs == []


async def test_secret_values_never_reach_a_failure(running: Start) -> None:
    probed = await running(["sleep", "infinity"])
    prober = probed.prober(
        liveness=exec_probe("sh", "-c", "echo token s3cr3t-value; exit 1", failure_threshold=1),
        secrets=("s3cr3t-value",),
    )
    assert await probed.until_exit(prober) == ProbeFailure("Liveness", "token ***")


async def test_cancelling_leaves_no_probe_running(running: Start) -> None:
    probed = await running(["sleep", "infinity"])
    prober = probed.prober(liveness=exec_probe("true"), readiness=exec_probe("sh", "-c", "echo no; exit 1"))
    before = asyncio.all_tasks()  # the test's own and the fake container's process
    supervising = asyncio.create_task(probed.until_exit(prober))
    await asyncio.sleep(1.5)
    supervising.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervising
    assert asyncio.all_tasks() == before
    ran = len(probed.runtime.execs)
    assert ran >= 2
    await asyncio.sleep(1.5)
    assert len(probed.runtime.execs) == ran


async def test_the_exit_ends_probing(running: Start) -> None:
    probed = await running(["sh", "-c", "sleep 1.2"])
    before = asyncio.all_tasks()
    await probed.until_exit(probed.prober(readiness=exec_probe("true")))
    assert asyncio.all_tasks() < before  # the container's process ended too
    ran = len(probed.runtime.execs)
    await asyncio.sleep(1.2)
    assert len(probed.runtime.execs) == ran


# -- httpGet ---------------------------------------------------------------------------------------


@dataclass
class Site:
    """A real local HTTP server: ``/healthz`` answers 200, ``/hang`` never answers, anything
    else 404; it records the request heads it got."""

    port: int
    requests: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def site(context: ssl.SSLContext | None = None) -> AsyncIterator[Site]:
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(t) if (t := asyncio.current_task()) else None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            found.requests.append(head)
            path = head.split(b" ")[1]
            if path == b"/hang":
                await asyncio.sleep(30)
            status = b"200 OK" if path == b"/healthz" else b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    found = Site(server.sockets[0].getsockname()[1])
    try:
        yield found
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def http_get(
    port: int,
    path: str | None,
    *,
    scheme: ProbeScheme = "http",
    headers: tuple[HttpHeaderDefinition, ...] = (),
) -> HttpGetDefinition:
    return HttpGetDefinition(port=port, path=path, scheme=scheme, headers=headers)


async def test_http_2xx_passes_and_sends_kubelets_request() -> None:
    async with site() as found:
        get = http_get(found.port, "/healthz", headers=(HttpHeaderDefinition("X-Probe", "yes"),))
        assert await http_get_attempt(get, "127.0.0.1", 1) is None
    head = found.requests[0].decode()
    assert head.startswith("GET /healthz HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{found.port}\r\n" in head
    assert "User-Agent: kube-probe/" in head
    assert "X-Probe: yes\r\n" in head


async def test_http_error_status_fails_with_the_status() -> None:
    async with site() as found:
        failure = await http_get_attempt(http_get(found.port, "/missing"), "127.0.0.1", 1)
    assert failure == "HTTP probe failed with statuscode: 404"


async def test_http_connection_refused() -> None:
    async with site() as found:
        port = found.port
    failure = await http_get_attempt(http_get(port, None), "127.0.0.1", 1)
    assert (
        failure == f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


async def test_http_timeout() -> None:
    async with site() as found:
        failure = await http_get_attempt(http_get(found.port, "/hang"), "127.0.0.1", 1)
    assert failure == (
        f'Get "http://127.0.0.1:{found.port}/hang": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)"
    )


async def test_https_does_not_verify_the_certificate(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls")  # issued by a CA the prober has never seen
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_path, tls.key_path)
    async with site(context) as found:
        get = http_get(found.port, "/healthz", scheme="https")
        assert await http_get_attempt(get, "127.0.0.1", 2) is None
        missing = http_get(found.port, "/nope", scheme="https")
        assert await http_get_attempt(missing, "127.0.0.1", 2) == "HTTP probe failed with statuscode: 404"


async def test_http_without_an_address_fails_clearly() -> None:
    failure = await http_get_attempt(http_get(8080, "/healthz"), None, 1)
    assert failure is not None
    assert failure.startswith('Get "http://:8080/healthz": the container group has no IP address')
