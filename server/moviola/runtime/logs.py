"""Logging of a server process: text for people, or one JSON object per line for collectors."""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Start-up lines that tools wait for ("listening on", "ready"), printed at every log level.
announce = logging.getLogger("moviola.announce")

#: Libraries whose INFO and WARNING chatter (progress bars, deprecations of their own internals) is not ours.
#: torchao (imported by peft and diffusers when installed) makes torch's pytree warn about its enums, and
#: warns itself about kernels of other CUDA versions: harmless, and not for the operator's log.
NOISY = (
    "diffusers",
    "transformers",
    "httpx",
    "huggingface_hub",
    "accelerate",
    "torch",
    "torch.utils._pytree",
    "torchao",
    "peft",
)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Text for people, or one JSON object per line (with ``job_id`` where a job is concerned) for collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"}
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)  # library warnings go through logging, where NOISY silences them
    announce.setLevel(logging.INFO)
    for noisy in (*NOISY, "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if level.lower() != "debug":
        _quiet_libraries()
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(transformers|diffusers|torch)\b")


def _quiet_libraries() -> None:
    """transformers and diffusers set their own loggers' level when imported (from these variables) and
    print through their own handler, so the logging levels above alone do not reach them."""
    for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(variable, "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("transformers", "diffusers"):
        if name in sys.modules:  # imported already: set the level it would have read
            logging.getLogger(name).setLevel(logging.ERROR)
