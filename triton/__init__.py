"""Not a Python package: ``triton/`` is Moviola's Triton model repository (see README.md here).

This file exists because a folder named ``triton`` on ``sys.path`` (``python -m ...`` run from the
project root puts the root there) would otherwise pass for OpenAI's ``triton`` compiler, and torch
would try to use it. Failing the import tells torch, correctly, that that package is absent.
"""

raise ImportError("triton/ is Moviola's Triton model repository, not the OpenAI triton package")
