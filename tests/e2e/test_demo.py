"""``make demo`` (it runs demo/seed.sh) end to end: the seed article's failure, as Azure reports it,
its diagnosis, the fix, and the other classic cause. CI runs it like a user would."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.runtime_support import runc_unavailable

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 600


@pytest.mark.root
def test_make_demo() -> None:
    unavailable = runc_unavailable()
    if unavailable is not None:
        pytest.skip(str(unavailable))
    env = dict(os.environ)
    # Its own host objects, away from the test servers' (each server's reconciler owns a prefix).
    env["MOORAGE_RUNTIME_PREFIX"] = f"md{secrets.token_hex(3)}"
    env["MOORAGE_RUNTIME_SUBNET"] = f"10.{random.randint(100, 120)}.{random.randint(0, 255)}.0/24"
    result = subprocess.run(
        ["bash", "demo/seed.sh"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for expected in (
        '"code": "DeploymentFailed"',
        '"code": "InaccessibleImage"',
        "At least one resource deployment operation failed.",
        "BadRequest",
        "Welcome to Azure Container Instances!",
        "result: FAILED (FirewallBlocksPlatform)",
        "result: FAILED (CredentialsRejected)",
        "Demo complete.",
    ):
        assert expected in output, f"{expected!r} missing from the demo's output:\n{output[-4000:]}"
    assert "Traceback" not in output
