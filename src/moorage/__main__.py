"""``python -m moorage`` is the ``moorage`` command."""

from moorage.cli.main import main

main()
