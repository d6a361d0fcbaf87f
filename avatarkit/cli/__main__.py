"""`python -m avatarkit.cli` = the `avatarkit` command (handy without the console script)."""

from avatarkit.cli import main

main()
