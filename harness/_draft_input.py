"""Reading pasted Postfix logs and posttls-finger output for :mod:`harness.draft`. Private.

A paste is what people put into a bug report: syslog lines of any accepted prefix (classic BSD, RFC 5424, ISO 8601
as journald's ``short-iso`` and rsyslog write it; see :mod:`harness._maillog_parse`), lines of other programs in
between, posttls-finger(1) output (``posttls-finger: …`` messages on stderr, the ``-C`` chain print on stdout),
the command line that ran it, ``dig``/``host``/``nslookup`` answers, e-mail quoting (``> ``) and lines that a mail
client or terminal wrapped. Every physical line ends up in exactly one of: an :class:`Entry` (a Postfix message,
possibly joined from several physical lines), a :class:`FingerCommand`, a :class:`DnsAnswer`, a
:class:`PrintedCert`, the count of other programs' lines, or :attr:`Paste.skipped`. Nothing here raises on the
content of a line; only an unreadable file is an error.

Wrapped lines: a physical line without any prefix that follows a Postfix line (no blank line between) continues
it. The two parts are joined with a space when the cut was at a blank (either side has one) or the paste was
word-wrapped; they are joined as they are when the cut was a hard one at a fixed column: the first part is 80
characters long, or as long as another wrapped line of the same file (a terminal or a fixed-width paste cuts
every long line at the same column, a word wrap leaves ragged lengths).
"""

from __future__ import annotations

__all__ = ["DnsAnswer", "Entry", "FingerCommand", "Origin", "Paste", "PrintedCert", "read_paste"]

import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from harness._maillog_events import LogEvent
from harness._maillog_parse import has_syslog_prefix, parse_line, parse_message
from harness.errors import ScenarioError, ScenarioIssue

FINGER = "posttls-finger"
_FINGER_LINE = re.compile(r"posttls-finger: (?P<text>.*)")
# `$ posttls-finger -c -l secure fastmail.fm`, with or without a shell prompt before it.
_FINGER_COMMAND = re.compile(r"(?:.*?[\s$#>%])?posttls-finger(?P<args>(?:\s+\S+)+)\s*")
# A shell prompt and the command of another tool (`$ host -t mx …`, `root@mail:~# dig …`): nothing to draft from.
_PROMPT = re.compile(r"(?:\S*[@:]\S*)?[$#%] \S.*")
_JOURNAL_MARKER = re.compile(r"-- .* --")  # journalctl: "-- Logs begin at …", "-- Boot 1a2b… --"
_QUOTE = re.compile(r"(?:>[ \t]?)+")
# posttls-finger -C (print_trust_info): " 0 subject: /…", "    issuer: /…", "   cert digest=…", "   pkey digest=…"
_CHAIN_SUBJECT = re.compile(r"\s*(?P<index>\d+) subject: (?P<dn>.*)")
_CHAIN_ISSUER = re.compile(r"\s+issuer: (?P<dn>.*)")
_CHAIN_DIGEST = re.compile(r"\s+(?P<kind>cert|pkey) digest=(?P<digest>[0-9A-Fa-f:]+)")
_CHAIN_HEADING = re.compile(r"---|Certificate chain|Untrusted chain|Trusted chain")
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
# dig: "fastmail.fm. 3600 IN MX 10 in1-smtp.messagingengine.com."; host: "… mail is handled by 10 …";
# nslookup: "fastmail.fm	mail exchanger = 10 in1-smtp.messagingengine.com."
_NAME = r"[A-Za-z0-9_*](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?"
_DIG = re.compile(rf"(?P<owner>{_NAME})\s+(?:\d+\s+)?(?:IN\s+)?(?P<type>MX|A|AAAA)\s+(?P<value>\S+(?:\s+{_NAME})?)\s*")
_HOST_MX = re.compile(rf"(?P<owner>{_NAME}) mail is handled by (?P<value>\d+ {_NAME})\s*")
_HOST_ADDRESS = re.compile(rf"(?P<owner>{_NAME}) has (?P<six>IPv6 )?address (?P<value>[0-9A-Fa-f:.]+)\s*")
_NSLOOKUP_MX = re.compile(rf"(?P<owner>{_NAME})\s+mail exchanger = (?P<value>\d+ {_NAME})\s*")
#: The first part of a hard-wrapped line is this long when no other wrapped line of the file says otherwise.
_TERMINAL_WIDTH = 80
# posttls-finger options that take an argument (OPTS and TLSOPTS of posttls-finger.c, Postfix 3.x).
_ARGUMENT_OPTIONS = frozenset("ahotTAdFgHkKlLmMpPrs")


@dataclass(frozen=True)
class Origin:
    """Where something was read: the file as given and the 1-based number of its first physical line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Entry:
    """One Postfix message: a log line (``finger`` False) or a posttls-finger message (``finger`` True)."""

    origin: Origin
    event: LogEvent
    finger: bool


@dataclass(frozen=True)
class FingerCommand:
    """A posttls-finger command line of the paste.

    Attributes:
        destination: the destination argument as written (``fastmail.fm``, ``[mx.example.com]:587``), None when
            the line names none.
        level: ``-l`` (None: posttls-finger's default, ``dane`` or ``secure``).
        match: the match arguments after the destination.
        options: every option letter with its argument (``""`` for flags), e.g. ``{"c": "", "P": "/etc/ssl"}``.
    """

    origin: Origin
    destination: str | None
    level: str | None
    match: tuple[str, ...]
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DnsAnswer:
    """One record of pasted ``dig``, ``host`` or ``nslookup`` output: ``MX`` (``"10 host"``), ``A`` or ``AAAA``."""

    origin: Origin
    owner: str
    rtype: str
    value: str


@dataclass(frozen=True)
class PrintedCert:
    """One certificate of posttls-finger's ``-C`` chain print (position ``index``, 0 = the server's own).

    ``after`` is the number of :attr:`Paste.entries` read before it: the print belongs to the session of the
    last posttls-finger peer before that point.
    """

    origin: Origin
    index: int
    subject: str
    issuer: str | None
    cert_digest: str | None
    pkey_digest: str | None
    pem: str | None
    after: int


@dataclass(frozen=True)
class Paste:
    """Everything read from the given files, in reading order.

    Attributes:
        entries: the Postfix and posttls-finger messages.
        commands, dns_answers, printed: posttls-finger command lines, DNS answers, ``-C`` chain prints.
        lines: physical lines read. joined: physical lines that continued a wrapped line.
        other_programs: syslog lines of programs other than Postfix (amavis, dovecot …), passed over.
        skipped: the lines that none of the above explains (not understood), in order.
    """

    entries: tuple[Entry, ...]
    commands: tuple[FingerCommand, ...]
    dns_answers: tuple[DnsAnswer, ...]
    printed: tuple[PrintedCert, ...]
    lines: int
    joined: int
    other_programs: int
    skipped: tuple[Origin, ...]


@dataclass
class _Group:
    """Physical lines that make one logical line (mutable, private). ``kind``: log, finger or other."""

    kind: str
    origin: Origin
    parts: list[str]


@dataclass
class _Cert:
    origin: Origin
    index: int
    subject: str
    issuer: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    pem: list[str] = field(default_factory=list)
    pem_done: bool = False


def read_paste(paths: Sequence[str | Path]) -> Paste:
    """Read log excerpts and posttls-finger output.

    Args:
        paths: the files, read in this order (their lines are not merged by time); ``-`` is standard input.

    Returns:
        What the files hold; see :class:`Paste`.

    Raises:
        ScenarioError: a file cannot be read or is binary (one issue per such file).
    """
    issues: list[ScenarioIssue] = []
    reader = _Reader()
    for path in paths:
        try:
            data = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
            path = "<stdin>" if str(path) == "-" else path
        except OSError as exc:
            issues.append(ScenarioIssue(str(path), None, "", f"cannot read the file: {exc.strerror or exc}"))
            continue
        if b"\0" in data:
            issues.append(
                ScenarioIssue(str(path), None, "", "a binary file, not a log. Hint: give the text of the log excerpt")
            )
            continue
        reader.read_file(str(path), data.decode("utf-8", errors="replace").split("\n"))
    if issues:
        raise ScenarioError(issues)
    return reader.paste()


class _Reader:
    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._commands: list[FingerCommand] = []
        self._answers: list[DnsAnswer] = []
        self._printed: list[PrintedCert] = []
        self._lines = 0
        self._joined = 0
        self._others = 0
        self._skipped: list[Origin] = []

    def paste(self) -> Paste:
        return Paste(
            tuple(self._entries),
            tuple(self._commands),
            tuple(self._answers),
            tuple(self._printed),
            self._lines,
            self._joined,
            self._others,
            tuple(self._skipped),
        )

    def read_file(self, file: str, lines: list[str]) -> None:
        if lines and lines[-1] == "":
            lines = lines[:-1]
        self._lines += len(lines)
        items: list[_Group | _Cert] = []
        group: _Group | None = None  # the logical line that a continuation would extend
        cert: _Cert | None = None  # the certificate of a -C chain print being read
        in_pem = False
        for number, physical in enumerate(lines, start=1):
            origin = Origin(file, number)
            raw = physical.rstrip("\r")
            body = _unquoted(raw)
            if in_pem or body.strip() == _PEM_BEGIN:
                in_pem = body.strip() != _PEM_END
                if cert is not None:
                    cert.pem.append(body.strip())
                    cert.pem_done = not in_pem
                continue
            kind = _kind(body)
            if kind == "continuation" and group is not None:
                group.parts.append(raw)
                self._joined += 1
                continue
            group = None
            if kind in ("log", "finger", "other"):
                group = _Group(kind, origin, [body])
                items.append(group)
                cert = None
            elif kind == "cert-subject":
                cert = self._chain_line(origin, body, None)
                items.extend([cert] if cert else [])
            elif kind == "cert-detail":
                cert = self._chain_line(origin, body, cert)
            elif kind == "command":
                self._command(origin, body)
            elif kind == "dns":
                self._dns(origin, body)
            elif kind == "continuation":
                self._skipped.append(origin)
        widths = _hard_widths(item for item in items if isinstance(item, _Group))
        for item in items:
            if isinstance(item, _Group):
                self._group(item, widths)
            else:
                self._printed.append(_printed(item, len(self._entries)))

    def _group(self, group: _Group, widths: set[int]) -> None:
        text = _join(group.parts, widths)
        if group.kind == "other":
            self._others += 1
            return
        try:
            if group.kind == "finger":
                match = _FINGER_LINE.fullmatch(text)
                event: LogEvent | None = parse_message(match["text"] if match else text, service=FINGER, raw=text)
            else:
                event = parse_line(text)
        except ValueError:  # a number too odd for float() in a line of a known form
            event = None
        if event is None:
            self._skipped.append(group.origin)
        else:
            self._entries.append(Entry(group.origin, event, group.kind == "finger"))

    def _chain_line(self, origin: Origin, body: str, last: _Cert | None) -> _Cert | None:
        if m := _CHAIN_SUBJECT.fullmatch(body):
            return _Cert(origin, int(m["index"]), m["dn"])
        if last is None:
            self._skipped.append(origin)
            return None
        if m := _CHAIN_ISSUER.fullmatch(body):
            last.issuer = m["dn"]
        elif m := _CHAIN_DIGEST.fullmatch(body):
            last.digests[m["kind"]] = m["digest"].upper()
        return last

    def _command(self, origin: Origin, body: str) -> None:
        match = _FINGER_COMMAND.fullmatch(body)
        try:
            words = shlex.split(match["args"]) if match else []
        except ValueError:
            words = match["args"].split() if match else []
        options: list[tuple[str, str]] = []
        operands: list[str] = []
        index = 0
        while index < len(words):
            word = words[index]
            index += 1
            if operands or not word.startswith("-") or word == "-":
                operands.append(word)
                continue
            letters = word[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                if letter in _ARGUMENT_OPTIONS:
                    value = letters or (words[index] if index < len(words) else "")
                    index += 0 if letters else 1
                    options.append((letter, value))
                    letters = ""
                else:
                    options.append((letter, ""))
        level = next((value for letter, value in reversed(options) if letter == "l"), None)
        destination = operands[0] if operands else None
        self._commands.append(FingerCommand(origin, destination, level, tuple(operands[1:]), tuple(options)))

    def _dns(self, origin: Origin, body: str) -> None:
        text = body.strip()
        for pattern in (_DIG, _HOST_MX, _HOST_ADDRESS, _NSLOOKUP_MX):
            if m := pattern.fullmatch(text):
                groups = m.groupdict()
                rtype = groups.get("type") or ("MX" if " " in m["value"] else "AAAA" if groups.get("six") else "A")
                value = " ".join(part.rstrip(".") for part in m["value"].split())
                self._answers.append(DnsAnswer(origin, m["owner"].rstrip(".").lower(), rtype, value))
                return


def _unquoted(raw: str) -> str:
    """``raw`` without e-mail quoting (``> > ``) and indentation, when what remains is a line of a known form."""
    stripped = _QUOTE.sub("", raw.lstrip(), count=1) if raw.lstrip().startswith(">") else raw.lstrip()
    if stripped != raw and (has_syslog_prefix(stripped) or _FINGER_LINE.match(stripped)):
        return stripped
    return raw


def _kind(body: str) -> str:
    """What a physical line is: log, finger, other (another program's syslog line), command, dns, cert-subject,
    cert-detail, ignore (blank, journald marker, chain heading, PEM, another tool's command line) or continuation
    (none of these)."""
    text = body.strip()
    if not text or _JOURNAL_MARKER.fullmatch(text) or _CHAIN_HEADING.fullmatch(text) or text.startswith("-----"):
        return "ignore"
    if has_syslog_prefix(body):
        return "log" if has_syslog_prefix(body, postfix=True) else "other"
    if _FINGER_LINE.match(body):
        return "finger"
    if _CHAIN_SUBJECT.fullmatch(body):
        return "cert-subject"
    if _CHAIN_ISSUER.fullmatch(body) or _CHAIN_DIGEST.fullmatch(body):
        return "cert-detail"
    if _FINGER_COMMAND.fullmatch(body):
        return "command"
    if _PROMPT.fullmatch(text):
        return "ignore"
    if any(p.fullmatch(text) for p in (_DIG, _HOST_MX, _HOST_ADDRESS, _NSLOOKUP_MX)):
        return "dns"
    return "continuation"


def _hard_widths(groups: Iterable[_Group]) -> set[int]:
    """The column at which this file's wrapped lines were cut hard, if they were: a terminal or a fixed-width
    paste cuts every long line at the same column (a single cut counts when it is at 80), a word wrap leaves
    ragged lengths."""
    cuts = Counter(len(part) for group in groups for part in group.parts[:-1])
    if len(cuts) == 1:
        (width, count), *_ = cuts.items()
        return {width} if count >= 2 or width == _TERMINAL_WIDTH else set()
    return set()


def _join(parts: list[str], hard_widths: set[int]) -> str:
    text = parts[0]
    for before, part in pairwise(parts):
        cut_at_blank = part[:1].isspace() or before[-1:].isspace()
        if not cut_at_blank and len(before) in hard_widths:
            text += part
        else:
            text = text.rstrip() + " " + part.strip()
    return text


def _printed(cert: _Cert, after: int) -> PrintedCert:
    pem = "\n".join(cert.pem) + "\n" if cert.pem_done else None
    digests = cert.digests
    return PrintedCert(
        cert.origin, cert.index, cert.subject, cert.issuer, digests.get("cert"), digests.get("pkey"), pem, after
    )
