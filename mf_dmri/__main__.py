"""``python -m mf_dmri ARGS``: the ``mf-dmri`` command line."""

import sys

from mf_dmri.cli.main import main

sys.exit(main())
