"""The ingress (routing mesh): every node accepts connections on each service's published port
and sends them to the service's available tasks, wherever they run, through HAProxy.

- ``routing``: pure; the routing table services and tasks call for, and the runtime API
  commands that bring HAProxy's servers to it.
- ``haproxy_config``: pure; the configuration file HAProxy starts (or reloads) with.
- ``runtime_api``: a client of HAProxy's stats socket and master socket.
- ``supervisor``: runs the HAProxy master process for one node.
"""
