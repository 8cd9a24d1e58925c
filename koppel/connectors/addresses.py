"""The address guard: base URLs a user typed are checked before Koppel calls them.

A web user who may set up a connection must not make Koppel call whatever sits beside it: the
cloud's metadata service (instance credentials), the machine itself, the office network. So a
base URL must be http or https; its host must resolve only to public addresses, unless the
operator allows a network (`KOPPEL_ALLOWED_NETWORKS`, e.g. 127.0.0.1/32 for the demo's
sandboxes); link-local and metadata addresses are refused even then. Redirects are never followed
by Koppel's clients (httpx's default, kept), so an allowed host cannot send a call elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from koppel.errors import ErrorCategory, KoppelError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address (cloud metadata lives there)"),
    (ipaddress.ip_network("fe80::/10"), "a link-local address"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "a cloud metadata address"),
    (ipaddress.ip_network("100.100.100.200/32"), "a cloud metadata address"),
    (ipaddress.ip_network("0.0.0.0/8"), "an unspecified address (it means this machine)"),
    (ipaddress.ip_network("::/128"), "an unspecified address (it means this machine)"),
    (ipaddress.ip_network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.ip_network("ff00::/8"), "a multicast address"),
)
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class AddressRefused(KoppelError):
    """A base URL that Koppel will not call: the message says which rule and what to do."""

    category = ErrorCategory.CONFIGURATION


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`KOPPEL_ALLOWED_NETWORKS`: comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8)."""
    networks: list[IPNetwork] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(
                f"{part!r} is not an address or a network; write e.g. 127.0.0.1 or 10.0.0.0/8"
            ) from None
    return tuple(networks)


def refusal(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why Koppel will not call `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, what in _ALWAYS_REFUSED:
        if address.version == network.version and address in network:
            return f"{address} is {what}, which Koppel never calls"
    if address.is_global:
        return None
    if any(address.version == n.version and address in n for n in allowed):
        return None
    kind = "a loopback address (this machine)" if address.is_loopback else "a private address"
    return (
        f"{address} is {kind}; Koppel calls only public addresses unless the operator allows "
        f"the network in KOPPEL_ALLOWED_NETWORKS (e.g. KOPPEL_ALLOWED_NETWORKS={address})"
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses a host name resolves to (an address is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AddressRefused(
            f"the host name {host} does not resolve (DNS); check the spelling of the base URL"
        ) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_base_url(
    base_url: str, allowed: Sequence[IPNetwork], *, secret_name: str | None = None
) -> str:
    """The base URL, normalised, when Koppel may call it; AddressRefused saying why not.

    Every address the host resolves to must pass, so a name cannot hide a private address
    behind a public one. `secret_name` names a URL that is itself a credential (a chat tool's
    webhook URL carries its token): the refusal names it so, never by its value.
    """
    where = secret_name or f"base URL {base_url!r}"
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https"):
        raise AddressRefused(
            f"{where}: only http:// and https:// addresses are called; "
            "write the address as https://host/..."
        )
    host = parts.hostname
    if not host:
        raise AddressRefused(f"{where}: has no host name; write it as https://host/...")
    if parts.username or parts.password:
        raise AddressRefused(
            f"{where}: a user name or password in the address is not allowed; "
            "enter credentials in their own fields"
        )
    if host.rstrip(".").lower() in _METADATA_HOSTS:
        raise AddressRefused(
            f"{where}: {host} is a cloud metadata service, which Koppel never calls"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused(f"{where}: the port is not a number from 1 to 65535") from None
    for address in await resolve(host, port):
        reason = refusal(address, allowed)
        if reason is not None:
            raise AddressRefused(f"{where}: {reason}")
    return base_url.strip().rstrip("/")


__all__ = ["AddressRefused", "IPNetwork", "check_base_url", "parse_networks", "refusal"]
