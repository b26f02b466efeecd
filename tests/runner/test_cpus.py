"""CPU sets: which CPUs the worker gets, and that benchd's own threads really move off them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchd.runner.cpus import (
    available_cpus,
    configured_cpus,
    others,
    parse_cpu_list,
    worker_cpus,
    worker_threads,
)

FOUR = (0, 1, 2, 3)


def test_cpu_lists_parse_and_refuse_nonsense():
    assert parse_cpu_list("2-3,6") == (2, 3, 6)
    assert parse_cpu_list(" 1 , 0 ") == (0, 1)
    for bad in ("", "a", "3-1", "1-x", ","):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_auto_pins_the_last_threads_cpus_and_leaves_one_for_benchd():
    assert worker_cpus("auto", 1, FOUR) == (3,)
    assert worker_cpus("auto", 2, FOUR) == (2, 3)
    assert worker_cpus("auto", 4, FOUR) is None  # nothing would be left for benchd
    assert worker_cpus("auto", None, FOUR) is None  # torch's default uses every CPU: no pinning
    assert worker_cpus("none", 1, FOUR) is None and worker_cpus(None, 1, FOUR) is None
    assert worker_cpus((3, 1), 1, FOUR) == (1, 3)
    with pytest.raises(ValueError, match=r"cpu_set names CPUs \[7\]"):
        worker_cpus((7,), 1, FOUR)
    assert others((3,), FOUR) == (0, 1, 2) and others(None, FOUR) is None and others(FOUR, FOUR) is None


def test_auto_threads_leave_one_cpu_to_the_host_and_pin_the_worker_to_the_rest():
    assert worker_threads("auto", FOUR) == 3
    assert worker_threads("auto", (5,)) == 1  # one CPU: the worker still gets a thread
    assert worker_threads(2, FOUR) == 2 and worker_threads(None, FOUR) is None
    with pytest.raises(ValueError, match="threads must be a count, auto or none"):
        worker_threads("many", FOUR)
    assert worker_cpus("auto", worker_threads("auto", FOUR), FOUR) == (1, 2, 3)
    here = available_cpus()
    expected = here[1:] if len(here) > 1 else None
    assert configured_cpus("auto", "auto") == expected


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs at least two CPUs")
def test_pinning_moves_every_thread_and_the_worker_set_is_still_chosen_from_the_original_cpus():
    # In a child: pinning this process would change every later test's CPUs.
    script = """
import json, os, threading, time
from benchd.runner.cpus import available_cpus, others, pin_process, worker_cpus
original = available_cpus()
worker = worker_cpus("auto", 1)
started = threading.Event()
thread = threading.Thread(target=lambda: (started.set(), time.sleep(2)), daemon=True)
thread.start(); started.wait()
pin_process(others(worker))
after = {tid: sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}
print(json.dumps({"original": original, "worker": worker, "after": after,
                  "again": worker_cpus("auto", 1), "explicit": worker_cpus(list(worker), 1)}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    doc = json.loads(out.stdout)
    worker = tuple(doc["worker"])
    assert worker == tuple(doc["original"][-1:])
    rest = [c for c in doc["original"] if c not in worker]
    assert len(doc["after"]) >= 2 and all(cpus == rest for cpus in doc["after"].values())  # every thread
    assert tuple(doc["again"]) == worker and tuple(doc["explicit"]) == worker  # chosen as before pinning
