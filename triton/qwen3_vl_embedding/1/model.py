# The model code lives in the moviola package (pip install moviola into the Triton image);
# the in-process embedding backend runs the same code. See triton/README.md.
from moviola.embed.triton_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
