"""A real moorage server in a subprocess, for api and e2e tests.

The server runs exactly as users run it (``python -m moorage serve --port 0``) with its own data
directory; tests read ``connection.json`` as the README tells scripts to.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunningServer:
    home: Path
    process: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    starts: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    # Host objects of the runc runtime (containers, netns, bridge, nftables table) carry this
    # prefix: each server's reconciler removes whatever carries its prefix without a record, so
    # servers (and test sessions) on one host must not share one. The subnet is the bridge's.
    runtime_prefix: str = field(default_factory=lambda: f"mt{secrets.token_hex(4)}")
    runtime_subnet: str = field(
        default_factory=lambda: f"10.{random.randint(64, 99)}.{random.randint(0, 255)}.0/24"
    )

    # -- connection facts ------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return str(self.info["endpoint"])

    @property
    def tenant_id(self) -> str:
        return str(self.info["tenantId"])

    @property
    def subscription_id(self) -> str:
        return str(self.info["subscriptionId"])

    @property
    def ca_path(self) -> str:
        return str(self.info["caPath"])

    @property
    def client_id(self) -> str:
        return str(self.info["clientId"])

    @property
    def client_secret(self) -> str:
        return str(self.info["clientSecret"])

    @property
    def connection_file(self) -> Path:
        return self.home / "connection.json"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        self.connection_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        env["MOORAGE_HOME"] = str(self.home)
        env["MOORAGE_RUNTIME_PREFIX"] = self.runtime_prefix
        env["MOORAGE_RUNTIME_SUBNET"] = self.runtime_subnet
        env.update(self.extra_env)
        self.home.mkdir(parents=True, exist_ok=True)
        out_path = self.home.parent / f"{self.home.name}-server-{self.starts}.out"
        self.starts += 1
        with out_path.open("wb") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moorage", "serve", "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moorage exited with {self.process.returncode}: {self.output()}")
            if self.connection_file.exists():
                self.info = json.loads(self.connection_file.read_text())
                if self._answers():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"moorage did not become ready: {self.output()}")

    def _answers(self) -> bool:
        ctx = ssl.create_default_context(cafile=self.ca_path)
        url = f"{self.endpoint}/metadata/endpoints?api-version=2022-09-01"
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as response:  # noqa: S310 - https to our own server
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove_runtime_objects(self) -> None:
        """After the last stop: remove whatever this server's runc runtime left on the host
        (containers, sandboxes and their netns and host ports, the bridge, the nftables table).
        The server itself never removes them on shutdown, as containers outlive restarts."""
        runtime_dir = self.home / "node" / "runtime"
        if not runtime_dir.is_dir() or os.geteuid() != 0:
            return  # the runc runtime never ran here
        # Imported here: only root test sessions that ran the runc runtime need them.
        from moorage.instances.runtime.runc.network import SandboxNetwork  # noqa: PLC0415
        from moorage.instances.runtime.runc.runtime import RuncRuntime  # noqa: PLC0415

        prefix = self.runtime_prefix

        async def sweep() -> None:
            network = SandboxNetwork(
                self.home / "node" / "network",
                bridge=f"{prefix}0",
                subnet=self.runtime_subnet,
                prefix=prefix,
                nft_table=prefix,
            )
            runtime = RuncRuntime(runtime_dir, network=network, prefix=prefix)
            for sandbox in await runtime.sandboxes():
                await runtime.delete_sandbox(sandbox.id)
            for container in await runtime.containers():
                await runtime.delete(container.id)
            await network.cleanup_orphans(set())
            await network.teardown()

        asyncio.run(sweep())

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    # -- evidence --------------------------------------------------------------------------------
    def output(self) -> str:
        texts = [
            p.read_text(errors="replace")
            for p in sorted(self.home.parent.glob(f"{self.home.name}-server-*.out"))
        ]
        return "\n".join(texts)

    def log_text(self) -> str:
        """Everything the server wrote: its log file and its stdout/stderr."""
        log_file = self.home / "logs" / "moorage.log"
        return (log_file.read_text(errors="replace") if log_file.exists() else "") + self.output()

    def env(self) -> dict[str, str]:
        """Environment for Azure clients: trust our CA (this machine presets REQUESTS_CA_BUNDLE)."""
        env = dict(os.environ)
        env["REQUESTS_CA_BUNDLE"] = self.ca_path
        env.pop("CURL_CA_BUNDLE", None)
        return env
