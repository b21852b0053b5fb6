"""The relay's duplicate suppression (no sockets: the LMTP side is never reached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldmesh.mail_relay import Delivery, InFlight


def test_a_copy_of_a_message_being_delivered_is_told_to_retry(tmp_path: Path) -> None:
    d = Delivery(str(tmp_path / "lmtp.sock"), str(tmp_path / "relay.sqlite"))
    d.inflight.add(("<m1@acme.test>", "ann@cust.test"))  # another session delivers it now
    with pytest.raises(InFlight):
        d.deliver("rep@acme.test", ["ann@cust.test"], b"Subject: x\r\n\r\nx\r\n", "<m1@acme.test>")
    assert d.inflight == {("<m1@acme.test>", "ann@cust.test")}  # the other claim stays


def test_a_message_already_delivered_is_acknowledged_without_a_copy(tmp_path: Path) -> None:
    d = Delivery(str(tmp_path / "lmtp.sock"), str(tmp_path / "relay.sqlite"))
    d.db.execute("INSERT INTO delivered VALUES ('<m2@acme.test>', 'ann@cust.test')")
    # nothing to deliver: no LMTP connection is opened (the socket does not even exist)
    assert d.deliver("rep@acme.test", ["ann@cust.test"], b"x", "<m2@acme.test>") == {}
    assert d.inflight == set()
