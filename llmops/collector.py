"""Pausing Python's cyclic garbage collector around a burst of acyclic objects.

Parsing, flattening and redacting a shard makes hundreds of thousands of dicts and lists, none
in a cycle (reference counting frees them). Each burst of new containers sets off a collection
that walks the whole heap, Prefect's and Great Expectations' modules included; paused, the
shard's CPU time drops (docs/data.md, "Where the time goes").
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off; it comes back on after, if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
