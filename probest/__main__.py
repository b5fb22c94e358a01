"""``python -m probest`` — the same command as ``probest``."""

import sys

from probest.cli import main

if __name__ == "__main__":
    sys.exit(main())
