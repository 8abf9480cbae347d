"""The runc backend: containers run by runc under conmon, sandboxes as netns + CNI.

:class:`RuncRuntime` implements the runtime contract; :class:`Reconciler` adopts, records and
sweeps at start-up and periodically; :class:`NetworkBackend` is what the runtime needs from
sandbox networking (implemented by :class:`~.network.SandboxNetwork`).
"""

from moorage.instances.runtime.runc.reconcile import Reconciler, ReconcileReport
from moorage.instances.runtime.runc.runtime import NetworkBackend, RuncRuntime

__all__ = ["NetworkBackend", "ReconcileReport", "Reconciler", "RuncRuntime"]
