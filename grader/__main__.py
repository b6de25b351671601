"""``python -m grader``: the grading core's command line (see :mod:`grader.cli`)."""

import sys

from grader.cli import main

sys.exit(main())
