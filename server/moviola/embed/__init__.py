"""Embeddings of text, images and videos.

``encoders`` holds the model code (run by Triton's Python backend through
``triton_model``, or in-process by ``local``); ``service`` is what the gRPC
servicer calls: it decodes and samples media, calls an ``EmbeddingBackend``
(``triton`` or ``local``) and pools frame vectors into one per video.
"""
