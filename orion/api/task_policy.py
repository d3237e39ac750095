"""The node's task policy ([policy]): what a task, or a service's task template, may ask for.

Applied where every client request enters a node, before anything is proposed: both front
ends (the ZeroMQ API, orion/api/server.py, and the REST mirror, orion/api/http.py) call
``TaskPolicy.apply`` as their ``prepare`` step on each decoded request, before it reaches the
node's handler, so one-off tasks (SubmitTask) and service templates (CreateService,
UpdateService) pass the same check whichever front end they came through. A request is
either refused with an ``invalid`` error naming the rule, or passed on with the policy's
defaults filled in (a retried submit then compares with the task as stored):

- ``default_memory`` / ``default_cpu``: given to a task or template that asks for none (0);
- ``allowed_registries``: the image's registry must be listed (an image without a registry
  host, like ``nginx`` or ``library/nginx``, comes from ``docker.io``); empty = any;
- ``host_ports``: every published host port must lie in the range (0, "any free port", is
  always allowed: the leader picks it from ``[scheduler] dynamic_ports``).

Requests forwarded to the leader were checked by the node that took them, so set the same
policy on every node.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from orion.api.protocol import CreateService, Request, SubmitTask, UpdateService
from orion.config import NodeConfig
from orion.scheduler.ports import host_port_number
from orion.services.spec import ServiceSpec

DEFAULT_REGISTRY = "docker.io"


class PolicyViolation(ValueError):
    """A request the policy refuses; the message names the field and the rule."""

    def __init__(self, message: str) -> None:
        super().__init__(f"refused by policy: {message}")


def image_registry(image: str) -> str:
    """The registry host of an image reference (Docker's rule: the first path component is a
    registry when it holds a '.' or a ':' or is 'localhost')."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DEFAULT_REGISTRY


@dataclass(frozen=True)
class TaskPolicy:
    default_memory: int = 0
    default_cpu: float = 0.0
    allowed_registries: tuple[str, ...] = ()
    host_ports: tuple[int, int] = (1, 65535)

    @classmethod
    def from_config(cls, config: NodeConfig) -> TaskPolicy:
        return cls(
            default_memory=config.policy_default_memory,
            default_cpu=config.policy_default_cpu,
            allowed_registries=tuple(r.lower() for r in config.policy_registries),
            host_ports=config.policy_host_ports,
        )

    def _image(self, image: str, field: str) -> None:
        registry = image_registry(image)
        if self.allowed_registries and registry not in self.allowed_registries:
            raise PolicyViolation(
                f"{field}: registry {registry} is not allowed by the node's policy "
                f"([policy] allowed_registries = {list(self.allowed_registries)})"
            )

    def _host_port(self, port: int, field: str) -> None:
        low, high = self.host_ports
        if port and not low <= port <= high:
            raise PolicyViolation(
                f"{field}: host port {port} is outside the node's policy ([policy] host_ports = "
                f'"{low}-{high}"); publish one in that range, or 0 for any free port'
            )

    def apply(self, request: Request) -> Request:
        """The request with the defaults filled in; PolicyViolation if it breaks a rule."""
        if isinstance(request, SubmitTask):
            self._image(request.image, "image")
            for container, host in request.port_bindings.items():
                self._host_port(host_port_number(host), f"port_bindings[{container}]")
            if (request.memory or not self.default_memory) and (request.cpu or not self.default_cpu):
                return request  # no default to fill in: no copy of every submit
            return msgspec.structs.replace(
                request,
                memory=request.memory or self.default_memory,
                cpu=request.cpu or self.default_cpu,
            )
        if isinstance(request, CreateService | UpdateService):
            return msgspec.structs.replace(request, spec=self._service(request.spec))
        return request

    def _service(self, spec: ServiceSpec) -> ServiceSpec:
        self._image(spec.template.image, "template.image")
        for i, port in enumerate(spec.ports):
            self._host_port(port.published, f"ports[{i}].published")
        template = msgspec.structs.replace(
            spec.template,
            memory=spec.template.memory or self.default_memory,
            cpu=spec.template.cpu or self.default_cpu,
        )
        return msgspec.structs.replace(spec, template=template)
