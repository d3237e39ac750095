"""The node's service-name resolver: one UDP socket on the task bridge's gateway, one thread.

What it answers comes from orion/network/dns.py; the network actor hands it the current
records on every pass (``set_records`` swaps one reference: the thread reads whichever it finds).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping, Sequence

from loguru import logger

from orion.network.dns import answer

DNS_PORT = 53
_POLL_S = 0.5  # how soon the thread notices ``stop``


class DnsServer:
    def __init__(self, address: str, port: int = DNS_PORT) -> None:
        self.address = address
        self._records: Mapping[str, Sequence[str]] = {}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((address, port))
        self._socket.settimeout(_POLL_S)
        self.port = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dns {address}", daemon=True)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def set_records(self, records: Mapping[str, Sequence[str]]) -> None:
        self._records = records

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(_POLL_S * 4)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = self._socket.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                if not self._stopping.is_set():
                    logger.warning("dns: the socket on {} failed", self.address)
                return
            response = answer(data, self._records)
            if response is not None:
                try:
                    self._socket.sendto(response, peer)
                except OSError:
                    pass  # the asker is gone: it asks again
