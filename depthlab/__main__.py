"""`python -m depthlab` = the `depthlab` command."""

from depthlab.cli import main

main()
