"""A real moorage server in a subprocess, for api and e2e tests.

The server runs exactly as users run it (``python -m moorage serve --port 0``) with its own data
directory; tests read ``connection.json`` as the README tells scripts to.
"""

from __future__ import annotations

import json
import os
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
