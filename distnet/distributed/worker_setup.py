"""What each worker process of a Ray that distnet starts itself runs before anything else.

Ray registers serializers for Ray Data in every worker process at its first deserialization and,
to do so, imports pyarrow whenever it is installed (``ray/util/serialization_addons.py``), as it is
wherever Ray Train or Ray Data are: 15-25 MB of resident memory per worker, for a library that
distnet's actors never use (they move NumPy arrays only). Marking it absent first keeps the
workers lean; a Ray that the user started (or a cluster's) is left as it is.
"""
from __future__ import annotations

import sys

# Job-level only: Ray reads ``worker_process_setup_hook`` from the runtime environment given to
# ``ray.init`` (an actor's own runtime environment ignores it).
RUNTIME_ENV = {"worker_process_setup_hook": "distnet.distributed.worker_setup.skip_pyarrow"}


def skip_pyarrow() -> None:
    """Make ``import pyarrow`` fail in this process (Ray then skips its Arrow serializers)."""
    sys.modules.setdefault("pyarrow", None)
