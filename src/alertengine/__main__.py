"""``python -m alertengine`` is the ``alertengine`` command."""

from alertengine.cli import main

main()
