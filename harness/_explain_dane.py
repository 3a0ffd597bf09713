"""DANE: the ``dane`` and ``dane-only`` levels with ``smtp_dns_support_level = dnssec``, for one MX host.

Rules (Postfix 3.7 ``src/smtp/smtp_tls_policy.c`` ``dane_init``/``dane_incompat``, ``src/tls/tls_dane.c``;
observed on 3.5.25, 3.7.11 and 3.10.13 in ``scenarios/dane``):

* The effective level is decided per MX host. An MX answer without the AD bit: ``dane-only`` defers ``4.7.5 non
  DNSSEC destination`` (``relay=none``); ``dane`` follows ``smtp_tls_dane_insecure_mx_policy``, whose default is
  ``dane`` only when ``smtp_tls_security_level`` is ``dane`` on 3.5 to 3.6.16, 3.7.12, 3.8.7, 3.9.1, and ``dane``
  whatever the level from 3.6.17, 3.7.13, 3.8.8, 3.9.2 and 3.10.0 (HISTORY 20250210); ``may`` falls back to
  opportunistic TLS, ``dane`` keeps the host's TLSA records (``half-dane``: a match is logged ``Trusted``).
* A failed TLSA lookup (SERVFAIL) defers ``4.7.5 TLSA lookup error for HOST:PORT`` without connecting, on both
  levels. No TLSA record: ``dane`` is ``may``, ``dane-only`` defers ``4.7.5 no TLSA records found``. Only records
  Postfix cannot use (usages other than DANE-TA(2)/DANE-EE(3), selectors other than 0/1, matching types other than
  0/1/2): ``dane`` is ``encrypt`` (mandatory TLS, unauthenticated).
* DANE-EE(3): the server's certificate or key must be the record's; neither dates nor names count → ``Verified``.
  DANE-TA(2): the anchor must be in the chain the server sends (DNS carries only its digest), the chain from the
  leaf to it valid, and the certificate must name the TLSA base domain (the MX host) or the next-hop domain.
* No record matches: 3.6+ (OpenSSL's DANE) logs ``Untrusted`` and defers ``Server certificate not verified``.
  3.5 (Postfix's own DANE code): DANE-EE records alone → the chain is checked against ``smtp_tls_CAfile`` as well:
  a trusted chain is ``Trusted`` and ``not verified``, another ``Untrusted`` and ``Server certificate not trusted``;
  DANE-TA whose anchor is not sent → ``Untrusted``, ``Server certificate not trusted``. A DANE-TA anchor sent with
  a wrong name: ``Untrusted`` on 3.6.0 to 3.10.3, else ``Trusted``, and ``not verified``.

The scenario's TLSA data ``cert:NAME``/``ca:NAME`` is computed at run time; the model compares it by NAME (each
certificate and CA of ``pki`` has its own key). A literal digest, a TLSA or host address answer without the AD bit,
a CNAME'd host, other TLSA lookup faults and the parameters that change DANE lookups are not modelled (the
prediction says "not sure").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness._explain_inputs import CaseInputs, Setting
from harness._explain_route import MxHost, Route
from harness.model import CaSpec, CertSpec
from harness.postfix import SmtpService

__all__ = ["DANE_LEVELS", "DaneCheck", "DaneHost", "Tlsa", "check_dane", "dane_host", "insecure_mx_policy"]

DANE_LEVELS = ("dane", "dane-only")

#: Parameters that change DANE lookups or anchors: with any of them set the model is not sure.
_UNMODELLED = (
    "smtp_tls_force_insecure_host_tlsa_lookup",
    "smtp_tls_trust_anchor_file",
    "ignore_mx_lookup_error",
    "tls_dane_digests",
)


@dataclass(frozen=True)
class Tlsa:
    """One TLSA record as the scenario writes it (``3 1 1 cert:mx``)."""

    usage: int
    selector: int
    mtype: int
    data: str

    @classmethod
    def parse(cls, text: str) -> Tlsa:
        usage, selector, mtype, data = text.split()
        return cls(int(usage), int(selector), int(mtype), data)

    @property
    def usable(self) -> bool:
        """DANE-TA(2) or DANE-EE(3), selector 0/1, matching type 0/1/2 (RFC 7672 §3)."""
        return self.usage in (2, 3) and self.selector in (0, 1) and self.mtype in (0, 1, 2)

    @property
    def ref(self) -> tuple[str, str] | None:
        """``("cert", NAME)`` / ``("ca", NAME)`` for data computed from the scenario's PKI, else None."""
        kind, _, name = self.data.partition(":")
        return (kind, name) if kind in ("cert", "ca") and name else None

    def text(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data}"


@dataclass(frozen=True)
class DaneHost:
    """The DANE decision for one MX host.

    Attributes:
        level: ``dane`` (authenticate with the TLSA records), ``half-dane`` (the same, MX answer not validated),
            ``may``, ``encrypt``, or ``invalid`` (deferred ``4.7.5 reason`` without connecting).
        why: the decision in words.
        records: the usable TLSA records.
        reason: the deferral reason at ``invalid``.
        certain: False where the model cannot tell (``note`` says why).
    """

    level: str
    why: str
    records: tuple[Tlsa, ...] = ()
    reason: str = ""
    certain: bool = True
    note: str = ""


@dataclass(frozen=True)
class DaneCheck:
    """The certificate against the TLSA records: the TLS line's level, the deferral reason (empty: delivered),
    the steps in words, the reference names of a DANE-TA match, and whether the model is sure."""

    tls: str
    reason: str
    steps: tuple[str, ...]
    names: tuple[str, ...] = ()
    certain: bool = True
    note: str = ""


def insecure_mx_policy(inputs: CaseInputs, service: SmtpService | None, global_level: str) -> Setting:
    """``smtp_tls_dane_insecure_mx_policy``: as set, else the release's default (HISTORY 20250210)."""
    setting = inputs.param("smtp_tls_dane_insecure_mx_policy", service)
    if setting.value:
        return Setting(setting.name, setting.value.lower(), setting.origin)
    v = inputs.version
    fixed = v >= (3, 10) or any(v[:2] == fix[:2] and v >= fix for fix in ((3, 6, 17), (3, 7, 13), (3, 8, 8), (3, 9, 2)))
    if fixed:
        return Setting(setting.name, "dane", f"Postfix {inputs.release} default")
    value = "dane" if global_level == "dane" else "may"
    said = f'Postfix {inputs.release} default: "dane" only when smtp_tls_security_level is "dane", else "may"'
    return Setting(setting.name, value, said)


def dane_host(
    inputs: CaseInputs, level: str, global_level: str, service: SmtpService | None, rt: Route, host: MxHost
) -> DaneHost:
    """What ``dane``/``dane-only`` (``level``) becomes for ``host`` of next-hop ``rt`` (module docstring)."""
    name = host.name.lower().rstrip(".")
    notes = [f"{p} is set: not modelled" for p in _UNMODELLED if inputs.param(p, service).value not in ("", "no")]
    if host.note.startswith("CNAME"):
        notes.append("DANE with a CNAME for the MX host is not modelled")

    def out(effective: str, why: str, records: tuple[Tlsa, ...] = (), reason: str = "", note: str = "") -> DaneHost:
        every = [*notes, note] if note else notes
        return DaneHost(effective, why, records, reason, not every, "; ".join(every))

    def incompat(cant_auth: bool, text: str, detail: str = "", note: str = "") -> DaneHost:
        said = f"{text} ({detail})" if detail else text
        if level == "dane":
            fallback = "encrypt" if cant_auth else "may"
            return out(fallback, f'DANE: {said}: "dane" becomes "{fallback}" for {name}.', note=note)
        return out("invalid", f'DANE: {said}: "dane-only" defers without connecting.', reason=text, note=note)

    mx_secure = True
    if host.preference is not None:
        mx_node = inputs.dns.get(rt.nexthop.lower().rstrip("."))
        mx_secure = mx_node is not None and mx_node.dnssec
    imp = insecure_mx_policy(inputs, service, global_level)
    if not mx_secure and (level == "dane-only" or imp.value not in ("dane", "encrypt")):
        detail = f"the MX answer for {rt.nexthop} has no AD bit; {imp.describe()}"
        return incompat(False, "non DNSSEC destination", detail)
    owner = f"_{rt.port}._tcp.{name}"
    node = inputs.dns.get(owner)
    fault = (node.fault or {}) if node is not None else {}
    failed = fault.get("TLSA") or fault.get("*")
    if failed:
        note = "" if failed == "servfail" else f"a TLSA lookup {failed} is not modelled"
        if failed == "nxdomain":
            return incompat(False, "no TLSA records found", note=note)
        text = f"TLSA lookup error for {name}:{rt.port}"
        why = f"DANE: {owner} TLSA: {failed}: {text}; Postfix defers without connecting."
        return out("invalid", why, reason=text, note=note)
    address_node = inputs.dns.get(name)
    if address_node is None or not address_node.dnssec:
        notes.append(f"the address answer for {name} has no AD bit: DANE then is not modelled")
    if node is None or not node.TLSA:
        return incompat(False, "no TLSA records found")
    if not node.dnssec:
        notes.append(f"the TLSA answer for {owner} has no AD bit: not modelled")
    records = tuple(Tlsa.parse(v) for v in node.TLSA)
    usable = tuple(r for r in records if r.usable)
    listed = ", ".join(r.text() for r in records)
    if not usable:
        note = "" if level == "dane" else '"dane-only" with only unusable TLSA records is not modelled'
        return incompat(True, "TLSA records unusable", listed, note)
    if not mx_secure:
        if imp.value == "encrypt":
            return incompat(True, "Verification not possible, MX RRset is insecure", imp.describe())
        why = (
            f"DANE: the MX answer for {rt.nexthop} has no AD bit, but {imp.describe()}: the TLSA records of {name} "
            f'({listed}) apply; a match is logged "Trusted", not "Verified" (the MX name could be forged).'
        )
        return out("half-dane", why, usable)
    return out("dane", f"DANE: the TLSA records of {name} ({listed}) must authenticate the server.", usable)


def check_dane(
    dane: DaneHost,
    *,
    leaf: str,
    certs: Mapping[str, CertSpec],
    cas: Mapping[str, CaSpec],
    chain: str,
    pkix_trusted: bool,
    version: tuple[int, ...],
    names_match: bool | None,
    cert_names: tuple[str, ...],
) -> DaneCheck:
    """The certificate ``leaf`` (its chain sent in mode ``chain``) against the usable records of ``dane``.

    Args:
        pkix_trusted: whether the chain verifies against the trust store (3.5 checks it beside DANE-EE).
        names_match: whether the certificate names the TLSA base domain or the next-hop domain.
        cert_names: the certificate's host names (3.5's own matcher is trusted only with plain names).
    """
    half = dane.level == "half-dane"
    ok_tls = "Trusted" if half else "Verified"
    ee = [r for r in dane.records if r.usage == 3]
    ta = [r for r in dane.records if r.usage == 2]
    unknown = [r for r in dane.records if r.ref is None]
    for r in ee:
        if r.ref == ("cert", leaf):
            return DaneCheck(ok_tls, "", (f'DANE-EE record "{r.text()}" is the server\'s key: TLS "{ok_tls}".',))
    spec = certs[leaf]
    path: list[str] = []
    issuer = spec.issuer if not spec.self_signed else None
    while issuer is not None and issuer in cas and issuer not in path:
        path.append(issuer)
        issuer = cas[issuer].issuer
    sent = {n for n in path if chain == "with-root" or (chain == "full" and cas[n].issuer is not None)}
    for r in ta:
        if r.ref is None or r.ref[0] != "ca" or r.ref[1] not in sent:
            continue
        anchor = r.ref[1]
        below: list[CertSpec | CaSpec] = [spec, *(cas[n] for n in path[: path.index(anchor)])]
        notes = []
        if any(c.not_before is not None or c.not_after is not None for c in below):
            notes.append("validity dates under a DANE-TA anchor are not modelled")
        if half:
            notes.append("DANE-TA with an MX answer without the AD bit is not modelled")
        plain = bool(cert_names) and not any("*" in n for n in cert_names)
        if version < (3, 6) and not plain:
            notes.append("name matching of Postfix 3.5 and older (its own matcher) is not modelled")
        if names_match is None:
            notes.append("the names DANE-TA checks are not modelled here")
        step = f'DANE-TA record "{r.text()}": the server sends the anchor {anchor}'
        if names_match is False:
            tls = "Untrusted" if (3, 6) <= version[:2] and version < (3, 10, 4) else "Trusted"
            wrong = (f"{step}, but the certificate names neither the MX host nor the next-hop domain.",)
            return DaneCheck(tls, "Server certificate not verified", wrong, certain=not notes, note="; ".join(notes))
        right = (f'{step}, and the certificate names the MX host or the next-hop domain: TLS "{ok_tls}".',)
        return DaneCheck(ok_tls, "", right, certain=not notes, note="; ".join(notes))
    notes = []
    if unknown:
        notes.append("a TLSA record with literal data is not compared")
    if any(r.ref is not None and r.usage == 2 and r.ref[0] != "ca" for r in ta):
        notes.append("a DANE-TA record for a server certificate is not modelled")
    steps: list[str] = ["No TLSA record matches the server's certificate or a CA it sends."]
    absent = [r.ref[1] for r in ta if r.ref is not None and r.ref[0] == "ca" and r.ref[1] not in sent]
    if absent:
        steps.append(
            f"DANE-TA: the anchor {', '.join(absent)} is not among the certificates the server sends (chain: "
            f"{chain}); DNS carries only its digest, so the server must send it. smtp_tls_CAfile does not count."
        )
    if version >= (3, 6):
        steps.append('OpenSSL: num=65:no matching DANE TLSA records: "Untrusted", Server certificate not verified.')
        return DaneCheck(
            "Untrusted", "Server certificate not verified", tuple(steps), certain=not notes, note="; ".join(notes)
        )
    if ee and ta:
        notes.append("Postfix 3.5 with DANE-EE and DANE-TA records that all fail is not modelled")
    if ta and not ee:
        steps.append('Postfix 3.5: "untrusted issuer": "Untrusted", Server certificate not trusted.')
        return DaneCheck(
            "Untrusted", "Server certificate not trusted", tuple(steps), certain=not notes, note="; ".join(notes)
        )
    if pkix_trusted:
        steps.append('Postfix 3.5 checks the chain against smtp_tls_CAfile: trusted, so "Trusted", but not verified.')
        return DaneCheck(
            "Trusted", "Server certificate not verified", tuple(steps), certain=not notes, note="; ".join(notes)
        )
    steps.append('Postfix 3.5 checks the chain against smtp_tls_CAfile: it fails: "Untrusted", not trusted.')
    return DaneCheck(
        "Untrusted", "Server certificate not trusted", tuple(steps), certain=not notes, note="; ".join(notes)
    )
