"""Reading pasted logs for `mxharness draft` (harness._draft_input): prefixes, wrapped lines, posttls-finger output
and its command line, DNS answers, the -C chain print, and robustness against anything pasted.

Line forms follow the Postfix source (src/tls/tls_verify.c, tls_client.c, posttls-finger.c of 2.11-3.12) and
postfix-tls-notes.md; the seed log is the report the project was born from (Postfix 2.11, smtp_tls_loglevel 2).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness._draft_input import read_paste
from harness._maillog_events import ChainLine, Delivery, SubjectAltName, TlsEstablished
from harness.errors import ScenarioError
from harness.pki import Pki

DATA = Path(__file__).parent.parent / "data"
DRAFT = Path(__file__).parent / "data" / "draft"
SEED_LOG = DATA / "seed-smtp-tls.log"


def _write(tmp_path: Path, text: str, name: str = "paste.log") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _texts(path: Path) -> list[str]:
    return [entry.event.text for entry in read_paste([path]).entries]


def test_seed_log_every_line_is_a_postfix_line() -> None:
    paste = read_paste([SEED_LOG])
    assert (paste.lines, len(paste.entries), paste.joined, paste.skipped) == (32, 32, 0, ())
    kinds = [type(entry.event) for entry in paste.entries]
    assert kinds.count(ChainLine) == 3
    assert kinds.count(SubjectAltName) == 6
    assert kinds[-2:] == [TlsEstablished, Delivery]
    assert paste.entries[-1].origin.line == 32


@pytest.mark.parametrize("width", [80, 100])
def test_lines_cut_hard_at_a_terminal_width_are_joined_as_they_were(tmp_path: Path, width: int) -> None:
    lines = [line.rstrip() for line in SEED_LOG.read_text().splitlines()]
    cut = [piece for line in lines for piece in (line[i : i + width] for i in range(0, len(line), width))]
    paste = read_paste([_write(tmp_path, "\n".join(cut) + "\n")])
    assert [e.event.text for e in paste.entries] == _texts(SEED_LOG)
    assert paste.joined == len(cut) - len(lines)
    assert paste.skipped == ()


def test_lines_wrapped_at_word_boundaries_are_joined_with_a_space(tmp_path: Path) -> None:
    lines = SEED_LOG.read_text().splitlines()
    wrapped = [
        piece for line in lines for piece in textwrap.wrap(line, 72, break_long_words=False, break_on_hyphens=False)
    ]
    assert len(wrapped) > len(lines) + 10
    assert _texts(_write(tmp_path, "\n".join(wrapped))) == _texts(SEED_LOG)


def test_continuation_lines_indented_by_a_mail_client_are_joined(tmp_path: Path) -> None:
    text = (DRAFT / "journald-short-iso.log").read_text()
    paste = read_paste([_write(tmp_path, text)])
    tls = [e.event for e in paste.entries if isinstance(e.event, TlsEstablished)]
    assert tls[0].cipher == "TLS_AES_256_GCM_SHA384"
    assert tls[0].text.endswith("server-signature ECDSA (prime256v1) server-digest SHA256")
    assert paste.joined == 2


def test_journald_markers_other_programs_and_snip_lines(tmp_path: Path) -> None:
    paste = read_paste([DRAFT / "journald-short-iso.log"])
    assert paste.other_programs == 2  # dovecot and amavis
    assert [origin.line for origin in paste.skipped] == [19]  # "[... 40 lines snipped ...]"
    assert all(entry.event.service.startswith("postfix/") for entry in paste.entries)
    assert sum(isinstance(e.event, Delivery) for e in paste.entries) == 4


def test_rfc5424_and_quoted_lines_read_as_the_classic_form(tmp_path: Path) -> None:
    rfc5424 = []
    for line in SEED_LOG.read_text().splitlines():
        rest = line.split(" ", 3)[3]  # "mail postfix/smtp[25291]: text"
        host, service_pid, text = rest.split(" ", 2)
        service, pid = service_pid.rstrip(":").rstrip("]").split("[")
        rfc5424.append(f"<22>1 2016-02-25T21:57:22.000+01:00 {host} {service} {pid} - - {text}")
    assert _texts(_write(tmp_path, "\n".join(rfc5424), "rfc5424.log")) == _texts(SEED_LOG)
    quoted = "\n".join("> " + line for line in SEED_LOG.read_text().splitlines())
    assert _texts(_write(tmp_path, quoted, "quoted.log")) == _texts(SEED_LOG)


def test_a_wrapped_line_never_takes_the_next_log_line(tmp_path: Path) -> None:
    text = (
        "Feb 25 21:57:22 mail postfix/smtp[25291]: D33A02504112: to=<a@example.com>, relay=none, delay=1,\n"
        "delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to mx.example.com[192.0.2.1]:25: Connection refused)\n"
        "Feb 25 21:57:23 mail postfix/smtp[25291]: D33A02504113: to=<b@example.com>, relay=none, delay=1, "
        "delays=1/0/0/0, dsn=4.4.1, status=deferred (connect to mx.example.com[192.0.2.1]:25: Connection refused)\n"
    )
    paste = read_paste([_write(tmp_path, text)])
    deliveries = [e.event for e in paste.entries if isinstance(e.event, Delivery)]
    assert [d.recipient for d in deliveries] == ["a@example.com", "b@example.com"]
    assert deliveries[0].reason == "connect to mx.example.com[192.0.2.1]:25: Connection refused"
    assert paste.joined == 1


def test_posttls_finger_output_command_and_dns_answers() -> None:
    paste = read_paste([DRAFT / "finger-secure.txt"])
    assert [entry.finger for entry in paste.entries] == [True, True, True]
    assert isinstance(paste.entries[-1].event, TlsEstablished)
    (command,) = paste.commands
    assert (command.destination, command.level, command.match) == ("fastmail.fm", "secure", ())
    assert ("P", "/etc/ssl/certs") in command.options
    assert [(a.owner, a.rtype, a.value) for a in paste.dns_answers] == [
        ("fastmail.fm", "MX", "10 in1-smtp.messagingengine.com"),
        ("fastmail.fm", "MX", "20 in2-smtp.messagingengine.com"),
    ]
    assert paste.skipped == ()


@pytest.mark.parametrize(
    ("line", "destination", "level", "match"),
    [
        (
            "$ posttls-finger -c -lverify '[mx.example.com]:587' .example.com",
            "[mx.example.com]:587",
            "verify",
            (".example.com",),
        ),
        ("posttls-finger -cC -L none example.net", "example.net", None, ()),
        (
            "user@host:~$ posttls-finger -l dane -d sha256 example.org hostname nexthop",
            "example.org",
            "dane",
            ("hostname", "nexthop"),
        ),
    ],
)
def test_posttls_finger_command_lines(
    tmp_path: Path, line: str, destination: str, level: str | None, match: tuple[str, ...]
) -> None:
    (command,) = read_paste([_write(tmp_path, line + "\n")]).commands
    assert (command.destination, command.level, command.match) == (destination, level, match)


def test_dig_host_and_nslookup_answers(tmp_path: Path) -> None:
    text = (
        "example.com.\t\t300\tIN\tMX\t10 mx1.example.com.\n"
        "example.com mail is handled by 20 mx2.example.com.\n"
        "example.com\tmail exchanger = 30 mx3.example.com.\n"
        "mx1.example.com has address 192.0.2.25\n"
        "mx1.example.com has IPv6 address 2001:db8::25\n"
        "mx2.example.com.  60 IN A 192.0.2.26\n"
    )
    answers = [(a.owner, a.rtype, a.value) for a in read_paste([_write(tmp_path, text)]).dns_answers]
    assert answers == [
        ("example.com", "MX", "10 mx1.example.com"),
        ("example.com", "MX", "20 mx2.example.com"),
        ("example.com", "MX", "30 mx3.example.com"),
        ("mx1.example.com", "A", "192.0.2.25"),
        ("mx1.example.com", "AAAA", "2001:db8::25"),
        ("mx2.example.com", "A", "192.0.2.26"),
    ]


def test_posttls_finger_chain_print_with_pem_blocks(tmp_path: Path) -> None:
    pki = Pki()
    pki.add_ca("root", subject="/O=Example/CN=Example Root", key="ec256")
    pki.add_ca("inter", issuer="root", subject="/O=Example/CN=Example Issuing CA", key="ec256")
    leaf = pki.add_cert("mx", issuer="inter", san=["mx.example.com"], key="ec256")
    text = _chain_print(leaf.cert_pem.decode(), pki.ca("inter").cert_pem.decode())
    paste = read_paste([_write(tmp_path, text)])
    first, second = paste.printed
    assert (first.index, first.subject, first.issuer) == (0, "/CN=mx.example.com", "/O=Example/CN=Example Issuing CA")
    assert first.cert_digest == "AA:BB" and first.pkey_digest == "CC:DD"
    assert first.pem is not None and first.pem.startswith("-----BEGIN CERTIFICATE-----")
    assert (second.index, second.issuer) == (1, "/O=Example/CN=Example Root")
    assert first.after == 1  # printed after the one posttls-finger line before it
    assert paste.skipped == ()


def _chain_print(leaf_pem: str, inter_pem: str) -> str:
    return (
        "posttls-finger: Untrusted TLS connection established to mx.example.com[192.0.2.25]:25: TLSv1.3 with "
        "cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        "\n---\nCertificate chain\n"
        " 0 subject: /CN=mx.example.com\n    issuer: /O=Example/CN=Example Issuing CA\n"
        "   cert digest=aa:bb\n   pkey digest=cc:dd\n"
        f"{leaf_pem}"
        " 1 subject: /O=Example/CN=Example Issuing CA\n    issuer: /O=Example/CN=Example Root\n"
        "   cert digest=EE:FF\n   pkey digest=00:11\n"
        f"{inter_pem}"
    )


def test_unreadable_and_binary_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00")
    with pytest.raises(ScenarioError) as caught:
        read_paste([tmp_path / "missing.log", binary])
    first, second = caught.value.issues
    assert first.file.endswith("missing.log") and "cannot read the file" in first.message
    assert second.file.endswith("capture.pcap") and "binary" in second.message and "Hint:" in second.message


def test_non_utf8_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.log"
    path.write_bytes(SEED_LOG.read_bytes().replace(b"Victoria", b"Victoria \xe9t\xe9"))
    assert len(read_paste([path]).entries) == 32


_PIECES = [*SEED_LOG.read_text().splitlines(), "", "> x", "-- Boot 1a2b --", "  wrapped", "posttls-finger: x"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES) | st.text(st.characters(blacklist_characters="\x00"), max_size=120), max_size=30)
)
def test_any_paste_is_read_without_an_error(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("paste") / "any.log"
    path.write_text("\n".join(lines), errors="replace")
    paste = read_paste([path])
    assert len(paste.entries) + len(paste.skipped) + paste.other_programs + paste.joined <= paste.lines
