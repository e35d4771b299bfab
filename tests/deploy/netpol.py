"""Evaluates Kubernetes NetworkPolicies over connections, for the subset of the API the chart
renders: matchLabels selectors, pod/namespace/ipBlock peers, numeric ports. Anything else raises,
so a policy this evaluator cannot judge never passes silently.

A connection is allowed when the source's egress allows it (or no policy isolates the source for
egress) and the destination's ingress allows it (likewise), as the API defines."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace set) or an address outside the cluster (namespace None)."""

    name: str
    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def pod(name: str, namespace: str, labels: Mapping[str, str], ip: str) -> Endpoint:
    return Endpoint(name, ip, namespace, dict(labels), {"kubernetes.io/metadata.name": namespace})


def outside(ip: str) -> Endpoint:
    return Endpoint(ip, ip)


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    selector = selector or {}
    unsupported = set(selector) - {"matchLabels"}
    if unsupported:
        raise NotImplementedError(f"selector fields {unsupported}")
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def _in_block(block: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(block["cidr"])
    if address.version != network.version or address not in network:
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except", [])
                   if ipaddress.ip_network(e).version == address.version)


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    unsupported = set(peer) - {"podSelector", "namespaceSelector", "ipBlock"}
    if unsupported:
        raise NotImplementedError(f"peer fields {unsupported}")
    if "ipBlock" in peer:
        # Pod addresses are matched too: the conservative reading (CNIs differ for pod IPs).
        return _in_block(peer["ipBlock"], other.ip)
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(ports: Iterable[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if not isinstance(entry.get("port", 0), int):
            raise NotImplementedError(f"named port {entry['port']}")
        if entry.get("protocol", "TCP") != protocol:
            continue
        low = entry.get("port")
        if low is None or low <= port <= entry.get("endPort", low):
            return True
    return False


class PolicySet:
    def __init__(self, policies: Iterable[Mapping[str, Any]]) -> None:
        self._policies = [p for p in policies if p["kind"] == "NetworkPolicy"]

    def _isolating(self, endpoint: Endpoint, direction: str) -> list[Mapping[str, Any]]:
        found = []
        for policy in self._policies:
            spec = policy["spec"]
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            if (direction in types and policy["metadata"]["namespace"] == endpoint.namespace
                    and _selects(spec["podSelector"], endpoint.labels)):
                found.append(policy)
        return found

    def _direction_allows(self, subject: Endpoint, other: Endpoint, direction: str, port: int, protocol: str) -> bool:
        if not subject.is_pod:
            return True  # nothing outside the cluster is governed by these policies
        policies = self._isolating(subject, direction)
        if not policies:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if not _port_matches(rule.get("ports"), port, protocol):
                    continue
                if not peers or any(_peer_matches(p, policy["metadata"]["namespace"], other) for p in peers):
                    return True
        return False

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return (self._direction_allows(source, destination, "Egress", port, protocol)
                and self._direction_allows(destination, source, "Ingress", port, protocol))
