"""Registry benchmark: moorage vs CNCF distribution (Debian ``docker-registry``), side by side.

Run from the repository root::

    .venv/bin/python bench/registry_bench.py            # full run, writes docs/benchmarks.md
    .venv/bin/python bench/registry_bench.py --quick    # small sizes, a smoke run (prints only)

Both servers run on loopback over HTTPS (distribution is given moorage's CA-signed server
certificate) and both use Bearer token auth: moorage issues its own ACR tokens from
``/oauth2/token`` (admin user's Basic credentials), distribution is configured with
``auth: token`` against a tiny token server in this script that signs ES256 JWTs with a
throw-away key whose self-signed certificate is distribution's ``rootcertbundle``. The token is
fetched once per phase, outside the timings, so only the per-request Bearer verification counts.

The same clients drive both servers with the same bytes in the same order: pushes and HEADs
go through one httpx client (HTTP/1.1, keep-alive, streaming bodies); pulls are timed with
``curl`` (one process per measurement, which first warms its keep-alive connection with
``GET /v2/`` and then downloads the blob to ``/dev/null``), because a Python client cannot read
TLS much faster than ~450 MiB/s and would measure itself. Every pulled blob is verified
(size and sha256) once per server with the httpx client, outside the timings. The two servers
alternate per repetition (and who goes first alternates too) so that drift on a shared machine
hits both alike. Results are medians.

This is a benchmark, not a test: it is not collected by pytest and CI does not run it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from benchdoc import write_section
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = ROOT / "docs" / "benchmarks.md"
DISTRIBUTION = "/usr/bin/docker-registry"
CURL = shutil.which("curl") or "/usr/bin/curl"
MIB = 1 << 20
GIB = 1 << 30
REPO = "bench/data"
SEED = 20240603
PIECE = 1 * MIB  # bytes per write the client hands to the socket
ARM = "2024-11-01"
ACR = "2025-04-01"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MARKER = 16  # the last 16 bytes of every blob make it unique per size and repetition
SECTION_START = "<!-- registry-bench:start -->"
SECTION_END = "<!-- registry-bench:end -->"
MOORAGE, DIST = "moorage", "distribution"


# -- what to measure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    push: tuple[tuple[int, int], ...]  # (size, repetitions), monolithic POST + PUT
    chunked: tuple[int, int, int]  # (size, chunk size, repetitions)
    pull: tuple[tuple[int, int], ...]  # (size, repetitions)
    head_requests: int  # per server, after a warm-up
    concurrent: tuple[int, int, int]  # (workers, size, repetitions)
    rss_push: int  # the monolithic push size during which server RSS is sampled


FULL = Profile(
    name="full",
    push=((1 * MIB, 15), (100 * MIB, 5), (1 * GIB, 3)),
    chunked=(100 * MIB, 8 * MIB, 5),
    pull=((10 * MIB, 15), (100 * MIB, 5), (1 * GIB, 3)),
    head_requests=500,
    concurrent=(8, 100 * MIB, 3),
    rss_push=1 * GIB,
)
QUICK = Profile(
    name="quick",
    push=((1 * MIB, 3), (8 * MIB, 3), (32 * MIB, 2)),
    chunked=(16 * MIB, 4 * MIB, 2),
    pull=((1 * MIB, 3), (8 * MIB, 3), (32 * MIB, 2)),
    head_requests=100,
    concurrent=(8, 8 * MIB, 2),
    rss_push=32 * MIB,
)


def size_label(size: int) -> str:
    if size >= GIB and size % GIB == 0:
        return f"{size // GIB} GiB"
    return f"{size / MIB:g} MiB"


# -- test data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """``data[:size - MARKER] + marker``: a prefix of the shared random buffer made unique by its
    last bytes, so every repetition uploads a new digest (no "already exists" shortcut)."""

    data: memoryview
    size: int
    marker: bytes
    digest: str

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[bytes | memoryview]:
        """Bytes ``[start, end)`` of the blob in pieces of at most ``PIECE``."""
        end = self.size if end is None else end
        body_end = self.size - MARKER
        position = start
        while position < min(end, body_end):
            stop = min(position + PIECE, end, body_end)
            yield self.data[position:stop]
            position = stop
        if end > body_end:
            yield self.marker[max(start - body_end, 0) : end - body_end]


def random_bytes(size: int) -> bytes:
    """``size`` deterministic pseudo-random bytes (in 64 MiB steps: ``randbytes`` of 1 GiB at once
    overflows on Python 3.11)."""
    generator = random.Random(SEED)  # noqa: S311 - test data, not secrets
    data = bytearray()
    while len(data) < size:
        data += generator.randbytes(min(64 * MIB, size - len(data)))
    return bytes(data)


class BlobFactory:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._prefix_hash: dict[int, Any] = {}

    def blob(self, size: int, tag: str) -> Blob:
        marker = hashlib.sha256(f"{size}:{tag}".encode()).digest()[:MARKER]
        prefix = self._prefix_hash.get(size)
        if prefix is None:
            prefix = self._prefix_hash[size] = hashlib.sha256(self._data[: size - MARKER])
        hasher = prefix.copy()
        hasher.update(marker)
        return Blob(self._data, size, marker, f"sha256:{hasher.hexdigest()}")


# -- the one client -----------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class OciClient:
    """A minimal OCI distribution client: one keep-alive HTTP/1.1 connection, Bearer tokens from
    the registry's challenge, streamed uploads and downloads."""

    def __init__(self, base_url: str, username: str, password: str, verify: ssl.SSLContext) -> None:
        self.base_url = base_url
        self.verify = verify
        self._username = username
        self._password = password
        self.http = httpx.Client(
            base_url=base_url,
            verify=verify,
            http1=True,
            http2=False,
            timeout=httpx.Timeout(600.0, connect=10.0),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        self.token: str | None = None
        self.challenge = ""

    def close(self) -> None:
        self.http.close()

    # -- auth ------------------------------------------------------------------------------------
    def login(self, scope: str) -> None:
        """Follow the ``/v2/`` challenge to the token realm and keep the access token."""
        self.http.headers.pop("Authorization", None)
        response = self.http.get("/v2/")
        if response.status_code != 401:
            raise RuntimeError(f"{self.base_url}/v2/ answered {response.status_code}, expected a challenge")
        self.challenge = response.headers.get("www-authenticate", "")
        scheme, _, params = self.challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise RuntimeError(f"{self.base_url} does not ask for Bearer tokens: {self.challenge!r}")
        values = dict(_CHALLENGE_PARAM.findall(params))
        response = self.http.get(
            values["realm"],
            params={"service": values.get("service", ""), "scope": scope},
            auth=(self._username, self._password),
        )
        response.raise_for_status()
        body = response.json()
        self.token = str(body.get("access_token") or body["token"])
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        check = self.http.get("/v2/")
        if check.status_code != 200:
            raise RuntimeError(f"{self.base_url}/v2/ refused the token: {check.status_code} {check.text}")

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
        if response.status_code not in statuses:
            raise RuntimeError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
        return response

    def _start_upload(self, repo: str) -> str:
        response = self._expect(self.http.post(f"/v2/{repo}/blobs/uploads/"), 202)
        return response.headers["location"]

    @staticmethod
    def _with_digest(location: str, digest: str) -> httpx.URL:
        return httpx.URL(location).copy_merge_params({"digest": digest})

    # -- blobs -----------------------------------------------------------------------------------
    def push_monolithic(self, repo: str, blob: Blob) -> None:
        location = self._start_upload(repo)
        self._expect(
            self.http.put(
                self._with_digest(location, blob.digest),
                content=blob.pieces(),
                headers={"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"},
            ),
            201,
        )

    def push_chunked(self, repo: str, blob: Blob, chunk: int) -> None:
        location = self._start_upload(repo)
        for start in range(0, blob.size, chunk):
            end = min(start + chunk, blob.size)
            response = self._expect(
                self.http.patch(
                    location,
                    content=blob.pieces(start, end),
                    headers={
                        "Content-Length": str(end - start),
                        "Content-Range": f"{start}-{end - 1}",
                        "Content-Type": "application/octet-stream",
                    },
                ),
                202,
            )
            location = response.headers["location"]
        self._expect(
            self.http.put(self._with_digest(location, blob.digest), headers={"Content-Length": "0"}), 201
        )

    def pull(self, repo: str, digest: str, size: int) -> None:
        hasher = hashlib.sha256()
        received = 0
        with self.http.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            self._expect(response, 200)
            for chunk in response.iter_raw():
                hasher.update(chunk)
                received += len(chunk)
        if received != size or f"sha256:{hasher.hexdigest()}" != digest:
            raise RuntimeError(f"pulled {received} bytes of {digest} with the wrong digest")

    def put_small_blob(self, repo: str, data: bytes) -> str:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        location = self._start_upload(repo)
        self._expect(
            self.http.put(
                self._with_digest(location, digest),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            201,
        )
        return digest

    # -- manifests -------------------------------------------------------------------------------
    def put_manifest(self, repo: str, tag: str, body: bytes) -> None:
        self._expect(
            self.http.put(
                f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
            ),
            201,
        )

    def head_manifest(self, repo: str, tag: str) -> None:
        response = self.http.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        if response.status_code != 200 or not response.headers.get("docker-content-digest"):
            raise RuntimeError(f"HEAD manifest -> {response.status_code}")


# -- distribution's token server ----------------------------------------------------------------------


class TokenServer:
    """Issues distribution-style JWTs (ES256, ``x5c`` header) for Basic credentials; grants every
    requested action, as moorage does for a registry's admin user."""

    def __init__(self, workdir: Path, cert: Path, key: Path, username: str, password: str) -> None:
        self.issuer = "moorage-bench-token-issuer"
        self.service = "moorage-bench-distribution"
        self._username, self._password = username, password
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moorage bench token signer")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.root_bundle = workdir / "token-root.pem"
        self.root_bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.realm = f"https://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        expected = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            self._send(request, 401, {"details": "bad credentials"})
            return
        query = parse_qs(urlsplit(request.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self._username,
            "aud": self.service,
            "exp": now + 7200,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c]})
        self._send(request, 200, {"token": token, "access_token": token, "expires_in": 7200})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


# -- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Target:
    name: str
    pid: int
    client: OciClient
    cafile: str  # the CA bundle curl trusts (the same for both servers)


def start_moorage(home: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_HOME"] = str(home)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    connection = home / "connection.json"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moorage exited with {process.returncode}: {log.read_text(errors='replace')}")
        if connection.exists():
            with contextlib.suppress(ValueError):
                info = json.loads(connection.read_text())
                context = ssl.create_default_context(cafile=info["caPath"])
                with contextlib.suppress(httpx.HTTPError):
                    url = f"{info['endpoint']}/metadata/endpoints?api-version=2022-09-01"
                    if httpx.get(url, verify=context, timeout=2).status_code == 200:
                        return process, info
        time.sleep(0.1)
    raise TimeoutError(f"moorage did not become ready: {log.read_text(errors='replace')}")


def create_registry(info: dict[str, Any], verify: ssl.SSLContext) -> tuple[str, str, str]:
    """Resource group + Premium registry with the admin user, through ARM; returns
    (login server, admin username, admin password)."""
    endpoint, sub = info["endpoint"], info["subscriptionId"]
    with httpx.Client(base_url=endpoint, verify=verify, timeout=60) as arm:
        response = arm.post(
            f"/{info['tenantId']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["clientId"],
                "client_secret": info["clientSecret"],
                "scope": "https://management.azure.com/.default",
            },
        )
        response.raise_for_status()
        arm.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        group = f"/subscriptions/{sub}/resourcegroups/bench"
        response = arm.put(group, params={"api-version": ARM}, json={"location": "westus"})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"resource group: {response.status_code} {response.text}")
        registry = (
            f"/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.ContainerRegistry/registries/"
        )
        registry += f"bench{uuid.uuid4().hex[:8]}"
        response = arm.put(
            registry,
            params={"api-version": ACR},
            json={"location": "westus", "sku": {"name": "Premium"}, "properties": {"adminUserEnabled": True}},
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"registry: {response.status_code} {response.text}")
        deadline = time.monotonic() + 60
        body = response.json()
        while body["properties"].get("provisioningState") != "Succeeded":
            if time.monotonic() > deadline:
                raise TimeoutError(f"registry not provisioned: {body}")
            time.sleep(0.2)
            body = arm.get(registry, params={"api-version": ACR}).json()
        creds = arm.post(f"{registry}/listCredentials", params={"api-version": ACR})
        creds.raise_for_status()
        data = creds.json()
        return body["properties"]["loginServer"], data["username"], data["passwords"][0]["value"]


def start_distribution(
    workdir: Path, cert: Path, key: Path, tokens: TokenServer, verify: ssl.SSLContext
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    storage = workdir / "distribution-data"
    storage.mkdir()
    # Debian's /etc/docker/registry/config.yml, with token auth and TLS instead of htpasswd.
    config = f"""\
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: {cert}
    key: {key}
auth:
  token:
    realm: {tokens.realm}
    service: {tokens.service}
    issuer: {tokens.issuer}
    rootcertbundle: {tokens.root_bundle}
"""
    config_path = workdir / "distribution.yml"
    config_path.write_text(config)
    log = workdir / "distribution.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [DISTRIBUTION, "serve", str(config_path)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"https://127.0.0.1:{port}/v2/", verify=verify, timeout=2).status_code == 401:
                return process, port
        time.sleep(0.1)
    raise TimeoutError(f"docker-registry did not become ready: {log.read_text(errors='replace')}")


# -- measuring ----------------------------------------------------------------------------------------


class RssSampler:
    """Peak ``VmRSS`` of one process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        for line in self._path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def client_cpu() -> float:
    """CPU seconds of the clients: this process plus its finished (waited-for) children, i.e. the
    curl processes. The servers are children too, but still running, so they never count here."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, as measured
    server_cpu: float  # CPU seconds the server process used meanwhile
    client_cpu: float  # CPU seconds the clients (this process, curl) used meanwhile
    client_wall: float  # seconds the clients ran (curl: the whole process, start-up included)


def interleave(
    targets: list[Target], reps: int, run: Callable[[Target, int], float | tuple[float, float]]
) -> dict[str, list[Sample]]:
    """Run ``run(target, rep)`` for every repetition on both targets, alternating who goes first;
    CPU use of both sides is taken around each call. ``run`` returns the wall time it measured,
    or (that, the wall time the client processes ran) when those differ."""
    results: dict[str, list[Sample]] = {t.name: [] for t in targets}
    for rep in range(reps):
        order = targets if rep % 2 == 0 else targets[::-1]
        for target in order:
            server, client = process_cpu(target.pid), client_cpu()
            measured = run(target, rep)
            wall, client_wall = measured if isinstance(measured, tuple) else (measured, measured)
            results[target.name].append(
                Sample(wall, process_cpu(target.pid) - server, client_cpu() - client, client_wall)
            )
    return results


@dataclass(frozen=True)
class Transfer:
    """One blob download by curl: when it started and ended (this process's clock, taken as curl
    reported the warm-up and the download on its unbuffered stderr), and curl's own time."""

    started: float
    ended: float
    seconds: float  # curl's time_total of the download (the connection was already open)
    size: int


# One line per transfer, on stderr (unbuffered): the reader thread timestamps it on arrival.
_CURL_FORMAT = "%{stderr}transfer %{http_code} %{size_download} %{time_total}\\n"


def _curl_config(target: Target, digest: str) -> str:
    base = target.client.base_url
    return "\n".join(
        [
            "silent",
            "show-error",
            "http1.1",
            f'cacert = "{target.cafile}"',
            f'header = "Authorization: Bearer {target.client.token}"',
            f'write-out = "{_CURL_FORMAT}"',
            f'url = "{base}/v2/"',  # opens the connection (TCP + TLS) before the timed download
            'output = "/dev/null"',
            f'url = "{base}/v2/{REPO}/blobs/{digest}"',
            'output = "/dev/null"',
            "",
        ]
    )


def curl_pulls(target: Target, digest: str, size: int, count: int) -> tuple[list[Transfer], float]:
    """``count`` curl processes at once, each downloading the blob once over a warmed-up
    keep-alive connection; returns their transfers and the wall time the processes ran."""
    lines: list[list[tuple[float, str]]] = [[] for _ in range(count)]

    def read(index: int, stream: Any) -> None:
        for raw in stream:
            lines[index].append((time.perf_counter(), raw.decode(errors="replace").rstrip("\n")))

    launched = time.perf_counter()
    processes = []
    readers = []
    for index in range(count):
        process = subprocess.Popen(
            [CURL, "--config", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        reader = threading.Thread(target=read, args=(index, process.stderr), daemon=True)
        reader.start()
        processes.append(process)
        readers.append(reader)
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(_curl_config(target, digest).encode())
        process.stdin.close()
    for process, reader in zip(processes, readers, strict=True):
        process.wait(timeout=600)
        reader.join()
    finished = time.perf_counter()
    transfers = []
    for process, output in zip(processes, lines, strict=True):
        reports = [(at, line.split()) for at, line in output if line.startswith("transfer ")]
        if process.returncode != 0 or len(reports) != 2:
            raise RuntimeError(f"curl exited {process.returncode}: {[line for _, line in output]}")
        (warm_at, warm), (done_at, done) = reports
        if warm[1] != "200" or done[1] != "200" or int(done[2]) != size:
            raise RuntimeError(f"curl pull of {digest}: {warm} then {done}")
        transfers.append(Transfer(warm_at, done_at, float(done[3]), int(done[2])))
    return transfers, finished - launched


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Row:
    metric: str
    unit: str
    values: dict[str, float]
    spread: dict[str, str]
    higher_is_better: bool
    target: str  # "" when the issue sets none
    target_met: bool | None = None
    server_cpu: dict[str, str] | None = None  # server CPU per unit of work, formatted
    client_busy: dict[str, float] | None = None  # client CPU seconds per wall second (median)

    @property
    def ratio(self) -> float:
        return self.values[MOORAGE] / self.values[DIST] if self.values[DIST] else float("nan")


def throughput_row(metric: str, size: int, samples: dict[str, list[Sample]], *, count: int = 1) -> Row:
    moved = count * size
    rates = {name: [moved / MIB / s.wall for s in runs] for name, runs in samples.items()}
    values = {name: statistics.median(r) for name, r in rates.items()}
    spread = {name: f"{min(r):.0f}-{max(r):.0f}" for name, r in rates.items()}
    row = Row(metric, "MiB/s", values, spread, True, ">= 1.5x")
    row.target_met = row.ratio >= 1.5
    # Summed over the repetitions: /proc counts CPU time in 10 ms ticks, too coarse for one small op.
    row.server_cpu = {
        name: f"{sum(s.server_cpu for s in runs) * GIB / (moved * len(runs)):.2f} s/GiB"
        for name, runs in samples.items()
    }
    row.client_busy = {
        name: sum(s.client_cpu for s in runs) / sum(s.client_wall for s in runs)
        for name, runs in samples.items()
    }
    return row


class Bench:
    def __init__(self, profile: Profile, targets: list[Target], factory: BlobFactory) -> None:
        self.profile = profile
        self.targets = targets
        self.factory = factory
        self.rows: list[Row] = []
        self.loads: list[float] = []  # 1-minute load average at the start of each phase

    def refresh_tokens(self) -> None:
        for target in self.targets:
            target.client.login(f"repository:{REPO}:pull,push")

    def note(self, text: str) -> None:
        load = os.getloadavg()[0]
        self.loads.append(load)
        print(f"  [{time.strftime('%H:%M:%S')}] (load {load:.2f}) {text}", flush=True)

    def run(self) -> None:
        self.refresh_tokens()
        self.warm_up()
        for size, reps in self.profile.push:
            self.push(size, reps)
        self.chunked()
        for size, reps in self.profile.pull:
            self.pull(size, reps)
        self.concurrent()
        self.head()

    def warm_up(self) -> None:
        for target in self.targets:
            blob = self.factory.blob(1 * MIB, "warm-up")
            target.client.push_monolithic(REPO, blob)
            target.client.pull(REPO, blob.digest, blob.size)

    def push(self, size: int, reps: int) -> None:
        self.refresh_tokens()
        self.note(f"monolithic push {size_label(size)} x{reps}")
        sample_rss = size == self.profile.rss_push
        peaks: dict[str, list[int]] = {t.name: [] for t in self.targets}
        idle: dict[str, int] = {}

        blobs = [self.factory.blob(size, f"push-{rep}") for rep in range(reps)]  # hashed before timing

        def one(target: Target, rep: int) -> float:
            blob = blobs[rep]
            if not sample_rss:
                return timed(lambda: target.client.push_monolithic(REPO, blob))
            with RssSampler(target.pid) as rss:
                idle.setdefault(target.name, rss.current())
                elapsed = timed(lambda: target.client.push_monolithic(REPO, blob))
            peaks[target.name].append(rss.peak)
            return elapsed

        self.rows.append(
            throughput_row(f"Monolithic push {size_label(size)}", size, interleave(self.targets, reps, one))
        )
        if sample_rss:
            values = {name: max(p) / MIB for name, p in peaks.items()}
            spread = {name: f"idle {idle[name] / MIB:.0f}" for name in peaks}
            self.rows.append(
                Row(f"Peak server RSS during {size_label(size)} push", "MiB", values, spread, False, "")
            )

    def chunked(self) -> None:
        size, chunk, reps = self.profile.chunked
        self.refresh_tokens()
        self.note(f"chunked push {size_label(size)} in {size_label(chunk)} PATCHes x{reps}")

        blobs = [self.factory.blob(size, f"chunked-{rep}") for rep in range(reps)]

        def one(target: Target, rep: int) -> float:
            blob = blobs[rep]
            return timed(lambda: target.client.push_chunked(REPO, blob, chunk))

        metric = f"Chunked push {size_label(size)} ({size_label(chunk)} PATCHes)"
        self.rows.append(throughput_row(metric, size, interleave(self.targets, reps, one)))

    def pushed_and_verified(self, size: int, tag: str) -> Blob:
        """A new blob on both servers, pulled back once by the httpx client (size and sha256
        checked) so that the timed curl downloads need not hash."""
        blob = self.factory.blob(size, tag)
        for target in self.targets:
            target.client.push_monolithic(REPO, blob)
            target.client.pull(REPO, blob.digest, blob.size)
        return blob

    def pull(self, size: int, reps: int) -> None:
        self.refresh_tokens()
        blob = self.pushed_and_verified(size, "pull")
        self.note(f"pull {size_label(size)} x{reps} (curl)")

        def one(target: Target, _rep: int) -> tuple[float, float]:
            (transfer,), process_wall = curl_pulls(target, blob.digest, blob.size, 1)
            return transfer.seconds, process_wall

        self.rows.append(
            throughput_row(f"Pull {size_label(size)}", size, interleave(self.targets, reps, one))
        )

    def concurrent(self) -> None:
        workers, size, reps = self.profile.concurrent
        self.refresh_tokens()
        blob = self.pushed_and_verified(size, "concurrent")
        self.note(f"{workers} concurrent pulls of {size_label(size)} x{reps} (curl)")

        def one(target: Target, _rep: int) -> tuple[float, float]:
            # From the first download's start to the last one's end: connection set-up and
            # process start-up of the curls are outside, as for the single pulls.
            transfers, process_wall = curl_pulls(target, blob.digest, blob.size, workers)
            span = max(t.ended for t in transfers) - min(t.started for t in transfers)
            return span, process_wall

        seconds = interleave(self.targets, reps, one)
        metric = f"{workers} concurrent pulls of {size_label(size)} (aggregate)"
        self.rows.append(throughput_row(metric, size, seconds, count=workers))

    def head(self) -> None:
        self.refresh_tokens()
        layer = self.factory.blob(1 * MIB, "manifest-layer")
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}
        ).encode()
        for target in self.targets:
            target.client.push_monolithic(REPO, layer)
            config_digest = target.client.put_small_blob(REPO, config)
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer.digest,
                        "size": layer.size,
                    }
                ],
            }
            target.client.put_manifest(REPO, "head", json.dumps(manifest).encode())
            for _ in range(50):
                target.client.head_manifest(REPO, "head")
        total = self.profile.head_requests
        rounds = 10
        self.note(f"HEAD manifest x{total} per server (Bearer token)")
        latencies: dict[str, list[float]] = {t.name: [] for t in self.targets}

        def one(target: Target, _rep: int) -> float:
            for _ in range(total // rounds):
                start = time.perf_counter_ns()
                target.client.head_manifest(REPO, "head")
                latencies[target.name].append((time.perf_counter_ns() - start) / 1e6)
            return 0.0

        samples = interleave(self.targets, rounds, one)
        per_request = {
            name: f"{sum(s.server_cpu for s in runs) / len(latencies[name]) * 1e6:.0f} µs/req"
            for name, runs in samples.items()
        }
        for label, q in (("p50", 50.0), ("p99", 99.0)):
            values = {name: percentile(lat, q) for name, lat in latencies.items()}
            spread = {name: f"n={len(lat)}" for name, lat in latencies.items()}
            row = Row(f"HEAD manifest {label} (token auth)", "ms", values, spread, False, "")
            if label == "p50":
                row.target = "<= distribution"
                row.target_met = values[MOORAGE] <= values[DIST]
                row.server_cpu = per_request
            self.rows.append(row)


# -- reporting ----------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def comparison(row: Row) -> str:
    ratio = row.ratio
    if row.higher_is_better:
        return f"{ratio:.2f}x"
    # Lower is better: also give distribution / moorage, and say who wins.
    if not ratio:
        return "n/a"
    winner = "moorage lower" if ratio < 1 else "distribution lower" if ratio > 1 else "equal"
    return f"{ratio:.2f}x (distribution / moorage {1 / ratio:.2f}x; {winner})"


CLIENT_BOUND = 0.9  # client CPU per wall second from which a throughput says more about the client


def client_bound(row: Row) -> bool:
    return row.client_busy is not None and min(row.client_busy.values()) >= CLIENT_BOUND


def verdict(row: Row) -> str:
    if row.target_met is None:
        return "(no target)"
    text = f"{row.target}: {'met' if row.target_met else 'MISSED'}"
    return f"{text} (client-bound)" if client_bound(row) else text


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| Metric | moorage | distribution | moorage / distribution | Target "
        "| Server CPU (moorage; distribution) | Client busy (moorage; distribution) |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        better = "higher is better" if row.higher_is_better else "lower is better"
        cpu = f"{row.server_cpu[MOORAGE]}; {row.server_cpu[DIST]}" if row.server_cpu else ""
        busy = f"{row.client_busy[MOORAGE]:.0%}; {row.client_busy[DIST]:.0%}" if row.client_busy else ""
        lines.append(
            f"| {row.metric} ({row.unit}, {better}) "
            f"| {fmt(row.values[MOORAGE])} ({row.spread[MOORAGE]}) "
            f"| {fmt(row.values[DIST])} ({row.spread[DIST]}) "
            f"| {comparison(row)} | {verdict(row)} | {cpu} | {busy} |"
        )
    return lines


def curl_version() -> str:
    version = subprocess.run([CURL, "--version"], capture_output=True, text=True, check=False).stdout
    return " ".join(version.split()[:2]) if version else "curl"


def machine() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text()
    total = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) * 1024  # type: ignore[union-attr]
    free = int(re.search(r"MemFree:\s+(\d+)", meminfo).group(1)) * 1024  # type: ignore[union-attr]
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    version = subprocess.run([DISTRIBUTION, "--version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "moorage": f"commit {commit or 'unknown'}" + (" with uncommitted changes in src/" if dirty else ""),
        "cpus": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.machine(),
        "memory": f"{total / GIB:.1f} GiB",
        "free": f"{free / GIB:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "distribution": version.stdout.strip() or "unknown",
    }


def write_doc(path: Path, body: str) -> None:
    write_section(path, body, start=SECTION_START, end=SECTION_END, heading="## Registry (issue 3)")


def report(
    profile: Profile,
    *,
    rows: list[Row],
    command: str,
    started: datetime.datetime,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    phase_loads: list[float],
    auth: dict[str, str],
    elapsed: float,
    facts: dict[str, str],
) -> str:
    before, after = loads
    met = [r for r in rows if r.target_met is not None]
    missed = [r for r in met if not r.target_met]
    lines = [
        f"Run: {started:%Y-%m-%d %H:%M} UTC, profile `{profile.name}`, {elapsed / 60:.1f} min.",
        "",
        "```",
        command,
        "```",
        "",
        f"- Machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']} RAM "
        f"({facts['free']} free at the start), Linux {facts['kernel']}, "
        f"Python {facts['python']}. The CPUs are shared with other work: load average "
        f"{before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f} (1/5/15 min) before the run, "
        f"{after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f} after it; the 1-minute load ranged "
        f"{min(phase_loads):.2f}-{max(phase_loads):.2f} at the starts of the {len(phase_loads)} phases.",
        f"- moorage: {facts['moorage']} (started as `python -m moorage serve --port 0`, default settings).",
        f"- distribution: `{facts['distribution']}` (Debian `docker-registry`), Debian's default config "
        "(filesystem storage, in-memory blob descriptor cache, info logging) plus TLS and token auth.",
        f"- Auth: moorage — {auth[MOORAGE]}; distribution — {auth[DIST]}.",
        f"- Clients, servers and data all on one machine over loopback HTTPS (same certificate); the same "
        f"clients for both servers. Pushes and HEADs: one httpx client (HTTP/1.1, keep-alive, 1 MiB writes). "
        f"Pulls: `{curl_version()}`, one process per measurement (per download for the concurrent pulls), "
        "which opens its keep-alive connection with `GET /v2/` and then downloads the blob to `/dev/null`; "
        "the time is curl's own for the download (concurrent: first start to last end). Each pulled blob "
        "was checked (size, sha256) once per server beforehand, untimed. Every upload is a new digest; "
        "repetitions alternate between the servers.",
        "- Throughput cells: median MiB/s (min-max over the repetitions). Latency: percentiles over all "
        "requests. RSS: highest `VmRSS` sampled every 50 ms during the pushes (idle = before the first).",
        "- Ratios are moorage / distribution. Throughput: above 1 means moorage is faster. Latency and RSS: "
        "below 1 means moorage is better; the bracket gives the inverse.",
        "- Server CPU: user + system CPU seconds of the server process (all threads) per GiB moved, or per "
        "HEAD request, totalled over all repetitions (/proc counts in 10 ms ticks). Client busy: CPU "
        "seconds the client used per wall second (pulls: the curl processes, over their whole life, so "
        "start-up and TLS handshake count; the bench process itself then mostly waits); near 100% (of one "
        "CPU per client process) means the client, not the server, set the pace (then the server CPU "
        "column is the fairer comparison).",
        "",
        *table(rows),
        "",
    ]
    if missed:
        names = ", ".join(f"{r.metric} ({r.ratio:.2f}x)" for r in missed)
        lines.append(f"**Targets missed: {len(missed)} of {len(met)}** — {names}.")
    else:
        lines.append(f"**All {len(met)} targets met.**")
    bound = [r.metric for r in rows if client_bound(r)]
    if bound:
        lines += [
            "",
            f"Client-bound (the bench process was busy >= {CLIENT_BOUND:.0%} of the time on both sides, so "
            f"the ratio mostly measures the client): {', '.join(bound)}. For these, compare server CPU.",
        ]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------------------


def check_disk(where: Path, profile: Profile) -> None:
    pushes = sum(size * reps for size, reps in profile.push) + profile.chunked[0] * profile.chunked[2]
    stored = pushes + sum(size for size, _ in profile.pull) + profile.concurrent[1] + 4 * MIB
    needed = 2 * stored + GIB  # both servers keep every blob (deleting a blob only unlinks it)
    free = shutil.disk_usage(where).free
    if free < needed:
        raise SystemExit(f"need about {needed / GIB:.1f} GiB free in {where}, have {free / GIB:.1f} GiB")


def run(profile: Profile, workdir: Path) -> tuple[list[Row], dict[str, str], list[float]]:
    """Start both servers, measure, stop them; returns the rows, the auth each side used and the
    load average at the start of each phase."""
    with contextlib.ExitStack() as stack:
        largest = max(*(s for s, _ in profile.push), *(s for s, _ in profile.pull))
        print(f"  generating {size_label(largest)} of random data (seed {SEED})", flush=True)
        factory = BlobFactory(random_bytes(largest))

        home = workdir / "moorage-home"
        moorage, info = start_moorage(home, workdir / "moorage.out")
        stack.callback(stop_process, moorage)
        verify = ssl.create_default_context(cafile=info["caPath"])
        login_server, username, password = create_registry(info, verify)
        cert, key = home / "tls" / "server.pem", home / "tls" / "server-key.pem"

        token_password = uuid.uuid4().hex
        tokens = TokenServer(workdir, cert, key, "bench", token_password)
        stack.callback(tokens.close)
        distribution, port = start_distribution(workdir, cert, key, tokens, verify)
        stack.callback(stop_process, distribution)

        moorage_client = OciClient(f"https://{login_server}", username, password, verify)
        stack.callback(moorage_client.close)
        dist_client = OciClient(f"https://127.0.0.1:{port}", "bench", token_password, verify)
        stack.callback(dist_client.close)
        print(f"  moorage login server https://{login_server} (pid {moorage.pid})", flush=True)
        print(f"  distribution https://127.0.0.1:{port} (pid {distribution.pid})", flush=True)
        bench = Bench(
            profile,
            [
                Target(MOORAGE, moorage.pid, moorage_client, info["caPath"]),
                Target(DIST, distribution.pid, dist_client, info["caPath"]),
            ],
            factory,
        )
        bench.run()
        auth = {
            MOORAGE: "Bearer access token from the registry's own `/oauth2/token` (admin user, Basic); "
            f"challenge `{moorage_client.challenge.split(',')[0]}`",
            DIST: "Bearer JWT (`auth: token`, ES256 with `x5c`) from the bench's token server; "
            f"challenge `{dist_client.challenge.split(',')[0]}`",
        }
        return bench.rows, auth, bench.loads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (smoke run)")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"write results into this Markdown file (default: {DEFAULT_DOC.relative_to(ROOT)} for a "
        "full run; a --quick run only prints unless --doc is given)",
    )
    args = parser.parse_args()
    profile = QUICK if args.quick else FULL
    doc = args.doc if args.doc is not None else (None if args.quick else DEFAULT_DOC)
    command = ".venv/bin/python bench/registry_bench.py" + (" --quick" if args.quick else "")
    if not Path(DISTRIBUTION).exists():
        raise SystemExit(f"{DISTRIBUTION} is missing (apt-get install docker-registry)")
    if not Path(CURL).exists():
        raise SystemExit(f"{CURL} is missing (apt-get install curl)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now(datetime.UTC)
    facts = machine()  # before the run: the commit the server is started from
    load_before = os.getloadavg()
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="moorage-bench-"))
    try:
        check_disk(workdir, profile)
        print(f"registry bench ({profile.name}) in {workdir}", flush=True)
        rows, auth, phase_loads = run(profile, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    elapsed = time.monotonic() - clock
    print()
    print("\n".join(table(rows)))
    text = report(
        profile,
        rows=rows,
        command=command,
        started=started,
        loads=(load_before, load_after),
        phase_loads=phase_loads,
        auth=auth,
        elapsed=elapsed,
        facts=facts,
    )
    print()
    for line in text.splitlines():
        if line.startswith(("**", "Client-bound")):
            print(line)
    if doc is not None:
        write_doc(doc, text)
        print(f"results written to {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
