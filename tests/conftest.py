import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

from hypothesis import settings

# CI runs a fixed sample (derandomized: a red CI is always reproducible); elsewhere every run
# draws new examples. Long random campaigns are separate (bench/, NDA_DIFF_EXAMPLES).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("NDA_HYPOTHESIS_PROFILE", "dev"))
