"""`python -m nda` runs the `nda` command."""

from nda.cli.app import main

main()
