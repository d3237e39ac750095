"""The iptables rules the overlay needs beside Docker's own, added at start, removed at stop.

Docker's rules treat the VXLAN device as the outside world: its FORWARD chain drops new
connections into a bridge network unless a port is published, and its POSTROUTING masquerades
whatever leaves a bridge for another interface. Between two nodes' subnets neither is wanted
(a task must see its peer's own address), so two rules go in front of Docker's, both for
cluster CIDR to cluster CIDR only: ACCEPT in DOCKER-USER (the chain Docker leaves to the
administrator, consulted first) and RETURN at the top of nat POSTROUTING. The rules carry a
comment so that they are found and removed again by what they are, not by position.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

COMMENT = "orion-overlay"


class FirewallError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Rule:
    table: str
    chain: str
    spec: tuple[str, ...]


def overlay_rules(cluster_cidr: str) -> list[Rule]:
    between = ("-s", cluster_cidr, "-d", cluster_cidr, "-m", "comment", "--comment", COMMENT)
    return [
        Rule("filter", "DOCKER-USER", (*between, "-j", "ACCEPT")),
        Rule("nat", "POSTROUTING", (*between, "-j", "RETURN")),
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"iptables {' '.join(args)}: {exc}") from exc


class Firewall:
    def __init__(self, cluster_cidr: str) -> None:
        self.rules = overlay_rules(cluster_cidr)

    def ensure(self) -> None:
        """Put each rule first in its chain unless it is there. Docker inserts its own rules at
        the top when it makes a network (its MASQUERADE for a new bridge lands above ours), so
        a rule that is present but no longer first is moved back. DOCKER-USER is made when
        Docker has not made it yet: Docker adopts the chain and jumps to it from FORWARD."""
        for rule in self.rules:
            listed = _iptables("-t", rule.table, "-S", rule.chain)
            if listed.returncode and rule.chain == "DOCKER-USER":
                _iptables("-t", rule.table, "-N", rule.chain)
                listed = _iptables("-t", rule.table, "-S", rule.chain)
            appended = [line for line in listed.stdout.splitlines() if line.startswith("-A ")]
            if appended and COMMENT in appended[0]:
                continue
            self._delete(rule)
            done = _iptables("-t", rule.table, "-I", rule.chain, "1", *rule.spec)
            if done.returncode:
                raise FirewallError(
                    f"cannot add the overlay's {rule.table} {rule.chain} rule: {done.stderr.strip()}"
                )

    @staticmethod
    def _delete(rule: Rule) -> None:
        for _ in range(16):  # every copy (a crash may have left one behind before a restart)
            if _iptables("-t", rule.table, "-D", rule.chain, *rule.spec).returncode:
                break

    def remove(self) -> None:
        for rule in self.rules:
            self._delete(rule)

    def present(self) -> list[Rule]:
        return [r for r in self.rules if _iptables("-t", r.table, "-C", r.chain, *r.spec).returncode == 0]
