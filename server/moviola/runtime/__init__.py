"""The composition roots: one module per kind of process, each wiring its parts once.

embedded.py   ``moviola serve``                  everything in one process (the default)
gateway.py    ``moviola serve --redis-url ...``  a stateless gateway: gRPC in front of Redis
worker.py     ``moviola worker --redis-url ...`` one GPU replica taking jobs from Redis
wiring.py     the parts they share, built the same way in each (catalogue, front door, worker)
commands.py   the click commands that turn flags and environment into ``Settings``
signals.py    running a process until SIGTERM, then draining it
"""
