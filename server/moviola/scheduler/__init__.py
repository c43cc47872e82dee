"""Job queues: where accepted jobs wait, and where their events live.

``base`` names the roles (gateway, operator, worker), ``memory`` is the
embedded server's queue, ``redis/`` the one many gateways and workers share,
``estimate`` how long a new job would wait.
"""
