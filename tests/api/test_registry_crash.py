"""Blob uploads survive a crash: SIGKILL the server while concurrent chunked uploads are in
flight, restart it, and check that exactly the acknowledged blobs exist, intact, and that no
partial file sits at a blob path.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from tests.api.conftest import RawArm, fetch_token, trust
from tests.api.registry_support import API, admin_password, create_registry
from tests.images import sha256
from tests.server import RunningServer

KiB = 1024
MiB = 1024 * KiB
BLOB_SIZE = 4 * MiB
CHUNK = 512 * KiB
OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class Target:
    """Where and as whom to push: the registry's login server and its admin user."""

    server: RunningServer
    login_server: str
    username: str
    password: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://{self.login_server}",
            verify=trust(self.server),
            auth=(self.username, self.password),
            timeout=60,
        )


@dataclass
class Ledger:
    """What the racing uploaders saw: blobs acknowledged with 201, and the one whose closing PUT
    was sent but never answered (the server may or may not have committed it)."""

    acknowledged: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    never_closed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def arm(server: RunningServer) -> RawArm:
    return RawArm(server, fetch_token(server, server.client_id, server.client_secret))


def make_registry(server: RunningServer) -> tuple[str, Target]:
    """A registry (admin user on) in a resource group of its own; its ARM id and a target."""
    raw = arm(server)
    with raw.http:
        group = f"rg-crash-{uuid.uuid4().hex[:8]}"
        path = f"/subscriptions/{server.subscription_id}/resourcegroups/{group}"
        assert raw.request("PUT", path, json={"location": "westus"}).status_code in (200, 201)
        registry = create_registry(raw, group, adminUserEnabled=True)
        return registry.id, Target(
            server, registry.login_server, registry.name, admin_password(raw, registry)
        )


def reread(server: RunningServer, registry_id: str, before: Target) -> Target:
    """The registry as ARM describes it after a restart (its login server may have moved)."""
    raw = arm(server)
    with raw.http:
        response = raw.request("GET", registry_id, api_version=API)
        assert response.status_code == 200, response.text
        credentials = raw.request("POST", f"{registry_id}/listCredentials", api_version=API)
        assert credentials.status_code == 200, credentials.text
        password = credentials.json()["passwords"][0]["value"]
    return Target(server, response.json()["properties"]["loginServer"], before.username, password)


def random_bytes(size: int) -> bytes:
    # Cheap, distinct, incompressible enough: hash-chained blocks.
    seed = uuid.uuid4().bytes
    blocks = []
    for i in range(size // 64 + 1):
        seed = hashlib.sha512(seed + i.to_bytes(8, "big")).digest()
        blocks.append(seed)
    return b"".join(blocks)[:size]


def patch_chunks(http: httpx.Client, location: str, data: bytes, start: int = 0) -> str:
    """PATCH ``data`` (which begins at offset ``start``) in CHUNK pieces; the next location."""
    for offset in range(0, len(data), CHUNK):
        part = data[offset : offset + CHUNK]
        first = start + offset
        response = http.patch(
            location,
            content=part,
            headers={"Content-Type": OCTETS, "Content-Range": f"{first}-{first + len(part) - 1}"},
        )
        assert response.status_code == 202, response.text
        location = response.headers["location"]
    return location


def open_upload(http: httpx.Client, repo: str) -> str:
    response = http.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["location"]


def stalling(data: bytes, stalled: threading.Event, release: threading.Event) -> Iterator[bytes]:
    """Send the first half, say so, then hang until released (the server is dead by then)."""
    half = len(data) // 2
    yield data[:half]
    stalled.set()
    release.wait(60)
    yield data[half:]


def complete_upload(target: Target, repo: str, data: bytes) -> str:
    with target.client() as http:
        location = patch_chunks(http, open_upload(http, repo), data)
        done = http.put(with_query(location, digest=sha256(data)))
        assert done.status_code == 201, done.text
    return sha256(data)


def stalled_upload(
    target: Target, repo: str, data: bytes, how: str, *, stalled: threading.Event, release: threading.Event
) -> int | None:
    """An upload left mid-stream: in a PATCH, in the closing PUT, or in a single-POST upload.
    Returns the status if the server ever answered the stalled request (it must not)."""
    tail = data[-CHUNK:]
    first = len(data) - len(tail)
    headers = {
        "Content-Type": OCTETS,
        "Content-Length": str(len(tail)),
        "Content-Range": f"{first}-{len(data) - 1}",
    }
    with target.client() as http:
        try:
            if how == "post":
                response = http.post(
                    with_query(f"/v2/{repo}/blobs/uploads/", digest=sha256(data)),
                    content=stalling(data, stalled, release),
                    headers={"Content-Type": OCTETS, "Content-Length": str(len(data))},
                )
            else:
                location = patch_chunks(http, open_upload(http, repo), data[:first])
                if how == "patch":
                    response = http.patch(location, content=stalling(tail, stalled, release), headers=headers)
                else:
                    response = http.put(
                        with_query(location, digest=sha256(data)),
                        content=stalling(tail, stalled, release),
                        headers=headers,
                    )
        except (httpx.HTTPError, OSError):
            return None
    return response.status_code


def racing_uploads(target: Target, repo: str, ledger: Ledger, stop: threading.Event) -> None:
    """Upload 1 MiB blobs back to back until the server dies under us."""
    with target.client() as http:
        while not stop.is_set():
            data = random_bytes(MiB)
            digest = sha256(data)
            try:
                location = open_upload(http, repo)
                for offset in range(0, len(data), 256 * KiB):
                    part = data[offset : offset + 256 * KiB]
                    response = http.patch(
                        location,
                        content=part,
                        headers={"Content-Range": f"{offset}-{offset + len(part) - 1}"},
                    )
                    if response.status_code != 202:
                        raise httpx.HTTPError(f"PATCH answered {response.status_code}")
                    location = response.headers["location"]
            except (httpx.HTTPError, OSError, AssertionError):
                with ledger.lock:
                    ledger.never_closed.append(digest)
                return
            try:
                done = http.put(with_query(location, digest=digest))
            except (httpx.HTTPError, OSError):
                with ledger.lock:
                    ledger.in_doubt.append(digest)
                return
            with ledger.lock:
                (ledger.acknowledged if done.status_code == 201 else ledger.never_closed).append(digest)


def blob_files(home: Path) -> list[Path]:
    root = home / "content" / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


def hashes_to_its_name(path: Path) -> bool:
    algorithm = path.parent.parent.name
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, algorithm).hexdigest() == path.name


def test_sigkill_mid_upload_keeps_exactly_the_acknowledged_blobs(fresh_server: RunningServer) -> None:
    registry_id, target = make_registry(fresh_server)
    repo = f"crash/{uuid.uuid4().hex[:8]}"
    completed = [random_bytes(BLOB_SIZE) for _ in range(3)]
    stalls = {how: (random_bytes(BLOB_SIZE), threading.Event()) for how in ("patch", "put", "post")}
    release, stop = threading.Event(), threading.Event()
    ledger = Ledger()

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = [pool.submit(complete_upload, target, repo, data) for data in completed]
        stalled = [
            pool.submit(stalled_upload, target, repo, data, how, stalled=event, release=release)
            for how, (data, event) in stalls.items()
        ]
        racers = [pool.submit(racing_uploads, target, repo, ledger, stop) for _ in range(2)]
        acknowledged = [future.result(timeout=120) for future in done]
        for _, event in stalls.values():
            assert event.wait(60)
        time.sleep(0.3)  # let the server take in what the stalled requests sent
        fresh_server.stop(signal.SIGKILL)
        stop.set()
        release.set()
        assert [future.result(timeout=60) for future in stalled] == [None, None, None]
        for future in racers:
            future.result(timeout=60)
    fresh_server.start()

    target = reread(fresh_server, registry_id, target)
    acknowledged += ledger.acknowledged
    assert ledger.acknowledged, "the racing uploads never completed one blob before the kill"
    with target.client() as http:
        for digest in acknowledged:
            response = http.get(f"/v2/{repo}/blobs/{digest}")
            assert response.status_code == 200, digest
            assert sha256(response.content) == digest
        unacknowledged = [sha256(data) for data, _ in stalls.values()] + ledger.never_closed
        for digest in unacknowledged:
            assert http.head(f"/v2/{repo}/blobs/{digest}").status_code == 404, digest
        for digest in ledger.in_doubt:  # committed or not, never torn
            response = http.get(f"/v2/{repo}/blobs/{digest}")
            assert response.status_code in (200, 404)
            if response.status_code == 200:
                assert sha256(response.content) == digest

    files = blob_files(fresh_server.home)
    assert files
    torn = [str(p) for p in files if not hashes_to_its_name(p)]
    assert torn == []
    present = {f"{p.parent.parent.name}:{p.name}" for p in files}
    assert set(acknowledged) <= present
    assert not {sha256(data) for data, _ in stalls.values()} & present


def test_upload_interrupted_by_sigkill_resumes_or_restarts_cleanly(fresh_server: RunningServer) -> None:
    """After the crash the session is either gone (404) or reports a Range no larger than what
    was sent, and finishing it from there yields the right blob."""
    registry_id, target = make_registry(fresh_server)
    repo = f"crash/{uuid.uuid4().hex[:8]}"
    data = random_bytes(BLOB_SIZE)
    stalled, release = threading.Event(), threading.Event()
    with target.client() as http:
        location = patch_chunks(http, open_upload(http, repo), data[: 2 * MiB])
    sent = 2 * MiB + CHUNK // 2
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_stall_at, target, location, data, stalled, release)
        assert stalled.wait(60)
        time.sleep(0.3)
        fresh_server.stop(signal.SIGKILL)
        release.set()
        assert future.result(timeout=60) is None
    fresh_server.start()

    target = reread(fresh_server, registry_id, target)
    path = httpx.URL(location).path
    with target.client() as http:
        status = http.get(path)
        if status.status_code == 404:  # sessions dropped on restart: allowed, if said properly
            assert status.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
            return
        assert status.status_code == 204, status.text
        end = int(status.headers["range"].split("-")[1])
        received = end + 1
        assert 2 * MiB <= received <= sent
        resumed = patch_chunks(http, status.headers["location"], data[received:], start=received)
        done = http.put(with_query(resumed, digest=sha256(data)))
        assert done.status_code == 201, done.text
        assert sha256(http.get(f"/v2/{repo}/blobs/{sha256(data)}").content) == sha256(data)


def _stall_at(
    target: Target, location: str, data: bytes, stalled: threading.Event, release: threading.Event
) -> int | None:
    chunk = data[2 * MiB : 2 * MiB + CHUNK]
    headers = {
        "Content-Type": OCTETS,
        "Content-Length": str(len(chunk)),
        "Content-Range": f"{2 * MiB}-{2 * MiB + len(chunk) - 1}",
    }
    with target.client() as http:
        try:
            response = http.patch(location, content=stalling(chunk, stalled, release), headers=headers)
        except (httpx.HTTPError, OSError):
            return None
    return response.status_code
