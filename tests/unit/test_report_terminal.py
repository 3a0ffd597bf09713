"""The terminal output: table, failure details, trace, progress; colour and live display only on a terminal."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from _report_cases import config_rejected, fastmail_defers, fastmail_sent, timed_out
from _report_world import with_world
from rich.console import Console
from rich.table import Table

from harness.model import Expect
from harness.progress import RunProgress, live_display
from harness.report import (
    configuration_notes,
    expected_text,
    failure_details,
    make_console,
    print_results,
    print_trace,
    results_table,
    results_view,
    trace_text,
)
from harness.results import CaseResult

ANSI = re.compile(r"\x1b\[")
FAILING = Expect(status="sent", tls="Verified")


def _plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def _tty_console(**kwargs: object) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=True, **kwargs), out  # type: ignore[arg-type]


# --- table and failure details ------------------------------------------------------------------------------


def test_the_table_has_one_row_per_recipient() -> None:
    table = results_table([fastmail_defers(), fastmail_sent(), timed_out()])
    assert table.row_count == 3


def test_the_table_does_not_read_markup_in_reasons() -> None:
    out = io.StringIO()
    Console(file=out, width=400).print(results_table([fastmail_defers(reason="[bold]550 5.7.1 [red]no[/red]")]))
    assert "[bold]550 5.7.1 [red]no[/red]" in out.getvalue()
    for width in (80, 200):
        assert "[bold]550 5.7.1 [red]no[/red]" in _printed(
            [fastmail_defers(reason="[bold]550 5.7.1 [red]no[/red]")], width
        )


def test_failure_details_give_expected_vs_observed_per_key() -> None:
    text = failure_details(fastmail_defers(FAILING))
    assert "fastmail-secure-nexthop / secure-defers: FAILED (Postfix 3.7.11)" in text
    assert "FAIL status: expected 'sent', observed 'deferred'" in text
    assert "FAIL tls: expected 'Verified', observed 'Untrusted'" in text
    assert "observed: deferred 4.7.5 Untrusted via in2-smtp.messagingengine.com[192.0.2.10]:25" in text


def test_failure_details_give_the_postfix_lines_of_the_queue_id_without_docker_timestamps() -> None:
    text = failure_details(fastmail_defers(FAILING))
    assert "Postfix log of queue id 085D7184144:" in text
    assert (
        "      Nov 30 11:22:40 mail postfix/smtp[221]: server certificate verification failed for "
        "in2-smtp.messagingengine.com[192.0.2.10]:25: num=62:hostname mismatch"
    ) in text
    assert "status=deferred (Server certificate not verified)" in text
    assert "2026-11-30T" not in text


def test_failure_details_give_what_the_fake_server_saw_and_the_chain_it_presented() -> None:
    text = failure_details(fastmail_defers(FAILING))
    assert (
        "the fake server in2-smtp.messagingengine.com [192.0.2.10]:25 saw: EHLO mail.example.test, "
        "STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384 SNI=(none), no message data"
    ) in text
    assert "certificate chain it presented (leaf first):\n      [0] /C=AU/ST=Victoria" in text


def test_client_cert_is_reported_with_the_other_server_side_keys() -> None:
    case = fastmail_defers(Expect(status="deferred", starttls=True, client_cert=True))
    assert expected_text(case.recipients[0].expect) == "deferred starttls=true client_cert=true"
    assert "FAIL client_cert: expected 'true', observed 'false'" in failure_details(case)
    rows = [[cell.strip() for cell in row.split("│")] for row in _printed([case], 200).splitlines() if "│" in row]
    assert [
        "",
        "",
        "server: starttls=true client_cert=true",
        "relay=in2-smtp.messagingengine.com[192.0.2.10]:25",
        "",
    ] in rows
    assert ["", "", "", "server: starttls=true client_cert=false", ""] in rows


def test_failure_details_say_when_the_fake_server_received_a_client_certificate() -> None:
    case = fastmail_defers(FAILING)
    [r] = case.recipients
    assert r.observed is not None and r.observed.server is not None
    server = replace(r.observed.server, client_cert=True)
    case = replace(case, recipients=(replace(r, observed=replace(r.observed, server=server)),))
    assert (
        "saw: EHLO mail.example.test, STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384 SNI=(none), client certificate, "
        "no message data"
    ) in failure_details(case)


def test_failure_details_give_the_names_of_the_leaf_certificate() -> None:
    text = failure_details(with_world(fastmail_defers(FAILING)))
    assert (
        "      [1] /C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA\n"
        "    leaf certificate names: *.messagingengine.com, messagingengine.com, mail.messagingengine.com\n"
    ) in text


def test_failure_details_give_the_dns_queries_made() -> None:
    text = failure_details(fastmail_defers(FAILING))
    assert "DNS queries made (5):" in text
    assert "    MX query fastmail.fm. → NOERROR AD=0: MX 10 in1-smtp.messagingengine.com." in text


def test_failure_details_of_a_case_that_could_not_finish_give_the_error_and_log_tails() -> None:
    text = failure_details(timed_out())
    assert "error: no first-attempt status for user@facebook.com within 30 s" in text
    assert "nothing observed: no first-attempt status" in text
    assert "expected: deferred 4.7.5" in text
    assert "last Postfix log lines:" in text and "last peer events:" in text


def test_failure_details_of_a_rejected_configuration_list_the_issues() -> None:
    text = failure_details(config_rejected())
    assert "Postfix rejected the configuration of this case; no mail was sent:" in text
    assert "scenarios/x.yaml:14: postfix.main.cf.smtp_tls_securty_level: Postfix does not know" in text


def test_print_results_prints_details_only_for_failed_cases() -> None:
    console, out = _plain_console()
    print_results([fastmail_sent(), fastmail_defers(FAILING)], console)
    assert out.getvalue().count("FAILED") == 1
    assert "secure-with-provider-match: FAILED" not in out.getvalue()


# --- the result view: a table (or blocks) per scenario -------------------------------------------------------

WIDTHS = (80, 120, 200)


def _run() -> list[CaseResult]:
    failing = fastmail_defers(Expect(status="sent", tls="Verified", received=True))
    return [with_world(fastmail_sent()), with_world(failing), timed_out(), config_rejected()]


def _printed(results: list[CaseResult], width: int) -> str:
    out = io.StringIO()
    print_results(results, Console(file=out, width=width))
    return out.getvalue()


def _tokens(results: list[CaseResult]) -> set[str]:
    """Every host name, address, relay, recipient and case name of the results: what must never be split."""
    tokens = set()
    for case in results:
        tokens.add(case.case)
        for r in case.recipients:
            tokens.add(r.recipient)
            if r.observed and r.observed.relay_host:
                o = r.observed
                tokens |= {o.relay, f"relay={o.relay}", o.relay_host, f"[{o.relay_address}]:{o.relay_port}"}
    return tokens


@pytest.mark.parametrize("width", WIDTHS)
def test_no_host_name_or_address_is_split_across_lines(width: int) -> None:
    results = _run()
    whole = _printed(results, 10_000)
    text = _printed(results, width)
    for token in sorted(_tokens(results)):
        assert text.count(token) == whole.count(token) > 0, (token, text)
    table_or_blocks = text.split("\nscenarios/seed/fastmail.yaml: fastmail-secure-nexthop / secure-defers: FAILED")[0]
    assert max(len(line) for line in table_or_blocks.splitlines()) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_each_scenario_has_a_heading_with_its_postfix_release_and_no_repeated_columns(width: int) -> None:
    text = _printed(_run(), width)
    heading = "fastmail-secure-nexthop · Postfix 3.7.11 · 2 cases: 1 passed, 1 failed"
    assert text.count(heading) == 1
    assert text.count("facebook-nexthop-certificate · Postfix 3.7.11 · 1 case: 0 passed, 1 failed") == 1
    assert "typo · Postfix ? · 1 case: 0 passed, 1 failed" in text
    view = text.split("\n\nscenarios/seed/fastmail.yaml: fastmail-secure-nexthop / secure-defers: FAILED")[0]
    assert "3.7.11  " not in view and "release" not in view  # no release column
    assert view.count("fastmail-secure-nexthop") == 1  # no scenario column


def test_wide_output_is_a_table_per_scenario_and_narrow_output_is_blocks() -> None:
    view = results_view(_run(), 200)
    assert [type(rows) for _, rows in view] == [Table, Table, Table]
    table = view[0][1]
    assert isinstance(table, Table)
    assert [c.header for c in table.columns] == ["case", "recipient", "expected", "observed", "result"]
    assert table.row_count == 2
    narrow = results_view(_run(), 80)
    assert isinstance(narrow[0][1], type(narrow[0][0]))  # Text: blocks
    text = _printed(_run(), 80)
    assert (
        "  FAIL  secure-defers  user@fastmail.fm\n"
        "        expected  sent tls=Verified received=true\n"
        "        observed  deferred 4.7.5 tls=Untrusted received=false\n"
        "                  relay=in2-smtp.messagingengine.com[192.0.2.10]:25\n"
        "                  (Server certificate not verified)\n"
    ) in text


def test_the_table_lines_up_expected_and_observed_with_the_relay_on_its_own_line() -> None:
    text = _printed(_run(), 200)
    rows = [line for line in text.splitlines() if "│" in line]
    cells = [[cell.strip() for cell in row.split("│")] for row in rows]
    assert ["case", "recipient", "expected", "observed", "result"] in cells
    assert ["secure-defers", "user@fastmail.fm", "sent tls=Verified received=true",
            "deferred 4.7.5 tls=Untrusted received=false", "FAIL"] in cells  # fmt: skip
    assert ["", "", "", "relay=in2-smtp.messagingengine.com[192.0.2.10]:25", ""] in cells
    assert ["", "", "", "(Server certificate not verified)", ""] in cells


def test_observed_shows_received_only_when_it_is_expected() -> None:
    text = _printed([fastmail_defers(), fastmail_defers(Expect(status="deferred", received=False))], 200)
    assert text.count("received=false") == 2  # expected and observed of the second; none for the first


def test_a_long_error_wraps_at_spaces_in_the_observed_column() -> None:
    text = _printed([timed_out()], 120)
    assert "no first-attempt status for user@facebook.com within 30 s" in text
    assert all(len(line) <= 120 for line in text.split("\n\n")[0].splitlines())


def test_a_word_longer_than_the_console_stays_whole() -> None:
    text = _printed([fastmail_defers()], 40)
    assert "relay=in2-smtp.messagingengine.com[192.0.2.10]:25" in text


def test_a_scenario_run_on_two_releases_names_the_release_of_each_case() -> None:
    sent = fastmail_sent()
    other = replace(fastmail_defers(), release="3.9.1")
    text = _printed([sent, other], 200)
    assert "fastmail-secure-nexthop · Postfix 3.7.11, 3.9.1 · 2 cases" in text
    assert "Postfix 3.9.1" in text.split("3.9.1 · 2 cases", 1)[1]


def test_releases_are_listed_in_version_order_not_string_order() -> None:
    cases = [replace(fastmail_sent(), release=r) for r in ("3.10.13", "3.5.25", "3.7.11")]
    assert "· Postfix 3.5.25, 3.7.11, 3.10.13 · 3 cases" in _printed(cases, 200)


CHANGES = (
    "maillog_file = /dev/stdout set: the harness reads Postfix's log",
    "smtpd_milters=inet:localhost:8891 removed",
)
DH = ('warning: error opening DH parameter file "/etc/postfix/dh_1024.pem": No such file or directory',)


def test_the_same_configuration_changes_are_printed_once_even_when_the_warnings_differ() -> None:
    # seed-configuration: two cases with the folder's changes only, two with the same changes and a warning.
    cases = [
        replace(fastmail_sent(), case=name, config_changes=CHANGES, postfix_warnings=warnings)
        for name, warnings in (("as-reported", ()), ("accepted-fix", ()), ("amavis", DH), ("encrypt", DH))
    ]
    text = _printed(cases, 200)
    assert text.count("configuration folder changed for the pod") == 1
    assert text.count("smtpd_milters=inet:localhost:8891 removed") == 1
    assert (
        "configuration folder changed for the pod (fastmail-secure-nexthop/as-reported, fastmail-secure-nexthop/"
        "accepted-fix, fastmail-secure-nexthop/amavis, fastmail-secure-nexthop/encrypt):\n"
    ) in text
    assert f"Postfix warned (fastmail-secure-nexthop/amavis, fastmail-secure-nexthop/encrypt):\n  - {DH[0]}" in text


def test_configuration_notes_of_a_run_on_several_releases_name_each_case_once() -> None:
    on = [replace(fastmail_sent(), release=r, config_changes=CHANGES) for r in ("3.10.13", "3.5.25", "3.7.11")]
    on[0] = replace(on[0], config_changes=CHANGES[:1])
    assert configuration_notes(on).splitlines() == [
        "configuration folder changed for the pod (fastmail-secure-nexthop/secure-with-provider-match [3.10.13]):",
        f"  - {CHANGES[0]}",
        "",
        "configuration folder changed for the pod (fastmail-secure-nexthop/secure-with-provider-match [3.5.25, "
        "3.7.11]):",
        *(f"  - {line}" for line in CHANGES),
    ]
    same = [replace(case, config_changes=CHANGES) for case in on]
    assert configuration_notes(same).splitlines()[0] == (
        "configuration folder changed for the pod (fastmail-secure-nexthop/secure-with-provider-match):"
    )


def test_the_table_in_a_terminal_is_coloured_and_failed_values_are_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    console, out = _tty_console()
    print_results([fastmail_defers(FAILING)], console)
    assert "\x1b[1;31mdeferred" in out.getvalue()  # the status that failed its check: bold red
    assert "\x1b[1;31mFAIL" in out.getvalue()


# --- trace --------------------------------------------------------------------------------------------------


def test_the_trace_tells_the_story_one_line_per_entry_with_offsets() -> None:
    text = trace_text(fastmail_defers()).plain
    lines = text.splitlines()
    assert lines[0] == "trace of fastmail-secure-nexthop / secure-defers pass (Postfix 3.7.11, 28 entries)"
    assert lines[1].startswith("    +0.000 s postfix postfix/postfix-script[195]: starting the Postfix mail system")
    assert "dns     MX query fastmail.fm. → NOERROR AD=0" in text
    assert "smtp    connection to in1-smtp.messagingengine.com[66.111.4.74]:25 from 66.111.4.74:53084" in text
    assert "smtp    in1-smtp.messagingengine.com[66.111.4.74]:25: STARTTLS" in text
    assert "postfix postfix/smtp[221]: Untrusted TLS connection established to in1-smtp" in text
    assert "\n                       [0] /C=AU/ST=Victoria" in text  # the chain under the connection
    assert lines[-1].endswith(
        "in2-smtp.messagingengine.com[192.0.2.10]:25: connection closed by the client"
    )  # after QUIT


def test_the_trace_colours_statuses_and_tls_levels() -> None:
    text = trace_text(fastmail_sent())
    styles = {text.plain[span.start : span.end]: str(span.style) for span in text.spans}
    verified = next(k for k in styles if k.startswith("Verified TLS connection established"))
    status = next(k for k in styles if "status=sent" in k)
    assert styles[verified] == "green"
    assert styles[status] == "green"
    assert "yellow" in {str(s.style) for s in trace_text(fastmail_defers()).spans}  # deferred


def test_print_trace_keeps_long_postfix_lines_whole() -> None:
    out = io.StringIO()
    print_trace(fastmail_defers(), Console(file=out, width=80))
    assert (
        "postfix/smtp[221]: 085D7184144: to=<user@fastmail.fm>, relay=in2-smtp.messagingengine.com[192.0.2.10]:25, "
        "delay=0.05, delays=0.02/0.01/0.02/0, dsn=4.7.5, status=deferred (Server certificate not verified)"
    ) in out.getvalue()


# --- colour and live display --------------------------------------------------------------------------------


def test_output_that_is_not_a_terminal_has_no_colour_and_is_200_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    console = make_console(out)
    print_results([fastmail_defers(FAILING)], console)
    print_trace(fastmail_defers(FAILING), console)
    assert console.width == 200
    assert not ANSI.search(out.getvalue())
    assert not live_display(console)


def test_a_terminal_gets_colour_and_the_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    console, out = _tty_console()
    console.print(trace_text(fastmail_defers()))
    assert ANSI.search(out.getvalue())
    assert live_display(console)


def test_no_color_turns_off_colour_and_the_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    console, out = _tty_console()
    console.print(trace_text(fastmail_defers()))
    assert not re.search(r"\x1b\[[0-9;]*3\dm", out.getvalue())  # no foreground colour
    assert not live_display(console)


def test_progress_without_a_terminal_prints_one_numbered_line_per_case() -> None:
    console, out = _plain_console()
    with RunProgress(console, 2) as progress:
        assert not progress.live
        progress.running("fastmail-secure-nexthop", "secure-defers")
        progress.done(fastmail_defers())
        progress.running("fastmail-secure-nexthop", "secure-defers")
        progress.done(fastmail_defers(FAILING))
        progress.note("building image mxharness-postfix:3.7-abc")
    assert out.getvalue() == (
        "pass fastmail-secure-nexthop/secure-defers (2.6 s) [1/2]\n"
        "FAIL fastmail-secure-nexthop/secure-defers (2.6 s) [2/2]\n"
        "building image mxharness-postfix:3.7-abc\n"
    )


def test_progress_of_a_run_on_several_releases_names_each_case_s_release() -> None:
    console, out = _plain_console()
    with RunProgress(console, 2, show_release=True) as progress:
        progress.running("fastmail-secure-nexthop", "secure-defers", "3.5")
        progress.done(replace(fastmail_defers(), release="3.5.25"))
        progress.done(replace(fastmail_defers(FAILING), release="3.10.13"))
    assert out.getvalue() == (
        "pass fastmail-secure-nexthop/secure-defers on Postfix 3.5.25 (2.6 s) [1/2]\n"
        "FAIL fastmail-secure-nexthop/secure-defers on Postfix 3.10.13 (2.6 s) [2/2]\n"
    )


def test_progress_on_a_terminal_shows_the_running_case_and_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    console, out = _tty_console()
    with RunProgress(console, 3) as progress:
        assert progress.live
        progress.running("fastmail-secure-nexthop", "secure-defers")
        progress._progress.refresh()
        assert "fastmail-secure-nexthop/secure-defers" in out.getvalue()
        assert "0/3" in out.getvalue()
        progress.done(fastmail_defers())
        progress._progress.refresh()
        assert "1/3" in out.getvalue()
