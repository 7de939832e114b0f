"""Library messages known to be harmless here, silenced at their source and only those.

Users see pria-ml's own progress and log lines; a library's info chatter, a deprecation warning
about an argument we do not pass, or a tqdm bar per weight file in a CI log tells them nothing.
Anything not listed here still reaches them.
"""

from __future__ import annotations

import logging
import sys

# logger name -> (message prefix, the highest level dropped)
_HARMLESS_LOGS = {
    # bitsandbytes tries an optional CPU kernel from the hub at import; without network it
    # falls back to its built-in CPU path, which is what runs here anyway.
    "bitsandbytes.backends.cpu.ops": (
        "Failed to load CPU gemm_4bit_forward from kernels-community",
        logging.WARNING,
    ),
    # rouge-score announces its default tokenizer through absl at INFO, once per scorer.
    "absl": ("Using default tokenizer.", logging.INFO),
    # matplotlib builds its font cache on first import wherever MPLCONFIGDIR is cold (a fresh
    # machine, a container) and says so at INFO; the report's figures are the same either way.
    "matplotlib.font_manager": ("generated new fontManager", logging.INFO),
    # py4j logs on the root logger, at INFO with a traceback, each time it finds a pooled
    # connection to the JVM closed and retries on a new one; a retry that fails is logged at
    # ERROR and raised, and still reaches the user.
    "": ("Exception while sending command.", logging.INFO),
}


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str, level: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > self.level or not str(record.msg).startswith(self.prefix)


def drop_known_log_records() -> None:
    """Filter the known harmless log records at their loggers; idempotent and cheap (no
    library is imported). Call it before the library is imported: bitsandbytes and matplotlib
    log theirs while their modules load."""
    for name, (prefix, level) in _HARMLESS_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix, level))


def quiet_known_library_noise(*, progress_bars: bool | None = None) -> None:
    """Silence the known harmless messages; idempotent.

    ``progress_bars`` keeps transformers' per-file tqdm bars (loading and writing weights);
    by default only on a terminal, where a 7B model's minute of loading deserves one.
    """
    import warnings

    drop_known_log_records()
    # PEFT probes the model's deprecated ``is_gradient_checkpointing`` property; transformers
    # warns on every read. Our code never reads it.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    if progress_bars is None:
        progress_bars = sys.stderr.isatty()
    if not progress_bars:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
