"""Pure unit tests of parsing, reply stripping, threading subjects, rendering and links."""

from __future__ import annotations

from pathlib import Path

import pytest

from engage import links, parse, render


def test_reply_stripping_drops_quotes_quote_headers_and_signatures() -> None:
    text = "Yes, Tuesday works.\nThanks\n\n-- \nBob\nACME\n> old\n"
    assert parse.strip_reply(text) == "Yes, Tuesday works.\nThanks"
    outlook = "Fine by me.\n\n-----Original Message-----\nFrom: Rep\nSent: Monday\n"
    assert parse.strip_reply(outlook) == "Fine by me."
    gmail = "OK\n\nOn Mon, 7 Dec 2026 at 10:00, Rep One <rep@acme.test> wrote:\n> hi\n"
    assert parse.strip_reply(gmail) == "OK"
    mobile = "On my way\n\nSent from my iPhone"
    assert parse.strip_reply(mobile) == "On my way"


def test_a_reply_that_is_only_a_quote_keeps_its_text() -> None:
    assert parse.strip_reply("> only a quote") == "> only a quote"


@pytest.mark.parametrize(
    ("subject", "thread"),
    [("Re: RE: Fwd: Your quote", "your quote"), ("AW: [Ticket 7] Visit", "visit"), ("x", "x")],
)
def test_thread_subject_ignores_reply_prefixes(subject: str, thread: str) -> None:
    assert parse.normalise_subject(subject) == thread


def test_oversized_empty_and_senderless_mail_are_refused_with_the_reason() -> None:
    with pytest.raises(parse.BadMail, match="over the"):
        parse.parse_mail(b"x" * (parse.MAX_MESSAGE_BYTES + 1))
    with pytest.raises(parse.BadMail, match="empty"):
        parse.parse_mail(b"  \r\n")
    with pytest.raises(parse.BadMail, match="no From"):
        parse.parse_mail(b"Subject: hi\r\n\r\nbody\r\n")


def test_auto_replies_are_recognised_by_header_and_subject() -> None:
    base = b"From: a@b.test\r\nTo: c@d.test\r\nMessage-ID: <1@b.test>\r\n"
    assert parse.parse_mail(
        base + b"Auto-Submitted: auto-replied\r\nSubject: x\r\n\r\nx"
    ).auto_reply
    assert parse.parse_mail(base + b"Subject: Out of Office: away\r\n\r\nx").auto_reply
    assert not parse.parse_mail(base + b"Subject: Re: visit\r\n\r\nx").auto_reply


def test_threading_headers_are_read_and_bounded() -> None:
    refs = " ".join(f"<{i}@x.test>" for i in range(80))
    raw = (
        "From: Ann <ANN@X.test>\r\nSubject: Re: q\r\nMessage-ID: <m@x.test>\r\n"
        f"In-Reply-To: <p@x.test>\r\nReferences: {refs}\r\n\r\nhello\r\n"
    ).encode()
    p = parse.parse_mail(raw)
    assert p.from_addr == "ann@x.test" and p.message_id == "<m@x.test>"
    assert p.in_reply_to == "<p@x.test>" and len(p.references) == parse.MAX_REFS


def test_merge_fields_are_escaped_in_html_and_folded_in_the_subject() -> None:
    values = {"contact": {"first_name": "<b>Eve</b>\r\nBcc: x@y"}}
    out = render.render(
        "Hi {{contact.first_name}}", "<p>{{ contact.first_name }}</p>", None, values
    )
    assert "&lt;b&gt;Eve&lt;/b&gt;" in out.html
    assert "\n" not in out.subject and "\r" not in out.subject
    missing = render.render("x", "<p>{{contact.nope}}</p>", "t", values).missing
    assert missing == ("contact.nope",)


def test_signed_links_refuse_tampering() -> None:
    key = b"k" * 32
    token = links.sign(key, "click", "abc", "https://ok.test/")
    assert links.verify(key, "click", token, "https://ok.test/") == "abc"
    assert links.verify(key, "click", token, "https://evil.test/") is None
    assert links.verify(key, "open", token) is None
    assert links.verify(b"j" * 32, "click", token, "https://ok.test/") is None


def test_dkim_signature_verifies() -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    raw = b"From: a@acme.test\r\nTo: b@x.test\r\nSubject: s\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@acme.test>\r\n\r\nbody\r\n"
    signed = render.dkim_sign(raw, selector="s1", domain="acme.test", private_key_pem=pem)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)


def test_the_dkim_setting_names_selector_domain_and_key_file(tmp_path: Path) -> None:
    from engage.send import send_config
    from kernel.settings import SettingsError, load_settings

    key = tmp_path / "dkim.pem"
    key.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\n")
    cfg = send_config(load_settings({"FIELDMESH_DKIM": f"s1:acme.test:{key}"}))
    assert (cfg.dkim_selector, cfg.dkim_domain, cfg.dkim_key_pem) == (
        "s1",
        "acme.test",
        b"-----BEGIN RSA PRIVATE KEY-----\n",
    )
    assert send_config(load_settings({})).dkim_key_pem is None
    with pytest.raises(SettingsError, match="FIELDMESH_DKIM"):
        load_settings({"FIELDMESH_DKIM": f"s1:acme.test:{tmp_path / 'missing.pem'}"})
