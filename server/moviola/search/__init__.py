"""Video search: every completed video embedded into a vector index, found again by meaning.

    Indexer      completed jobs (the queue's ``CompletionFeed``) -> Embedder -> VideoIndex.add
    VideoSearch  SearchVideos: the query -> Embedder -> VideoIndex.search, scoped to the caller's tenant
    VideoIndex   the interface; ``LanceIndex`` on local disk (embedded) or on S3 (gateways share it)

Errors are ``moviola.errors``' tree: ``FailedPrecondition`` when the server has no index,
``InvalidRequest`` naming the field, ``NotFound`` for a job id that is not indexed, and
``Unavailable`` (retryable) when the index's storage cannot be reached; ``lance`` translates
lancedb's and the object store's errors in one place.
"""
