"""``python -m pricer.cli``: the same as the ``pricer`` console script."""

import sys

from pricer.cli.app import main

sys.exit(main())
