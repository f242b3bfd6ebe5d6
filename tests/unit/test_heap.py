"""Training keeps freed tensor memory in the heap (glibc): no fresh mmap per step's buffers."""

from __future__ import annotations

import ctypes.util
import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the heap thresholds are glibc's"
)

# In a fresh interpreter (the setting is process-wide and one-way): how many new mmapped blocks
# a 1 MiB tensor takes, before and after a tiny `fit`.
SCRIPT = """
import ctypes, json, torch
from neuroflow.training.engine import TensorSplits, TrainSettings, fit
from neuroflow.training.heap import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info

def mapped_blocks_for_one_mib():
    before = libc.mallinfo2().hblks
    tensor = torch.ones(1 << 18)
    return libc.mallinfo2().hblks - before

cold = mapped_blocks_for_one_mib()
x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
fit(torch.nn.Linear(4, 2), TensorSplits(x, y, x, y), TrainSettings(epochs=1, device="cpu"))
print(json.dumps({"cold": cold, "after_fit": mapped_blocks_for_one_mib(),
                  "again": keep_freed_memory()}))
"""


def test_after_fit_a_mebibyte_tensor_comes_from_the_heap() -> None:
    assert ctypes.util.find_library("c")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # glibc's default: a fresh mapping per 1 MiB block (returned to the system on free).
    assert seen == {"cold": 1, "after_fit": 0, "again": True}
