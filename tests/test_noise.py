"""Known harmless library log records are dropped at their source, and only those."""

from __future__ import annotations

import logging

from pria_ml import noise


def test_known_harmless_records_are_dropped_and_nothing_else(caplog) -> None:
    noise.drop_known_log_records()
    noise.drop_known_log_records()  # idempotent: one filter per logger
    assert len(logging.getLogger("absl").filters) == 1
    with caplog.at_level(logging.INFO):
        logging.info("Exception while sending command.")  # py4j's retried connection
        logging.error("Exception while sending command.")  # py4j's retry failed: shown
        logging.getLogger("absl").info("Using default tokenizer.")
        logging.getLogger("absl").info("a message nobody listed")
        logging.getLogger("pria_ml.test").info("Exception while sending command.")
    shown = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert shown == [
        ("root", "ERROR", "Exception while sending command."),
        ("absl", "INFO", "a message nobody listed"),
        ("pria_ml.test", "INFO", "Exception while sending command."),
    ]


def test_bitsandbytes_kernel_and_matplotlib_font_cache_lines_are_dropped(caplog) -> None:
    """What ``pria-ml eval`` (on a CPU with AVX512-BF16) and ``pria-ml report`` (cold font
    cache) printed; the same loggers' other records still show."""
    noise.drop_known_log_records()
    bitsandbytes = logging.getLogger("bitsandbytes.backends.cpu.ops")
    fonts = logging.getLogger("matplotlib.font_manager")
    with caplog.at_level(logging.INFO):
        bitsandbytes.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure "
            "you already `pip install kernels` and the kernels >= 0.11.1",
            "No module named 'kernels'",
        )
        bitsandbytes.error("Failed to load CPU gemm_4bit_forward from kernels-community: x")
        fonts.info("generated new fontManager")
        fonts.warning("findfont: Font family 'Nope' not found.")
    shown = [(r.name, r.levelname) for r in caplog.records]
    assert shown == [
        ("bitsandbytes.backends.cpu.ops", "ERROR"),
        ("matplotlib.font_manager", "WARNING"),
    ]
