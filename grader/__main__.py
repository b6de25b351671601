"""``python -m grader``: the grading core's command line (see :mod:`grader.core.cli`)."""

import sys

from grader.core.cli import main

sys.exit(main())
