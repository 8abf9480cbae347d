"""Running a command in a container over ACI's exec websocket.

``POST .../containers/{c}/exec`` (see :meth:`moorage.client.arm.ContainerGroups.exec_session`)
answers ``{webSocketUri, password}``; the client connects, sends the password as its first text
message and then receives the command's terminal output as text frames (binary frames for bytes
that are not UTF-8) until the server closes the socket — with 1000 and ``exit code <n>`` when the
process exits, 1008 when it refuses the session (expired, reused, wrong password), 1011 when the
command could not be started.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from moorage.client import ApiError, MoorageClient

_EXIT = re.compile(r"exit code (-?\d+)")
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class ExecResult:
    """How the session ended: the process's exit code when the server reported one."""

    exit_code: int | None
    close_code: int | None
    close_reason: str


async def run_exec_session(
    client: MoorageClient, session: Mapping[str, Any], on_output: Callable[[str | bytes], None]
) -> ExecResult:
    """Run the session ``session`` (the exec POST's answer), passing every message to ``on_output``.

    Raises :class:`ApiError`: ``ExecSessionRefused`` (1008), the server's code when the command
    could not be started (1011), ``ExecConnectionFailed`` when the socket cannot be opened.
    Nothing is sent after the password, so the command sees no input.
    """
    uri = str(session.get("webSocketUri") or "")
    password = str(session.get("password") or "")
    context = client.tls if isinstance(client.tls, ssl.SSLContext) else None
    try:
        async with connect(
            uri, ssl=context if uri.startswith("wss:") else None, max_size=None, open_timeout=30
        ) as socket:
            await socket.send(password)
            try:
                async for message in socket:
                    on_output(message)
            except ConnectionClosed:
                pass  # an abnormal close still has its code and reason, read below
            code, reason = socket.close_code, socket.close_reason or ""
    except (InvalidURI, InvalidHandshake, OSError, TimeoutError) as exc:
        raise ApiError(0, "ExecConnectionFailed", f"Cannot open the exec websocket {uri}: {exc}") from exc
    if code == POLICY_VIOLATION:
        raise ApiError(0, "ExecSessionRefused", f"The server refused the exec session ({reason}).")
    if code == INTERNAL_ERROR:
        raise ApiError(0, reason or "ExecFailed", "The command could not be started in the container.")
    match = _EXIT.fullmatch(reason.strip())
    return ExecResult(int(match.group(1)) if match else None, code, reason)
