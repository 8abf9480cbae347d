"""A throwaway control plane for the restart test: it starts containers with a RuncRuntime,
prints ``ready``, and waits to be SIGKILLed.

Usage: python -m tests.integration.control_plane STATE_DIR NET_DIR PREFIX ROOTFS
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from moorage.instances.runtime.base import ContainerSpec, SandboxSpec
from moorage.instances.runtime.runc import RuncRuntime
from tests.runtime_support import LoopbackNetwork

# Exits with 7 on SIGTERM; runs until then.
LONG_RUNNING = ["sh", "-c", "trap 'exit 7' TERM; sleep 1000 & wait"]
# Exits with 5 after a second: while the control plane is dead.
SHORT_LIVED = ["sh", "-c", "sleep 1; exit 5"]


async def main(state_dir: Path, net_dir: Path, prefix: str, rootfs: Path) -> None:
    runtime = RuncRuntime(state_dir, network=LoopbackNetwork(net_dir, prefix), prefix=prefix)
    await runtime.create_sandbox(SandboxSpec(id="group", hostname="group"))
    for container_id, args in (("long", LONG_RUNNING), ("short", SHORT_LIVED)):
        spec = ContainerSpec(id=container_id, sandbox_id="group", rootfs_layers=[rootfs], args=args)
        await runtime.create(spec)
        await runtime.start(container_id)
    print("ready", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
