"""The websocket edge of container exec and attach sessions (:mod:`moorage.instances.exec_sessions`).

Served on the main HTTPS listener::

    wss://<host>:<port>/moorage/containers/exec/<session id>
    wss://<host>:<port>/moorage/containers/attach/<session id>

The protocol is ACI's, as ``az container exec`` speaks it: the client opens the socket and sends
the session's password as its first message (for attach, ACI documents it as the
``Authorization`` header of the handshake: both ways are accepted on both paths). Then:

* output travels to the client as it comes: text frames while it is UTF-8 (a character split
  between two reads waits for its end), binary frames for anything else;
* every message from the client (text or binary) is typed into the exec'd process's terminal
  (attach ignores input);
* when the process exits the server closes with 1000 and the reason ``exit code <n>``; when the
  attached container exits, with 1000 and ``container exited``.

A wrong, expired, unknown or reused session (or no password within 30 s) is closed with 1008
(policy violation) before anything runs; a process that cannot be started (the container
stopped meanwhile) is reported as one text message and a close with 1011 (an unexpected failure
too: its message is only a correlation id, the traceback is logged once).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.status import WS_1000_NORMAL_CLOSURE, WS_1008_POLICY_VIOLATION, WS_1011_INTERNAL_ERROR
from starlette.websockets import WebSocket, WebSocketDisconnect

from moorage.core.errors import MoorageError
from moorage.core.log import get_logger
from moorage.instances.exec_sessions import ChannelClosed, ExecSessionRejected, ExecSessions, SessionKind

log = get_logger("exec.socket")

PATH_PREFIX = "/moorage/containers"
PASSWORD_TIMEOUT_S = 30.0
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # what sending to a closed socket raises


class _SocketChannel:
    """A session's :class:`~moorage.instances.exec_sessions.Channel` over one websocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    async def send(self, data: bytes) -> None:
        held, _ = self._decoder.getstate()
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError:
            self._decoder.reset()
            await self._send(held + data)
            return
        if text:
            await self._send(text)

    async def finish(self) -> None:
        """Send what the decoder still holds (output that ended inside a character)."""
        held, _ = self._decoder.getstate()
        self._decoder.reset()
        if held:
            await self._send(held)

    async def _send(self, frame: str | bytes) -> None:
        try:
            if isinstance(frame, str):
                await self._websocket.send_text(frame)
            else:
                await self._websocket.send_bytes(frame)
        except _GONE as exc:
            raise ChannelClosed from exc

    async def receive(self) -> bytes | None:
        try:
            message = await self._websocket.receive()
        except _GONE:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            return bytes(message["bytes"])
        return str(message.get("text") or "").encode("utf-8", "surrogateescape")


class ExecSocketEdge:
    """Routes for the exec/attach websockets; ``public_url`` (``https://host:port``) is where
    clients reach this server, from which :meth:`uri` builds ``webSocketUri``."""

    def __init__(self, sessions: ExecSessions, public_url: str) -> None:
        self._sessions = sessions
        scheme, _, rest = public_url.rstrip("/").partition("://")
        self.socket_base = f"{'wss' if scheme == 'https' else 'ws'}://{rest}{PATH_PREFIX}"

    def uri(self, kind: SessionKind, session_id: str) -> str:
        return f"{self.socket_base}/{kind.value}/{session_id}"

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute(f"{PATH_PREFIX}/{kind.value}/{{session_id}}", self._endpoint(kind))
            for kind in SessionKind
        ]

    def _endpoint(self, kind: SessionKind) -> Callable[[WebSocket], Awaitable[None]]:
        async def endpoint(websocket: WebSocket) -> None:
            await self._serve(websocket, kind)

        return endpoint

    async def _serve(self, websocket: WebSocket, kind: SessionKind) -> None:
        session_id = str(websocket.path_params.get("session_id", ""))
        await websocket.accept()
        password = await self._password(websocket)
        if password is None:
            return
        try:
            session = self._sessions.redeem(session_id, password, kind)
        except ExecSessionRejected:
            await _close(websocket, WS_1008_POLICY_VIOLATION, "session refused")
            return
        channel = _SocketChannel(websocket)
        try:
            code = await self._sessions.run(session, channel)
        except MoorageError as error:
            with contextlib.suppress(ChannelClosed):
                await channel.send(f"{error.message}\r\n".encode())
            await _close(websocket, WS_1011_INTERNAL_ERROR, error.code)
            return
        except Exception:
            correlation_id = str(uuid.uuid4())
            log.exception("exec session failed", session=session.id, correlation_id=correlation_id)
            with contextlib.suppress(ChannelClosed):
                await channel.send(f"Internal error. Correlation id: {correlation_id}.\r\n".encode())
            await _close(websocket, WS_1011_INTERNAL_ERROR, "InternalError")
            return
        with contextlib.suppress(ChannelClosed):
            await channel.finish()
        if kind is SessionKind.EXEC:
            reason = f"exit code {code}" if code is not None else ""
        else:
            reason = "container exited"
        await _close(websocket, WS_1000_NORMAL_CLOSURE, reason)

    @staticmethod
    async def _password(websocket: WebSocket) -> str | None:
        """The ``Authorization`` header, else the first message; None (socket closed) if the
        client sends none in time or leaves."""
        header = websocket.headers.get("authorization")
        if header:
            return header
        try:
            message = await asyncio.wait_for(websocket.receive(), PASSWORD_TIMEOUT_S)
        except TimeoutError:
            await _close(websocket, WS_1008_POLICY_VIOLATION, "no password")
            return None
        except _GONE:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("text") is not None:
            return str(message["text"])
        return bytes(message.get("bytes") or b"").decode("utf-8", "replace")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(*_GONE):
        await websocket.close(code, reason[:120])
