"""Who calls: API keys per tenant (``keys.py``), and the caller of the current request (``caller.py``)."""
