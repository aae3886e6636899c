"""Seeding audiomentations: it draws every random parameter (and the noise itself) from the process-global `random`
and `np.random` generators and takes no generator of its own. `global_random_seeded` holds one process-wide lock,
seeds both generators, and puts their previous states back afterwards, so a draw depends on the seed alone, threads
do not interleave their draws, and the rest of the program keeps its own random streams."""

import random
import threading
from contextlib import contextmanager

import numpy as np

LOCK = threading.Lock()


@contextmanager
def global_random_seeded(python_seed: int, numpy_seed: int):
    with LOCK:
        saved = random.getstate(), np.random.get_state()
        random.seed(python_seed)
        np.random.seed(numpy_seed)
        try:
            yield
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
