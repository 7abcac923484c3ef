"""``python -m genforget``: the same as the ``genforget`` command."""

import sys

from genforget.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
