"""Switch off what a production configuration points at that the pod does not have, and say so.

A user's configuration (:mod:`harness.postfix_config`) runs in the pod unchanged except for the rules below, each
of which adds a line to the case's list of changes ("content_filter=smtp-amavis:[127.0.0.1]:10024 removed:
nothing listens there"). What the scenario provides is kept: a content filter next hop served by a scenario server
stays, so a case can show what a TLS change does to that hop.

The rules (parameters from postconf(5), master(5)):

* Debian's ``myorigin = /etc/mailname`` gets that file, holding ``$myhostname``, when the folder lacks it;
* ``maillog_file`` is /dev/stdout (the harness reads Postfix's log from the container);
* ``smtp_tls_loglevel`` is at least 1 (the ``… TLS connection established`` line carries the TLS level);
* ``smtp_tls_session_cache_database`` is off (a resumed session is logged without its verification);
* ``inet_interfaces`` is loopback-only (the fake servers own port 25 of the world's addresses);
  ``smtp_bind_address``/``6`` are removed;
* milters (``smtpd_milters``, ``non_smtpd_milters``) are removed: no milter runs in the pod;
* ``content_filter`` is removed unless a scenario server listens at its next hop;
* SASL in smtpd (``smtpd_sasl_auth_enable``) is off: no Dovecot/Cyrus back end;
* smtpd certificate files the folder does not hold are replaced by the image's snakeoil pair;
* ``local_transport``, ``virtual_transport``, ``mailbox_transport``, ``fallback_transport`` that go to a socket or
  next hop the pod lacks become ``error:`` transports, ``mailbox_command`` is removed;
* master.cf: every service runs with ``chroot = n`` (the pod builds no chroot jail), an ``inet`` service bound
  to an address other than loopback is removed, and a ``postlog`` service is added where a pre-3.4 master.cf
  lacks it (``maillog_file`` needs postlogd).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from harness.postfix_config import PostfixConfig, expand, master_cf_overrides, master_entries

__all__ = ["SNAKEOIL_CERT", "SNAKEOIL_KEY", "Neutralised", "neutralise"]

SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"

Endpoint = tuple[str, int]

_LOOPBACK_INTERFACES = {"loopback-only", "localhost", "127.0.0.1", "::1", "[::1]"}
_SMTPD_CERT_PARAMS = ("smtpd_tls_cert_file", "smtpd_tls_eccert_file", "smtpd_tls_dcert_file")
_SMTPD_KEY_PARAMS = ("smtpd_tls_key_file", "smtpd_tls_eckey_file", "smtpd_tls_dkey_file")
_DELIVERY_TRANSPORTS = ("local_transport", "virtual_transport", "mailbox_transport", "fallback_transport")
_SERVICES = {"25": 25, "smtp": 25, "submission": 587, "smtps": 465, "submissions": 465, "lmtp": 24}


@dataclass(frozen=True)
class Neutralised:
    """The configuration as the pod runs it.

    Attributes:
        main_cf: every main.cf parameter, the user's then the changed ones (file order kept).
        master_cf: master.cf with chroot off and unusable services removed ("" if the folder had none).
        changes: one sentence per change, in Postfix's terms.
        files: pod path → content of stand-in files the configuration needs (Debian's ``myorigin = /etc/mailname``).
    """

    main_cf: dict[str, str]
    master_cf: str
    changes: tuple[str, ...] = field(default=())
    files: dict[str, str] = field(default_factory=dict)


def neutralise(config: PostfixConfig, served: Collection[Endpoint]) -> Neutralised:
    """Apply the module's rules to ``config``.

    Args:
        config: the folder as read.
        served: ``(address, port)`` of every scenario server (IPv6 without brackets).

    Returns:
        The pod's main.cf parameters, master.cf and the list of changes.
    """
    params = dict(config.main_cf)
    changes: list[str] = []

    def setting(name: str, value: str, why: str) -> None:
        old = params.get(name)
        params[name] = value
        if old is None:
            changes.append(f"{name} = {value} set: {why}")
        elif value == "":
            changes.append(f"{name}={old} removed: {why}")
        else:
            changes.append(f"{name}={old} replaced by {value}: {why}")

    if params.get("maillog_file") != "/dev/stdout":
        setting("maillog_file", "/dev/stdout", "the harness reads Postfix's log from the container's output")
    level = params.get("smtp_tls_loglevel", "0").strip()
    if not level.isdigit() or int(level) < 1:
        setting(
            "smtp_tls_loglevel", "1", "the TLS level of an attempt is read from the `TLS connection established` line"
        )
    if params.get("smtp_tls_session_cache_database"):
        setting(
            "smtp_tls_session_cache_database",
            "",
            "a resumed TLS session is logged without its verification; every attempt must show its own",
        )
    interfaces = {i for i in re.split(r"[\s,]+", expand(params.get("inet_interfaces", "all"), params)) if i}
    if not interfaces <= _LOOPBACK_INTERFACES:
        setting(
            "inet_interfaces",
            "loopback-only",
            "the fake servers listen on the world's addresses in the pod's one network namespace; smtpd keeps to "
            "127.0.0.1 and ::1",
        )
    for name in ("smtp_bind_address", "smtp_bind_address6"):
        if params.get(name):
            setting(name, "", "the pod has no such address; a connection from it would fail")
    files: dict[str, str] = {}
    myorigin = expand(params.get("myorigin", ""), params)
    if myorigin.startswith("/") and myorigin not in config.files:
        # Debian's Postfix reads myorigin from a file when the value is a path (README.Debian); postmap and
        # cleanup stop with "fatal: /etc/mailname: cannot open file" without it.
        files[myorigin] = expand(params.get("myhostname", ""), params) + "\n"
        changes.append(f"myorigin={myorigin}: the file is not in the folder; it holds $myhostname in the pod")
    _off_in_pod(params, served, setting)
    master_cf, master_changes = _master_cf(config.master_cf)
    for service, name, value in master_cf_overrides(master_cf):
        if name == "content_filter" and value and not _filter_served(value, params, served):
            master_changes.append(
                f"master.cf {service}: -o content_filter={value} kept as written but nothing listens at its "
                "next hop; mail through this service is deferred. Hint: add a server for it to the scenario"
            )
    changes += master_changes
    if not any(params.get(n) for n in ("smtp_tls_CAfile", "smtp_tls_CApath")):
        changes.append(
            "smtp_tls_CAfile and smtp_tls_CApath are not set: Postfix trusts no CA, so no server certificate can be "
            "Trusted or Verified (as on the real server)"
        )
    for name in ("smtp_tls_CAfile", "smtp_tls_CApath"):
        if params.get(name):
            changes.append(
                f"{name}={params[name]} holds the scenario's trusted CAs (the real server's CAs are not copied: "
                "the fake world's certificates chain to the scenario's CAs)"
            )
    changes += [f"{path} is not in the configuration folder: an empty file stands in" for path in config.missing]
    changes += [f"{path} is outside {config.config_directory}: the image's file, if any" for path in config.outside]
    return Neutralised(params, master_cf, tuple(changes), files)


def _off_in_pod(params: dict[str, str], served: Collection[Endpoint], setting: Callable[[str, str, str], None]) -> None:
    """Milters, content filter, SASL, smtpd certificates, delivery transports."""
    for name in ("smtpd_milters", "non_smtpd_milters"):
        if params.get(name, "").strip():
            setting(name, "", "no milter runs in the pod")
    content_filter = params.get("content_filter", "").strip()
    if content_filter and not _filter_served(content_filter, params, served):
        setting(
            "content_filter",
            "",
            "nothing listens there. Hint: a scenario server at its next hop keeps it "
            "(servers: {127.0.0.1: {ports: [10024]}})",
        )
    if params.get("smtpd_sasl_auth_enable", "no").lower() == "yes":
        kind = params.get("smtpd_sasl_type", "cyrus")
        setting("smtpd_sasl_auth_enable", "no", f"the {kind} SASL back end is not in the pod")
    for cert, key in zip(_SMTPD_CERT_PARAMS, _SMTPD_KEY_PARAMS, strict=True):
        if params.get(cert):
            setting(cert, SNAKEOIL_CERT, "the server's certificate is not in the folder; the image's snakeoil one")
            setting(key, SNAKEOIL_KEY, "its key likewise")
    if params.get("smtpd_tls_chain_files"):
        setting(
            "smtpd_tls_chain_files", f"{SNAKEOIL_KEY}, {SNAKEOIL_CERT}", "the server's key and chain are not in the pod"
        )
    for name in _DELIVERY_TRANSPORTS:
        value = params.get(name, "")
        if value and _needs_missing_backend(value, params, served):
            setting(name, f"error:5.3.5 {value} is not part of the mxharness pod", "its socket or next hop is absent")
    if params.get("mailbox_command", "").strip():
        setting("mailbox_command", "", "the delivery program is not in the pod")


def _needs_missing_backend(value: str, params: dict[str, str], served: Collection[Endpoint]) -> bool:
    """A delivery transport going to a UNIX socket, or to an inet next hop no scenario server listens at."""
    transport, _, nexthop = expand(value, params).partition(":")
    if transport in ("local", "virtual", "error", "discard", "retry") or not nexthop:
        return False
    if nexthop.startswith("unix:") or transport in ("dovecot", "maildrop", "cyrus"):
        return True
    return not _served(nexthop.removeprefix("inet:"), served)


def _filter_served(value: str, params: dict[str, str], served: Collection[Endpoint]) -> bool:
    """Whether a ``transport:nexthop`` content filter's next hop is a scenario server."""
    _, _, nexthop = expand(value, params).partition(":")
    return _served(nexthop, served)


def _served(nexthop: str, served: Collection[Endpoint]) -> bool:
    """``[host]:port`` / ``host:port`` / ``host`` (port 25) against the served endpoints; ``localhost`` is
    loopback (/etc/hosts)."""
    m = re.fullmatch(r"\[(?P<bracketed>[^\]]+)\](?::(?P<port1>\w+))?|(?P<host>[^:\[\]]+)(?::(?P<port2>\w+))?", nexthop)
    if not m:
        return False
    host = (m["bracketed"] or m["host"] or "").lower()
    port_text = m["port1"] or m["port2"] or "25"
    port = _SERVICES.get(port_text, int(port_text) if port_text.isdigit() else -1)
    hosts = {"127.0.0.1", "::1"} if host == "localhost" else {host.removeprefix("ipv6:")}
    return any((h, port) in served for h in hosts)


def _master_cf(text: str) -> tuple[str, list[str]]:
    """master.cf with ``chroot = n`` everywhere and non-loopback inet services removed."""
    if not text:
        return "", []
    changes: list[str] = []
    out: list[str] = []
    chrooted: list[str] = []
    for entry in master_entries(text):
        fields = entry[0].split()
        if len(fields) < 8:
            out.extend(entry)
            continue
        service = f"{fields[0]}/{fields[1]}"
        if fields[1] == "inet" and not _loopback_listener(fields[0]):
            changes.append(f"master.cf {service} removed: {fields[0].rpartition(':')[0]} is not an address of the pod")
            continue
        if fields[4] == "y":  # "-" is n since Postfix 3.0
            fields[4] = "n"
            chrooted.append(service)
            entry = [" ".join(fields), *entry[1:]]
        out.extend(entry)
    if chrooted:
        changes.append(f"master.cf chroot y → n for {', '.join(chrooted)}: the pod builds no chroot jail")
    if not any(e[0].split()[:2] == ["postlog", "unix-dgram"] for e in master_entries(text)):
        out.append("postlog   unix-dgram n  -       n       -       1       postlogd")
        changes.append(
            "master.cf postlog/unix-dgram added: maillog_file needs postlogd (Postfix 3.4+; "
            "`postfix upgrade-configuration` adds it on a real upgrade)"
        )
    return "\n".join(out) + "\n", changes


def _loopback_listener(service: str) -> bool:
    """An inet service name: ``port`` (every interface), or ``address:port`` on loopback."""
    if ":" not in service:
        return True
    address = service.rpartition(":")[0].strip("[]")
    if address in ("localhost", "*"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
