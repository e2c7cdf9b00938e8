"""``python -m taso_tune.cli``: the same as the ``taso-tune`` command."""

import sys

from taso_tune.cli.main import main

sys.exit(main())
