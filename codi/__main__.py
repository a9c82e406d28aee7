"""`python -m codi`: see codi/cli.py."""

import sys

from codi.cli import main

if __name__ == "__main__":
    sys.exit(main())
