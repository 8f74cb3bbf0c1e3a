#!/usr/bin/env python
"""seesaw-nas command line (see ``seesaw_cli``): ``python launch_search.py --space seesaw --budget 200``."""

import sys

from seesaw_cli import main

if __name__ == "__main__":
    sys.exit(main())
