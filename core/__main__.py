import os
import sys

# Generation runs in a worker thread beside the main one; idle OpenMP threads sleep rather than spin
# (spinning made batched steps many times slower on shared cores: bench/RESULTS.md, optimiser section).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from core.cli import main  # noqa: E402

sys.exit(main())
