"""Text forms around certificates: OpenSSL-style DNs, validity dates, TLSA data and Postfix fingerprints.

Private module; the public names are re-exported by :mod:`harness.pki`.
"""

from __future__ import annotations

__all__ = [
    "When",
    "fingerprint",
    "format_dn",
    "parse_dn",
    "parse_when",
    "san_entry",
    "tlsa_data",
    "validity_window",
]

import difflib
import hashlib
import ipaddress
import re
from datetime import UTC, date, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, ObjectIdentifier

When = str | datetime | date
"""A validity bound as :func:`parse_when` takes it: ISO date/date-time, offset (``-30d``), or a datetime."""

# OpenSSL short names (what X509_NAME_oneline prints and `openssl req -subj` accepts) for the attributes a
# scenario may use.
_DN_ATTRIBUTES: dict[str, ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "DC": NameOID.DOMAIN_COMPONENT,
    "street": NameOID.STREET_ADDRESS,
    "postalCode": NameOID.POSTAL_CODE,
}
_DN_BY_FOLDED_KEY = {key.casefold(): key for key in _DN_ATTRIBUTES}
_DN_SHORT_NAME = {oid: key for key, oid in _DN_ATTRIBUTES.items()}
# Long names people write by habit, mapped to the short name to suggest.
_DN_ALIASES = {
    "commonname": "CN",
    "countryname": "C",
    "stateorprovincename": "ST",
    "s": "ST",
    "state": "ST",
    "localityname": "L",
    "organizationname": "O",
    "organizationalunitname": "OU",
    "e": "emailAddress",
    "email": "emailAddress",
    "domaincomponent": "DC",
    "streetaddress": "street",
}
# ub-common-name in RFC 5280 Appendix A; OpenSSL refuses longer CNs.
_CN_MAX_OCTETS = 64
# ASN.1 PrintableString alphabet (X.680 §41.4), the string type of C and serialNumber.
_PRINTABLE_STRING = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_OFFSET = re.compile(r"(?P<sign>[+-])(?P<amount>\d+)(?P<unit>[smhdw])")
_OFFSET_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_BACKDATE = timedelta(days=1)
_TLSA_SELECTORS = {0: "Cert", 1: "SPKI"}
_TLSA_MATCHING_TYPES = {0: "Full", 1: "SHA2-256", 2: "SHA2-512"}


def parse_dn(text: str) -> x509.Name:
    """Parse a subject DN in OpenSSL's one-line form, or a bare common name.

    ``/C=US/O=DigiCert Inc/CN=DigiCert Global Root CA`` gives those attributes in that order (the order of
    the DER encoding, so ``C`` first; ``rfc4514_string()`` shows them reversed). A backslash escapes the next
    character (``/O=A\\/B`` is the value ``A/B``), as in ``openssl req -subj``. Text not starting with ``/``
    is one common name: ``mx.example.com`` gives ``/CN=mx.example.com``. Multi-valued RDNs (``+``) are not
    supported; a ``+`` is part of the value.

    Args:
        text: the DN. Attribute names are matched case-insensitively against C, ST, L, O, OU, CN,
            emailAddress, serialNumber, DC, street, postalCode.

    Returns:
        The name, each attribute with the ASN.1 string type ``cryptography`` chooses for it (RFC 5280).

    Raises:
        ValueError: empty DN, unknown attribute (with a suggestion), an empty value, a ``C`` that is not two
            letters, a CN over 64 octets, or characters the attribute's string type cannot hold.
    """
    if not text.strip():
        raise ValueError("empty subject DN. Hint: write /C=US/O=Example/CN=mx.example.com or a bare host name.")
    if not text.startswith("/"):
        if "=" in text:
            raise ValueError(
                f"subject DN {text!r} has '=' but does not start with '/'. "
                "Hint: use the OpenSSL form /O=Example/CN=mx.example.com (not RFC 4514 'CN=…,O=…')."
            )
        return x509.Name([_attribute(text, "CN", text)])
    attributes = []
    for component in _split_escaped(text):
        key, sep, value = component.partition("=")
        if not sep:
            raise ValueError(f"subject DN {text!r}: component {component!r} has no '='. Hint: write KEY=value.")
        attributes.append(_attribute(text, key.strip(), value))
    return x509.Name(attributes)


def format_dn(name: x509.Name) -> str:
    """Render a name in OpenSSL's one-line form, as ``X509_NAME_oneline`` does and Postfix logs it.

    ``/C=US/O=DigiCert Inc/CN=…``: attributes in DER order, OpenSSL short names (dotted OIDs for attributes
    outside :func:`parse_dn`'s list), octets outside printable ASCII as ``\\xHH``. Like OpenSSL it does not
    escape ``/``, so a value containing ``/`` does not parse back to the same name.

    Args:
        name: a certificate's subject or issuer.

    Returns:
        The one-line text, e.g. for comparing with Postfix's ``depth=1 verify=1 subject=…`` lines.
    """
    parts = []
    for attribute in name:
        key = _DN_SHORT_NAME.get(attribute.oid, attribute.oid.dotted_string)
        raw = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("latin-1")
        value = "".join(c if " " <= c <= "~" else "".join(f"\\x{b:02X}" for b in c.encode()) for c in raw)
        parts.append(f"/{key}={value}")
    return "".join(parts)


def parse_when(text: str | datetime | date, *, now: datetime) -> datetime:
    """Resolve a validity bound to an aware UTC datetime.

    Args:
        text: an ISO 8601 date (``2026-01-31``, midnight UTC) or date-time (``2026-01-31T12:00:00``, naive
            means UTC; ``Z`` or an offset is honoured), an offset from ``now`` (``-30d``, ``+90d``, ``-2h``,
            ``+15m``, ``-1w``, ``+30s``: sign, integer, unit s/m/h/d/w), or a ``datetime``/``date`` (as YAML
            loads them).
        now: the reference for offsets; naive means UTC.

    Returns:
        The moment, timezone UTC.

    Raises:
        ValueError: text that is neither form.
    """
    if isinstance(text, datetime):
        return _as_utc(text)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=UTC)
    if not isinstance(text, str):  # e.g. a bare YAML number: say what is wrong rather than fail on .strip()
        raise ValueError(f"bad date {text!r}: expected text. Hint: write 2026-01-31 or an offset such as -30d.")
    value = text.strip()
    offset = _OFFSET.fullmatch(value)
    if offset:
        delta = timedelta(**{_OFFSET_UNITS[offset["unit"]]: int(offset["amount"])})
        return _as_utc(now) + (delta if offset["sign"] == "+" else -delta)
    try:
        return _as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(
            f"bad date {text!r}: not an ISO date/date-time nor an offset. "
            "Hint: write 2026-01-31, 2026-01-31T12:00:00Z, or an offset from now such as -30d, +90d, -2h."
        ) from None


def tlsa_data(cert: x509.Certificate, *, selector: int, matching_type: int) -> str:
    """The certificate association data of a TLSA record for ``cert`` (RFC 6698 §2.1.2-2.1.4).

    Args:
        cert: the certificate the record designates (the leaf for DANE-EE, a CA for DANE-TA).
        selector: 0 = the full certificate (DER), 1 = its SubjectPublicKeyInfo (DER).
        matching_type: 0 = the selected bytes, 1 = their SHA-256, 2 = their SHA-512.

    Returns:
        Lowercase hex, as in a zone file's ``3 1 1 <data>``.

    Raises:
        ValueError: a selector or matching type outside the values above.
    """
    if selector not in _TLSA_SELECTORS:
        raise ValueError(f"bad TLSA selector {selector!r}. Hint: 0 (full certificate) or 1 (public key).")
    if matching_type not in _TLSA_MATCHING_TYPES:
        raise ValueError(f"bad TLSA matching type {matching_type!r}. Hint: 0 (exact), 1 (SHA-256) or 2 (SHA-512).")
    selected = _selected_der(cert, public_key=selector == 1)
    if matching_type == 1:
        return hashlib.sha256(selected).hexdigest()
    if matching_type == 2:
        return hashlib.sha512(selected).hexdigest()
    return selected.hex()


def fingerprint(cert: x509.Certificate, *, digest: str = "sha256", public_key: bool = False) -> str:
    """A certificate or public-key fingerprint in Postfix's form: upper-case hex bytes joined by colons.

    Postfix digests the DER certificate (``fingerprint=``) or the DER SubjectPublicKeyInfo
    (``pkey_fingerprint=``) with ``smtp_tls_fingerprint_digest`` (default md5 up to 3.5, sha256 since 3.6);
    ``match=`` values at the ``fingerprint`` security level take the same form.

    Args:
        cert: the certificate.
        digest: a hash name hashlib knows (``md5``, ``sha1``, ``sha256``, ``sha512`` …), case-insensitive.
        public_key: True for the public-key fingerprint.

    Returns:
        E.g. ``D8:F5:7E:…``.

    Raises:
        ValueError: an unknown digest name.
    """
    try:
        hasher = hashlib.new(digest.lower())
    except ValueError:
        raise ValueError(
            f"unknown fingerprint digest {digest!r}. Hint: use sha256 (Postfix ≥ 3.6 default), sha1 or md5."
        ) from None
    hasher.update(_selected_der(cert, public_key=public_key))
    return ":".join(f"{b:02X}" for b in hasher.digest())


def validity_window(
    now: datetime, not_before: When | None, not_after: When | None, *, lifetime: timedelta
) -> tuple[datetime, datetime]:
    """Resolve a certificate's validity bounds (UTC, whole seconds as X.509 times hold them).

    Defaults: ``not_before`` one day before ``now`` (tolerates clock skew between host and pod),
    ``not_after`` ``lifetime`` after ``now``. A default that would leave an empty window is placed
    ``lifetime`` away from the given bound instead, so ``not_after="-1d"`` alone gives a certificate that
    expired yesterday.

    Raises:
        ValueError: a bound :func:`parse_when` rejects, or ``not_before`` not before ``not_after``.
    """
    start = parse_when(not_before, now=now) if not_before is not None else None
    end = parse_when(not_after, now=now) if not_after is not None else None
    if start is None:
        start = now - _BACKDATE if end is None or end > now - _BACKDATE else end - lifetime
    if end is None:
        end = now + lifetime if start < now + lifetime else start + lifetime
    if start >= end:
        raise ValueError(
            f"empty validity: not_before {start.isoformat()} is not before not_after {end.isoformat()}. "
            "Hint: swap them or move not_after later."
        )
    return start.replace(microsecond=0), end.replace(microsecond=0)


def san_entry(entry: str) -> x509.GeneralName:
    """One subjectAltName entry: an IP SAN if ``entry`` parses as an IPv4/IPv6 address, else a DNS SAN kept
    verbatim (wildcards, partial wildcards and trailing dots stay: scenarios test how Postfix matches them).

    Raises:
        ValueError: an empty entry, whitespace, or a non-ASCII name (certificates hold A-labels,
            RFC 5280 §7.2).
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        pass
    if not entry or any(c.isspace() for c in entry):
        raise ValueError(f"bad SAN entry {entry!r}: a DNS name or IP address is not empty and has no spaces.")
    if not entry.isascii():
        raise ValueError(
            f"bad SAN entry {entry!r}: certificates hold ASCII DNS names. Hint: use the A-label (xn--) form."
        )
    return x509.DNSName(entry)


def _selected_der(cert: x509.Certificate, *, public_key: bool) -> bytes:
    if public_key:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return cert.public_bytes(serialization.Encoding.DER)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _split_escaped(text: str) -> list[str]:
    """Split ``/a=b/c=d\\/e`` at unescaped slashes, dropping the leading one and resolving escapes."""
    components: list[str] = []
    current: list[str] = []
    chars = iter(text[1:])
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError(f"subject DN {text!r} ends with a lone backslash. Hint: write \\\\ for one.")
            current.append(escaped)
        elif char == "/":
            components.append("".join(current))
            current = []
        else:
            current.append(char)
    components.append("".join(current))
    if components[-1] == "":
        components.pop()  # a trailing slash, as `openssl req -subj` tolerates
    if any(c == "" for c in components):
        raise ValueError(f"subject DN {text!r} has an empty component ('//'). Hint: remove the extra '/'.")
    return components


def _attribute(dn: str, key: str, value: str) -> x509.NameAttribute[str]:
    canonical = _DN_BY_FOLDED_KEY.get(key.casefold())
    if canonical is None:
        suggestion = _DN_ALIASES.get(key.casefold()) or next(
            iter(difflib.get_close_matches(key, list(_DN_ATTRIBUTES), n=1, cutoff=0.5)), None
        )
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise ValueError(
            f"subject DN {dn!r}: unknown attribute {key!r}{hint}. Hint: known attributes are "
            f"{', '.join(_DN_ATTRIBUTES)}."
        )
    if value == "":
        raise ValueError(f"subject DN {dn!r}: empty value for {canonical}. Hint: give a value or drop it.")
    if canonical == "C" and not _COUNTRY.fullmatch(value):
        raise ValueError(f"subject DN {dn!r}: C must be 2 letters (ISO 3166 code), got {value!r}. Hint: e.g. C=US.")
    if canonical == "CN" and len(value.encode()) > _CN_MAX_OCTETS:
        raise ValueError(
            f"subject DN {dn!r}: CN is {len(value.encode())} octets, over the limit of {_CN_MAX_OCTETS} "
            "(RFC 5280 ub-common-name). Hint: put long host names in san: and keep CN short."
        )
    if canonical == "serialNumber" and not _PRINTABLE_STRING.fullmatch(value):
        raise ValueError(
            f"subject DN {dn!r}: serialNumber {value!r} has characters a PrintableString cannot hold. "
            "Hint: use letters, digits, space and '()+,-./:=?."
        )
    if canonical in ("emailAddress", "DC") and not value.isascii():
        raise ValueError(f"subject DN {dn!r}: {canonical} must be ASCII (IA5String). Hint: use the A-label form.")
    return x509.NameAttribute(_DN_ATTRIBUTES[canonical], value)
