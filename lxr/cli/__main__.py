"""``python -m lxr.cli``: the same as the ``lxr`` command."""

from lxr.cli.main import main

main()
