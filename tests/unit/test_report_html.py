"""``--html``: one self-contained, well-formed page with each case's expected vs observed and timeline."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from _report_cases import config_rejected, fastmail_defers, fastmail_sent, timed_out
from _report_world import MAIN_CF, with_world

from harness._explain_report import DISAGREEMENT_HEADING
from harness.html_report import render_html
from harness.model import Expect
from harness.report import trace_text
from harness.results import CaseResult
from harness.trace import LOOPBACK_NOTE

FASTMAIL = str(Path(__file__).resolve().parents[2] / "scenarios" / "seed" / "fastmail.yaml")
VOID = {"meta", "br", "hr", "img", "link", "input", "wbr"}
NOTES = {"fastmail-secure-nexthop": ["fastmail.fm's MX hosts live under messagingengine.com.", "Source: a report"]}


class _Structure(HTMLParser):
    """Collects tags, attributes and text; checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name, value) for name, value in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(**kwargs: object) -> str:
    results = [
        with_world(fastmail_sent()),
        with_world(fastmail_defers(Expect(status="sent", tls="Verified"))),
        timed_out(),
        config_rejected(),
    ]
    return render_html(results, notes=NOTES, **kwargs)  # type: ignore[arg-type]


def _text(page: str) -> str:
    """The page's text as a reader sees it (tags left out)."""
    return "".join(_parsed(page).text)


def _parsed(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser


def test_the_page_is_well_formed() -> None:
    parsed = _parsed(_page())
    assert parsed.errors == []
    assert parsed.stack == []


def test_the_page_is_self_contained() -> None:
    page = _page()
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "url(" not in page and "@import" not in page
    attributes = _parsed(page).attributes
    assert not [a for a in attributes if a[1] == "src"]
    assert all((value or "").startswith("#") for _, name, value in attributes if name == "href")


def test_every_link_points_to_a_case_section() -> None:
    attributes = _parsed(_page()).attributes
    ids = {value for _, name, value in attributes if name == "id"}
    links = [value[1:] for _, name, value in attributes if name == "href" and value]
    assert len(links) == 4
    assert set(links) <= ids


def test_the_page_names_every_case_and_shows_the_scenario_notes() -> None:
    page = _page()
    for name in ("secure-with-provider-match", "secure-defers", "untrusted-root-defers", "typo / one"):
        assert name in page
    assert "fastmail.fm&#x27;s MX hosts live under messagingengine.com." in page
    assert "<title>mxharness report: 1/4 passed</title>" in page


def test_expected_vs_observed_and_the_verdicts_are_shown_per_recipient() -> None:
    page = _page()
    assert '<tr><td>status</td><td>sent</td><td>deferred</td><td class="bad">FAIL</td></tr>' in page
    assert '<tr><td>tls</td><td>Verified</td><td>Verified</td><td class="ok">ok</td></tr>' in page
    assert page.count('<span class="badge fail">FAIL</span>') >= 3
    text = _text(page)
    assert "Postfix log of queue id 085D7184144" in text  # the failing recipient's own lines
    assert "no first-attempt status for user@facebook.com" in text
    assert "Postfix rejected the configuration of this case" in text


def test_statuses_and_tls_levels_are_coloured_and_named() -> None:
    page = _page()
    assert '<span class="badge tone-sent">sent</span>' in page
    assert '<span class="badge tone-deferred">deferred</span>' in page
    assert '<span class="badge tone-Verified">Verified</span>' in page
    assert '<span class="badge tone-Untrusted">Untrusted</span>' in page
    for tone in ("sent", "deferred", "bounced", "Verified", "Trusted", "Untrusted", "Anonymous", "none"):
        assert f".tone-{tone}" in page  # every tone has a colour in the style sheet


def test_the_timeline_is_in_the_page_with_the_story_of_the_case() -> None:
    text = "".join(_parsed(_page()).text)
    assert "MX query fastmail.fm. → NOERROR AD=0" in text
    assert "connection to in1-smtp.messagingengine.com[66.111.4.74]:25 from 66.111.4.74:53084" in text
    assert "server certificate verification failed for in1-smtp.messagingengine.com[66.111.4.74]:25" in text
    assert "[0] /C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com" in text
    assert 'title="2026-11-30T11:22:40.055295+00:00"' in _page()  # the exact time on hover


def test_the_timeline_notes_the_loopback_source_address_as_the_terminal_trace_does() -> None:
    case = with_world(fastmail_defers())
    assert _text(render_html([case])).count(LOOPBACK_NOTE) == trace_text(case).plain.count(LOOPBACK_NOTE) == 1


def test_the_clients_ordinary_hang_up_is_no_error_in_the_timeline() -> None:
    text = "".join(_parsed(render_html([with_world(fastmail_defers())])).text)
    assert text.count("connection closed by the client") == 2  # after the TLS handshake of in1, after QUIT of in2
    assert "BrokenPipeError" not in text and "ConnectionResetError" not in text


def test_the_connection_shows_the_chain_and_the_leaf_names_next_to_the_hostname_mismatch() -> None:
    page = render_html([with_world(fastmail_defers())])
    text = _text(page).split("\nTimeline\n", 1)[1]  # the TLS model's account above names them too
    connect = text.index("connection to in1-smtp.messagingengine.com[66.111.4.74]:25")
    names = text.index("leaf certificate names: *.messagingengine.com messagingengine.com mail.messagingengine.com")
    mismatch = text.index("in1-smtp.messagingengine.com[66.111.4.74]:25: num=62:hostname mismatch")
    assert connect < names < mismatch
    assert '<span class="name">*.messagingengine.com</span>' in page  # highlighted


def test_the_story_stands_out_and_routine_lines_are_muted() -> None:
    page = render_html([with_world(fastmail_defers())])
    rows = re.findall(r'<tr( class="[^"]*")?><td class="t".*?<td class="what">(.*?)</td></tr>', page)
    classes = [(re.sub(r"<[^>]+>", "", what), attribute or "") for attribute, what in rows]

    def of(part: str) -> str:
        """The classes of the first row whose text has ``part``."""
        return next(c for text, c in classes if part in text)

    assert "key" in of("MX query fastmail.fm.")
    assert "key" in of("connection to in1-smtp")
    assert "key" in of("server certificate verification failed") and "tone-error" in of("server certificate")
    assert "tone-Untrusted" in of("Untrusted TLS connection established")
    assert "status" in of("085D7184144: to=&lt;user@fastmail.fm&gt;") and "tone-deferred" in of("085D7184144: to=")
    assert "minor" in of("EHLO mail.example.test")
    assert "minor" in of("QUIT")
    assert "minor" in of("AAAA query in1-smtp")


def test_host_names_and_addresses_never_break_inside() -> None:
    page = _page()
    assert "overflow-wrap: anywhere" not in page and "word-break" not in page
    assert '<span class="who"><span class="w">postfix/smtp[221]</span>:</span>' in page  # a short word: whole
    assert 'to=&lt;<span class="w">user@fastmail.fm</span>&gt;' in page
    # A long word may break only between its parts: the host name and the address each stay whole.
    assert (
        '<span class="w">relay=</span><wbr><span class="w">in2-smtp.messagingengine.com</span><wbr>'
        '<span class="w">[192.0.2.10]:25</span>'
    ) in page


def test_each_case_has_its_main_cf_and_maps_collapsed() -> None:
    page = _page()
    assert page.count('<details class="config">') == 2  # the two cases that carry them
    assert '<details class="config" open' not in page
    text = _text(page)
    assert "Postfix configuration of this case: main.cf, tls_policy" in text
    assert "/etc/postfix/main.cf" + MAIN_CF in text
    assert "/etc/postfix/tls_policyfastmail.fm secure ciphers=high\n" in text
    assert "smtp_tls_policy_maps = hash:/etc/postfix/tls_policy" in text


def test_a_recipient_shows_its_message_id_and_the_servers_leaf_names() -> None:
    text = _text(_page())
    assert "Message-ID<mxh.1f6d8249dffd.0@fastmail-secure-nexthop.secure-defers.mxharness.test>" in text
    assert "its leaf certificate names*.messagingengine.com messagingengine.com mail.messagingengine.com" in text


def test_the_summary_groups_recipients_by_scenario_with_its_release() -> None:
    text = _text(_page())
    assert "fastmail-secure-nexthop · Postfix 3.7.11 · 1 of 2 case(s) passed" in text
    assert "typo · Postfix ? · 0 of 1 case(s) passed" in text
    assert "relay=in2-smtp.messagingengine.com[192.0.2.10]:25" in text


def test_everything_from_logs_and_scenarios_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & <b>'
    page = render_html(
        [fastmail_defers(Expect(status="sent"), reason=nasty)], notes={"fastmail-secure-nexthop": [nasty]}
    )
    assert "<script" not in page and "<b>" not in page
    assert '<script>alert("x")</script> & <b>' in _text(page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page  # the notes
    assert _parsed(page).errors == []


def test_the_page_is_written_for_a_projector() -> None:
    page = _page(generated=datetime(2026, 11, 30, 11, 30, tzinfo=UTC))
    assert re.search(r"html \{ font-size: 20px; \}", page)
    assert "· 2026-11-30 11:30:00 UTC" in page


def test_an_empty_run_still_makes_a_page() -> None:
    page = render_html([])
    assert "0 case(s): 0 passed, 0 failed" in page
    assert _parsed(page).errors == []


def _absolute(case: CaseResult) -> CaseResult:
    """``case`` with its scenario file by absolute path, so that the TLS model reads it from any directory."""
    return replace(with_world(case), source_file=FASTMAIL)


def test_a_failed_recipient_has_the_tls_models_account_open_as_in_the_terminal() -> None:
    page = render_html([_absolute(fastmail_defers(Expect(status="sent")))])
    assert page.count('<details class="model" open>') == 1
    text = _text(page)
    assert f"the TLS model's account (mxharness explain {FASTMAIL} -k secure-defers)" in text
    assert "match list: nexthop, dot-nexthop, from smtp_tls_secure_cert_match" in text
    assert "Names checked: fastmail.fm (nexthop: exactly this name), .fastmail.fm (dot-nexthop" in text
    assert "  why:\n    The chain is trusted, and the certificate names the MX host" in text
    assert "what would make it deliver (each change checked with the model):" in text
    assert 'match=.messagingengine.com"' in text
    assert _parsed(page).errors == []


def test_a_passed_recipient_has_a_collapsed_why() -> None:
    page = render_html([_absolute(fastmail_sent())])
    assert page.count('<details class="model">') == 1 and '<details class="model" open' not in page
    text = _text(page)
    assert "why: the TLS model's account (mxharness explain" in text
    assert "The chain is trusted and a name matches (*.messagingengine.com matches .messagingengine.com" in text


def test_no_account_when_the_scenario_cannot_be_read_again() -> None:
    page = render_html([replace(fastmail_defers(Expect(status="sent")), source_file="<test>")])
    assert '<details class="model"' not in page


def test_the_page_says_where_the_model_and_postfix_disagree() -> None:
    sent = _absolute(fastmail_sent())
    r = sent.recipients[0]
    assert r.observed is not None
    contradicted = replace(sent, recipients=(replace(r, observed=replace(r.observed, tls="Trusted")),))
    text = _text(render_html([contradicted]))
    assert f"{DISAGREEMENT_HEADING} 3.7.11 on 1 recipient(s)" in text
    assert "secure-with-provider-match to=<user@fastmail.fm>: tls: model Verified, Postfix Trusted" in text
    assert DISAGREEMENT_HEADING not in _text(render_html([sent]))


def test_releases_are_listed_in_version_order() -> None:
    cases = [replace(fastmail_sent(), release=r) for r in ("3.10.13", "3.5.25", "3.7.11")]
    text = _text(render_html(cases))
    assert "3 case(s): 3 passed, 0 failed · Postfix 3.5.25, 3.7.11, 3.10.13" in text
    assert "fastmail-secure-nexthop · Postfix 3.5.25, 3.7.11, 3.10.13 · 3 of 3 case(s) passed" in text
