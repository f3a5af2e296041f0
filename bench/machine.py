"""What the load-sensitive benches print about the machine they ran on: on 2 shared cores a figure means little
without the thread settings and the load before and after it."""
from __future__ import annotations

import os
import platform


def machine_record(load_before: tuple[float, float, float]) -> dict:
    """Cores, torch threads, OpenMP wait policy, load averages before (as given) and now, Python version."""
    import torch

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()}
