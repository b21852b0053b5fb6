"""Where webhooks may go: every refused address class, the allow-list, bounded lengths.

Pure: IP literals need no lookup, and names resolve through a replaced `_resolve` (or,
for numeric forms like 2130706433, the C library parses them without a query).
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

import crm_sync.webhooks as webhooks
from crm_sync.errors import InvalidInput
from crm_sync.webhooks import RefusedTarget, address_problem, resolve_target, validate_url
from kernel.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("[fc00::1]", "private"),
        ("[fd12:3456::1]", "private"),
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::ffff:a9fe:a9fe]", "link-local"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:10.0.0.1]", "private"),
        ("[::ffff:192.168.0.1]", "private"),
        ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64 form of 169.254.169.254
        ("[2002:7f00:1::]", "loopback"),  # 6to4 form of 127.0.0.1
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("240.0.0.1", "private"),  # reserved class E; Python files it under private
        ("198.18.0.1", "private"),  # benchmarking
    ],
)
def test_every_non_public_address_class_is_refused(host: str, kind: str) -> None:
    with pytest.raises(RefusedTarget, match=f"points at a {kind}") as exc:
        validate_url(f"http://{host}:8080/hook")
    assert exc.value.field == "url"


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1"])
def test_numeric_spellings_of_loopback_are_refused(host: str) -> None:
    # not IP literals to Python, but the resolver reads them as 127.x addresses
    with pytest.raises(RefusedTarget, match="loopback"):
        validate_url(f"http://{host}/hook")


def test_public_addresses_pass_and_the_allow_list_opens_named_networks() -> None:
    assert validate_url("https://93.184.216.34/x") == "https://93.184.216.34/x"
    assert validate_url("http://[2606:4700::1111]/x") == "http://[2606:4700::1111]/x"
    allow = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.20.0.0/16"))
    assert validate_url("http://127.0.0.1:9/h", allow) == "http://127.0.0.1:9/h"
    assert validate_url("http://[::ffff:127.0.0.1]:9/h", allow)  # the IPv4 it reaches
    assert validate_url("http://10.20.3.4/h", allow)
    with pytest.raises(RefusedTarget, match="private"):
        validate_url("http://10.21.0.1/h", allow)
    with pytest.raises(RefusedTarget, match="loopback"):
        validate_url("http://127.0.0.2/h", allow)


def test_a_name_is_refused_when_any_of_its_addresses_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "_resolve", lambda host: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(RefusedTarget, match=r"mixed\.example -> 10\.0\.0\.7"):
        validate_url("http://mixed.example/h")


def test_lengths_are_bounded() -> None:
    with pytest.raises(RefusedTarget, match="longer than 253"):
        validate_url("http://" + ".".join(["a" * 60] * 5) + "/h")  # 304 characters
    with pytest.raises(RefusedTarget, match="longer than 253"):
        validate_url(f"http://{'h' * 300}.example/h")
    with pytest.raises(RefusedTarget, match="not a valid DNS name"):
        validate_url(f"http://{'a' * 64}.example/h")  # a label of 64
    with pytest.raises(RefusedTarget, match="longer than 2048"):
        validate_url("https://93.184.216.34/" + "p" * 2048)
    with pytest.raises(RefusedTarget, match="control"):
        validate_url("http://93.184.216.34/a b")


def test_resolve_target_pins_the_checked_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def resolve(host: str) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"]

    monkeypatch.setattr(webhooks, "_resolve", resolve)
    target = asyncio.run(resolve_target("https://hooks.example:8443/in?x=1"))
    assert calls == ["hooks.example"]
    (ip,) = target.addresses
    assert str(target.pinned_url(ip)) == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example:8443"
    v6 = asyncio.run(resolve_target("http://u:p@[2606:4700::1111]/h"))
    assert v6.pinned_url(v6.addresses[0]) == "http://u:p@[2606:4700::1111]/h"
    assert v6.host_header == "[2606:4700::1111]"
    # a name that resolves to nothing now is a retryable failure, not a refusal
    monkeypatch.setattr(webhooks, "_resolve", lambda host: [])
    with pytest.raises(InvalidInput, match="does not resolve") as exc:
        asyncio.run(resolve_target("http://gone.example/h"))
    assert not isinstance(exc.value, RefusedTarget)


def test_the_allow_list_setting_is_parsed_and_checked() -> None:
    s = load_settings(env={"FIELDMESH_WEBHOOK_ALLOW": "127.0.0.1/32, 10.0.0.0/8,::1"})
    assert s.webhook_allow == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert load_settings(env={}).webhook_allow == ()
    with pytest.raises(SettingsError, match="FIELDMESH_WEBHOOK_ALLOW"):
        load_settings(env={"FIELDMESH_WEBHOOK_ALLOW": "10.0.0.0/33"})
    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None


def test_failure_reasons_are_storable() -> None:
    # a NUL in a reason would make the outbox row unstorable (PostgreSQL text)
    reason = webhooks._reason("HTTP\x00 bad\r\nreason" + "x" * 600)
    assert reason == "HTTP? bad?\nreason" + "x" * 483
