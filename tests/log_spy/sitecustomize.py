"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests/test_pipeline_e2e.py).

It changes nothing a user sees. It notes the logger of every log record a handler prints, in
the file ``PRIA_TEST_LOG_RECORDS`` names: a library's line is one whose logger is not
``pria_ml``'s, whatever the handler's format leaves of its name. And it makes bitsandbytes say
what it says on a CPU with AVX512-BF16 and no hub to fetch its optional kernel from, from the
logger and at the moment it does (as its CPU ops module loads), so the test sees whether that
line is filtered on any machine.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys

BNB_OPS = "bitsandbytes.backends.cpu.ops"
BNB_WARNING = (
    "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you "
    "already `pip install kernels` and the kernels >= 0.11.1"
)

_handle = logging.Handler.handle


def _note(line: str) -> None:
    with open(os.environ["PRIA_TEST_LOG_RECORDS"], "a", encoding="utf-8") as out:
        out.write(line + "\n")


def _noting_handle(self: logging.Handler, record: logging.LogRecord):
    shown = _handle(self, record)
    if shown:
        _note(f"{record.name}\t{record.levelname}\t{record.getMessage()!r}")
    return shown


class _BitsandbytesOnAvx512Bf16(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != BNB_OPS:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_and_warn(module) -> None:
            load(module)
            logging.getLogger(name).warning(BNB_WARNING, "No module named 'kernels'")
            _note("spy\tbitsandbytes warned")

        spec.loader.exec_module = load_and_warn
        return spec


if os.environ.get("PRIA_TEST_LOG_RECORDS"):
    logging.Handler.handle = _noting_handle
    sys.meta_path.insert(0, _BitsandbytesOnAvx512Bf16())
