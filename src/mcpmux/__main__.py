"""`python -m mcpmux`: the same as the `mcpmux` command."""

import sys

from mcpmux.cli import main

if __name__ == "__main__":
    sys.exit(main())
