"""`python -m transformers_fireredasr.serving`: the same as `fireredasr-serve`."""

import sys

from .cli import main

sys.exit(main())
