"""Where finished videos go."""

from moviola.storage.base import Storage, StoredVideo
from moviola.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StoredVideo"]
