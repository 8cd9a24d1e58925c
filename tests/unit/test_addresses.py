"""The address guard: which base URLs a user may enter, and why the others are refused."""

from __future__ import annotations

import ipaddress

import pytest

from koppel.connectors.addresses import AddressRefused, check_base_url, parse_networks
from koppel.settings import Settings

LOOPBACK_ALLOWED = parse_networks("127.0.0.1")


@pytest.mark.parametrize(
    ("url", "because"),
    [
        ("ftp://files.example.com/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("https://", "has no host name"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://metadata.google.internal/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://10.1.2.3/", "private address"),
        ("http://192.168.1.10/", "private address"),
        ("http://127.0.0.2:9000/", "loopback"),
        ("http://[::1]:9000/", "loopback"),
        ("https://user:pw@api.example.com/", "user name or password"),
        ("http://127.0.0.1:99999/", "port"),
    ],
)
async def test_refused_addresses_say_why(url: str, because: str) -> None:
    with pytest.raises(AddressRefused, match=because):
        await check_base_url(url, LOOPBACK_ALLOWED)


async def test_a_private_address_names_the_setting_that_allows_it() -> None:
    with pytest.raises(AddressRefused, match=r"KOPPEL_ALLOWED_NETWORKS=10\.1\.2\.3"):
        await check_base_url("http://10.1.2.3/", ())


async def test_allowed_networks_let_loopback_and_private_through_but_never_link_local() -> None:
    allowed = parse_networks("127.0.0.1, 10.0.0.0/8, 169.254.0.0/16")
    assert await check_base_url(" http://127.0.0.1:8100/api/ ", allowed) == (
        "http://127.0.0.1:8100/api"
    )
    assert await check_base_url("https://10.20.30.40", allowed) == "https://10.20.30.40"
    with pytest.raises(AddressRefused, match="never calls"):
        await check_base_url("http://169.254.169.254/", allowed)


async def test_public_addresses_pass() -> None:
    assert await check_base_url("https://93.184.215.14/v3", ()) == "https://93.184.215.14/v3"


async def test_a_name_that_does_not_resolve_is_named() -> None:
    with pytest.raises(AddressRefused, match="does not resolve"):
        await check_base_url("https://no-such-host.invalid/", ())


def test_the_setting_is_parsed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_ALLOWED_NETWORKS", "127.0.0.1,10.0.0.0/8")
    assert Settings().networks_allowed == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    monkeypatch.setenv("KOPPEL_ALLOWED_NETWORKS", "office")
    with pytest.raises(ValueError, match="'office' is not an address or a network"):
        Settings()
