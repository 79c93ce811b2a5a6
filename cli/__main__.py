"""``python -m melsynth.cli``: the ``melsynth`` console script without its launcher."""
import sys

from melsynth.cli.main import main

sys.exit(main())
