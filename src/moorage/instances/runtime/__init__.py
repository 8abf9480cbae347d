"""Container runtimes behind one runtime-neutral contract (:mod:`.base`): ``fake`` for fast tests
and ``runc`` (conmon + runc, overlayfs, a network namespace per group) for real containers."""
