"""ZeroMQ's hot-loop flags as plain ints, and pyzmq's compiled socket calls.

pyzmq's Python wrappers (``Socket.send``, ``send_multipart``, ``recv_multipart``) combine enum
flags and check keyword options on every frame, and a non-blocking read that finds nothing
raises ``zmq.Again`` (a Python ``__init__`` with an errno lookup). Every frame of the Raft
transport, the API server and a hollow pool crosses these calls, so the loops use the compiled
methods with int flags, and read ``ZMQ_EVENTS`` to learn whether more is waiting.
"""

from __future__ import annotations

import zmq

NOBLOCK = int(zmq.NOBLOCK)
NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
RCVMORE = int(zmq.RCVMORE)
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
send_frame = zmq.backend.Socket.send
recv_frame = zmq.backend.Socket.recv
socket_option = zmq.backend.Socket.get
