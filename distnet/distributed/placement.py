"""Where the actors that serve the driver run: on its node, which exchanges parameters with them
for every checkpoint and evaluation (:func:`on_node`); and a gradient worker named with the node it
runs on (:func:`worker_name`)."""
from __future__ import annotations

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def on_node(node_id: str) -> dict:
    """Ray options that place an actor, taking no CPU, on the node ``node_id``. Not soft: Ray
    places an actor that asks for no resources on any node at all when its affinity is soft."""
    return {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}


def worker_name(index: int, where: dict) -> str:
    """A worker as the user finds it: its number and the node it runs on (``where``: its placement)."""
    return f"worker {index} (node {where['node_id'][:8]} on {where['host']})"
