"""Writing one benchmark's section of docs/benchmarks.md, shared by the bench scripts."""

from __future__ import annotations

from pathlib import Path

INTRO = (
    "# Benchmarks\n\nEach benchmark runs moorage and the reference tool side by side in one run, on "
    "loopback, with the same client and data (see `bench/README.md`).\n"
)


def write_section(path: Path, body: str, *, start: str, end: str, heading: str) -> None:
    """Replace the text between the ``start`` and ``end`` markers (other sections and hand-written
    notes stay), or append the section under ``heading`` when it is not there yet."""
    section = f"{start}\n{body.rstrip()}\n{end}"
    if path.exists():
        text = path.read_text()
        if start in text and end in text:
            head, _, rest = text.partition(start)
            _, _, tail = rest.partition(end)
            path.write_text(f"{head}{section}{tail}")
            return
        path.write_text(f"{text.rstrip()}\n\n{heading}\n\n{section}\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{INTRO}\n{heading}\n\n{section}\n")
