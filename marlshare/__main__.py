"""``python -m marlshare COMMAND ...`` is the ``marlshare`` command."""

from marlshare.recipes.cli import main

main()
