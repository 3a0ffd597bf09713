"""The Postfix configuration of one case: main.cf, master.cf, maps, trust store, and the script that installs them.

Pure functions: nothing here talks to Docker. :mod:`harness.runner` copies the files this module renders into the
Postfix container and runs :func:`install_script` there before Postfix starts.

Harness defaults (``HARNESS_MAIN_CF``) are Postfix's built-in defaults plus what the pod needs; every scenario
``main.cf`` key is set over them. They are documented in docs/scenario-format.md, "What the harness sets".
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from harness.model import PostfixSpec
from harness.postfix_config import PostfixConfig, expand, master_cf_overrides, master_entries
from harness.postfix_neutralise import neutralise

__all__ = [
    "HARNESS_MAIN_CF",
    "PATHS_LINE",
    "POSTCONF_WARNINGS",
    "READ_PATHS",
    "TRUST_DIR",
    "TRUST_FILE",
    "PostfixSettings",
    "SmtpService",
    "UnusedParameter",
    "indexed_maps",
    "install_script",
    "master_sockets",
    "merge_master_cf",
    "preflight_script",
    "read_paths",
    "read_paths_line",
    "render_main_cf",
    "reset_script",
    "settings_for",
    "smtp_services",
    "start_postfix",
    "unused_parameters",
]

#: Where the scenario's trusted CAs go when the configuration names neither smtp_tls_CAfile nor smtp_tls_CApath.
TRUST_FILE = "/etc/postfix/mxharness-trust.pem"
#: Staging folder of the trust store (one PEM per CA) that install_script copies to CAfile/CApath.
TRUST_DIR = "/run/mxharness/trust"
#: Where the install keeps the image's own files at the CAfile and CApath a case's trust store replaces; the reset
#: puts them back (a copy of the path under this folder: /run/mxharness/originals/etc/ssl/certs).
ORIGINALS = "/run/mxharness/originals"
DEFAULT_HOSTNAME = "mail.example.test"

HARNESS_MAIN_CF: dict[str, str] = {
    # Postfix's log is the container's log stream (Postfix 3.4+, postlogd).
    "maillog_file": "/dev/stdout",
    # Nothing of the world is local: no local delivery, no aliases, no listener beyond loopback.
    "mydestination": "",
    "alias_maps": "",
    "alias_database": "",
    "local_recipient_maps": "",
    "inet_interfaces": "loopback-only",
    "inet_protocols": "all",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "biff": "no",
    "append_dot_mydomain": "no",
    "readme_directory": "no",
    # The "… TLS connection established" line and the verification failures are level 1.
    "smtp_tls_loglevel": "1",
    # A resumed session logs "re-using session …" instead of the verification result (design.md).
    "smtp_tls_session_cache_database": "",
}


@dataclass(frozen=True)
class PostfixSettings:
    """The effective Postfix of one case: the scenario's ``postfix`` with the case's merged over it.

    Attributes:
        release: Postfix release (None = the project's default).
        hostname: ``myhostname``.
        trust: names of the CAs to trust (None = every root CA of the scenario).
        main_cf: scenario parameters, set over the harness defaults.
        master_cf: service entries, scenario's then case's (later entries replace earlier ones of the same
            service/type).
        maps: absolute path → content.
        user_master_cf: a configuration folder's master.cf (neutralised), used instead of the image's ("" = the
            image's).
        harness_defaults: whether main.cf starts from :data:`HARNESS_MAIN_CF` (not for a configuration folder:
            its main.cf is the start, with the pod's changes).
        changes: what the harness changed in a configuration folder, one sentence each.
        user_parameters: parameter names set by the configuration folder (Postfix's "unused parameter" for
            those is a warning, as on the real server, not an input error).
    """

    release: str | None = None
    hostname: str = DEFAULT_HOSTNAME
    trust: tuple[str, ...] | None = None
    main_cf: dict[str, str] = field(default_factory=dict)
    master_cf: tuple[str, ...] = ()
    maps: dict[str, str] = field(default_factory=dict)
    user_master_cf: str = ""
    harness_defaults: bool = True
    changes: tuple[str, ...] = ()
    user_parameters: frozenset[str] = frozenset()


def settings_for(
    base: PostfixSpec,
    override: PostfixSpec,
    *,
    config: PostfixConfig | None = None,
    served: Collection[tuple[str, int]] = (),
) -> PostfixSettings:
    """Merge a case's ``postfix`` over the scenario's: main.cf key by key, maps path by path, trust replaced
    (scenario-format.md, `cases[]`).

    Args:
        config: the case's configuration folder, read (``postfix.config_dir``): its main.cf, master.cf and maps
            are the base, neutralised for the pod (:func:`harness.postfix_neutralise.neutralise`), with the
            scenario's keys on top.
        served: ``(address, port)`` of every scenario server (a content filter next hop among them is kept).
    """
    trust = override.trust if override.trust is not None else base.trust
    scenario_main_cf = {**(base.main_cf or {}), **(override.main_cf or {})}
    scenario_maps = {**(base.maps or {}), **(override.maps or {})}
    hostname = override.hostname or base.hostname
    settings = PostfixSettings(
        release=override.release or base.release,
        hostname=hostname or DEFAULT_HOSTNAME,
        trust=tuple(trust) if trust is not None else None,
        main_cf=scenario_main_cf,
        master_cf=tuple(t for t in (base.master_cf, override.master_cf) if t),
        maps=scenario_maps,
    )
    if config is None:
        return settings
    pod = neutralise(config, served)
    main_cf = {**pod.main_cf, **scenario_main_cf}
    if hostname:
        main_cf["myhostname"] = hostname
    own_names = set(config.main_cf) | {name for _, name, _ in master_cf_overrides(config.master_cf)}
    return dataclasses.replace(
        settings,
        hostname=hostname or expand(config.main_cf.get("myhostname", ""), config.main_cf) or DEFAULT_HOSTNAME,
        main_cf=main_cf,
        maps={**config.files, **dict.fromkeys(config.missing, ""), **pod.files, **scenario_maps},
        user_master_cf=pod.master_cf,
        harness_defaults=False,
        changes=pod.changes,
        user_parameters=frozenset(own_names - set(scenario_main_cf)),
    )


def render_main_cf(settings: PostfixSettings, *, version: tuple[int, ...], trusts_any: bool = True) -> str:
    """The whole main.cf of a case.

    Args:
        settings: the case's effective Postfix.
        version: the Postfix version of the image, e.g. (3, 7, 11): ``compatibility_level`` follows it, so that
            Postfix logs no "using backwards-compatible default setting" lines.
        trusts_any: whether ``postfix.trust`` names any CA; without one the harness sets no ``smtp_tls_CAfile``.
    """
    if not settings.harness_defaults:  # a configuration folder: its own main.cf, changed for the pod
        lines = ["# main.cf written by mxharness: the configuration folder's, changed for the pod, then the scenario's"]
        lines += [f"{name} = {_one_line(value)}" for name, value in settings.main_cf.items()]
        return "\n".join(lines) + "\n"
    params = {"compatibility_level": "3.6" if version >= (3, 6) else "2", **HARNESS_MAIN_CF}
    params["myhostname"] = settings.hostname
    # With nothing to trust, no CAfile at all: Postfix then verifies no chain (Untrusted) but keeps TLS on, as a
    # real server without CA data does. An empty CAfile would make it disable TLS ("cannot load CA data").
    if trusts_any and not any(k in settings.main_cf for k in ("smtp_tls_CAfile", "smtp_tls_CApath")):
        params["smtp_tls_CAfile"] = TRUST_FILE
    params.update(settings.main_cf)
    lines = ["# main.cf written by mxharness: harness defaults, then the scenario's parameters"]
    lines += [f"{name} = {_one_line(value)}" for name, value in params.items()]
    return "\n".join(lines) + "\n"


def _one_line(value: str) -> str:
    # A multi-line YAML value becomes one logical main.cf line: its later lines are continuation lines (they start
    # with white space). Spaces inside a line are kept, as in `inline:{ a = b }` or a regexp.
    lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
    return "\n    ".join(lines)


def merge_master_cf(image_master_cf: str, *additions: str) -> str:
    """The image's master.cf with scenario entries added, or replacing the entry of the same service and type.

    Every service whose command is ``smtp`` or ``lmtp`` gets ``chroot = n``: a chrooted client reads a stale
    copy of resolv.conf in the queue directory, so it would not see the pod's DNS (design.md).
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for text in (image_master_cf, *additions):
        for entry in master_entries(text):
            fields = entry[0].split()
            key = (fields[0], fields[1] if len(fields) > 1 else "")
            merged[key] = entry
    out = ["# master.cf written by mxharness: the image's entries with the scenario's added or replaced"]
    for entry in merged.values():
        fields = entry[0].split()
        if len(fields) >= 8 and fields[7] in ("smtp", "lmtp") and fields[4] != "n":
            fields[4] = "n"
            entry = [" ".join(fields), *entry[1:]]
        out.extend(entry)
    return "\n".join(out) + "\n"


_INDEXED_MAP = re.compile(r"\b(hash|btree|lmdb|cdb|dbm|sdbm):(/[^\s,]+)")


def master_sockets(master_cf: str, services: Iterable[str]) -> list[str]:
    """The socket (or FIFO) paths, relative to queue_directory, of the named ``services`` that ``master_cf``
    runs over a UNIX-domain socket or FIFO: ``private/NAME``, or ``public/NAME`` where the entry's private column
    is ``n`` (master(5)). A service master.cf does not have (or runs as ``inet``) has none."""
    wanted = set(services)
    found = []
    for entry in master_entries(master_cf):
        fields = entry[0].split()
        if len(fields) >= 3 and fields[0] in wanted and fields[1] in ("unix", "unix-dgram", "fifo", "pass"):
            found.append(f"{'public' if fields[2] == 'n' else 'private'}/{fields[0]}")
    return found


def indexed_maps(settings: PostfixSettings, master_cf: str) -> list[str]:
    """The ``type:path`` maps that need ``postmap``: scenario maps the configuration uses as an indexed type.

    ``$config_directory`` (also written ``${…}`` or ``$(…)``) is expanded (it is /etc/postfix in the image);
    texthash, inline, regexp and pcre maps need nothing.
    """
    text = " ".join(settings.main_cf.values()) + " " + master_cf
    text = re.sub(r"\$(?:\{config_directory\}|\(config_directory\)|config_directory\b)", "/etc/postfix", text)
    found: list[str] = []
    for kind, path in _INDEXED_MAP.findall(text):
        if path in settings.maps and f"{kind}:{path}" not in found:
            found.append(f"{kind}:{path}")
    return found


def install_script(maps: list[str], *, check_names: bool = True) -> str:
    """The shell script run in the Postfix container after the files are copied and before Postfix starts.

    It points the resolver at the fake DNS, installs the staged trust store where the configuration looks
    (``postconf -xh smtp_tls_CAfile`` / ``smtp_tls_CApath``, the latter with OpenSSL hash links), builds the
    indexed maps with ``postmap``, prints the paths it read (:data:`PATHS_LINE`, for the next case's reset) and,
    with ``check_names``, Postfix's "unused parameter" warnings (see :func:`unused_parameters`). Postfix starts
    when :func:`start_postfix`'s line runs.

    The name check is the same ``postconf`` run that reads the paths: postconf warns about every unused
    parameter of main.cf and of master.cf's ``-o`` whenever it reads them, as ``postconf -n`` does (observed on
    3.5, 3.7 and 3.10). ``postmap`` runs side by side with the rest (each Postfix command costs about 10 ms, most
    of it reading main.cf); a failing ``postmap`` ends the script (``set -e``).
    """
    postmaps = "".join(f'postmap {shlex.quote(m)} & postmaps="$postmaps $!"\n' for m in maps)
    if maps:
        postmaps = "postmaps=\n" + postmaps
    wait = 'for p in $postmaps; do wait "$p"; done\n' if maps else ""
    names = f"""# Postfix's own check of parameter names (main.cf and master.cf -o): "unused parameter" warnings.
unused=$(grep 'unused parameter' {POSTCONF_WARNINGS} || true)
[ -z "$unused" ] || echo "$unused"
"""
    return f"""set -e
printf 'nameserver 127.0.0.53\\noptions timeout:2 attempts:2\\n' > /etc/resolv.conf
{postmaps}{read_paths(POSTCONF_WARNINGS)}
printf '{PATHS_LINE}%s\\t%s\\t%s\\t%s\\n' "$cafile" "$capath" "$dir" "$q"
# What the image has where the trust store goes (Debian's /etc/ssl/certs, with the snakeoil certificate smtpd
# uses) is kept once, for the reset to put back: the next case must find it as a fresh pod would.
for p in $cafile $capath; do
  p=${{p%/}}
  if [ -e "$p" ] && [ ! -e {ORIGINALS}"$p" ]; then mkdir -p {ORIGINALS}"${{p%/*}}" && cp -a "$p" {ORIGINALS}"$p"; fi
done
if [ -n "$cafile" ]; then
  mkdir -p "${{cafile%/*}}"
  cat {TRUST_DIR}/*.pem > "$cafile" 2>/dev/null || : > "$cafile"
fi
if [ -n "$capath" ]; then
  rm -rf "$capath"; mkdir -p "$capath"
  for f in {TRUST_DIR}/*.pem; do [ -e "$f" ] && cp "$f" "$capath"/; done
  openssl rehash "$capath" >/dev/null 2>&1 || c_rehash "$capath" >/dev/null
fi
{wait}{names if check_names else "unused="}
"""


#: Where :func:`install_script` keeps postconf's warnings (its stderr) about the case's configuration.
POSTCONF_WARNINGS = "/run/mxharness/postconf.warnings"


#: Start of the line in which :func:`install_script` prints the paths it read (tab-separated: smtp_tls_CAfile,
#: smtp_tls_CApath, daemon_directory, queue_directory); see :func:`read_paths_line`.
PATHS_LINE = "mxharness-paths\t"


def read_paths_line(output: str) -> tuple[str, str, str, str] | None:
    """The paths :func:`install_script` printed in ``output``, or None when it did not get that far."""
    for line in output.splitlines():
        if line.startswith(PATHS_LINE):
            fields = line[len(PATHS_LINE) :].split("\t")
            if len(fields) == 4:
                return fields[0], fields[1], fields[2], fields[3]
    return None


def read_paths(warnings: str = "/dev/null") -> str:
    """Shell: ``cafile``, ``capath``, ``dir`` and ``q`` (smtp_tls_CAfile, smtp_tls_CApath, daemon_directory,
    queue_directory) from one postconf run, its warnings written to the file ``warnings``.

    Each postconf run costs about 10 ms; a case's script needs the values twice (for the old configuration, then
    the new), and the reset usually has them from the last case (:func:`read_paths_line`). postconf prints the
    values in the order asked; queue_directory, never empty, is last because $(…) drops trailing newlines."""
    return f"""{{ read -r cafile; read -r capath; read -r dir; read -r q; }} <<MXHARNESS_PATHS
$(postconf -xh smtp_tls_CAfile smtp_tls_CApath daemon_directory queue_directory 2>{shlex.quote(warnings)})
MXHARNESS_PATHS"""


#: :func:`read_paths` with its warnings dropped.
READ_PATHS = read_paths()


def start_postfix(generation: int) -> str:
    """Shell: let Postfix start once the peer serves world ``generation`` (containers/postfix/start-postfix reads
    the line from its FIFO, polls the world's ready name in the fake DNS, then runs master(8) as
    ``postfix start-fg`` does). Needs ``dir`` (daemon_directory, see :data:`READ_PATHS`). The write waits until
    the start loop reads, which it does as soon as the previous master has exited (the reset waited for that)."""
    return f'echo "{int(generation)} $dir" > /run/mxharness/go'


#: Stop Postfix at once (``q`` is queue_directory, see :data:`READ_PATHS`): master(8) leads its own process group
#: (it calls setsid), so one SIGKILL to the group ends master and every daemon together, before master could start
#: another. An orderly ``postfix stop`` takes 100-200 ms more and leaves nothing the reset does not delete anyway
#: (queue, data directory, /etc/postfix); the loop in start-postfix reaps master and waits for the next start.
STOP_POSTFIX = r"""m=; { read -r m < "$q/pid/master.pid"; } 2>/dev/null
if [ -n "$m" ] && kill -KILL -"$m" 2>/dev/null; then
  while kill -0 "$m" 2>/dev/null; do sleep 0.002; done
fi
rm -f "$q/pid/master.pid"
"""


def reset_script(previous_maps: Iterable[str], paths: tuple[str, str, str, str] | None = None) -> str:
    """The script that returns a reused pod's Postfix container to the state of a fresh one between two cases.

    Postfix is stopped (:data:`STOP_POSTFIX`: master and every daemon, so qmgr forgets dead destinations, scache and
    tlsmgr their caches), every queue is emptied (a stopped Postfix's queue is just files; ``postsuper`` would log
    through the stopped postlogd), the data directory (caches, PRNG seed) is emptied, /etc/postfix is restored from
    the image's copy, and the previous case's map files and trust store outside /etc/postfix are removed.

    Args:
        previous_maps: the map paths the previous case wrote.
        paths: the previous configuration's smtp_tls_CAfile, smtp_tls_CApath, daemon_directory and
            queue_directory as its install printed them (:func:`read_paths_line`); None: ask postconf.
    """
    maps = " ".join(
        shlex.quote(p) + " " + " ".join(shlex.quote(p + ext) for ext in (".db", ".lmdb", ".cdb")) for p in previous_maps
    )
    if paths is None:
        read = READ_PATHS
    else:
        read = " ".join(f"{n}={shlex.quote(v)}" for n, v in zip(("cafile", "capath", "dir", "q"), paths, strict=True))
    return f"""{read}
{STOP_POSTFIX}
rm -rf "$q"/maildrop/* "$q"/incoming/* "$q"/active/* "$q"/deferred/* "$q"/defer/* "$q"/bounce/* "$q"/trace/* \\
  "$q"/flush/* "$q"/hold/* "$q"/corrupt/* "$q"/saved/* /var/lib/postfix/* $cafile $capath {maps} \\
  /run/mxharness/trust /run/mxharness/mail /etc/postfix
cp -a /etc/postfix.image /etc/postfix
for p in $cafile $capath; do
  p=${{p%/}}
  if [ -e {ORIGINALS}"$p" ]; then (cd {ORIGINALS} && cp -a --parents ".$p" /); fi
done
"""


_UNUSED = re.compile(r"postconf: warning: (?P<file>\S+?): unused parameter: (?P<name>[^=\s]+)=(?P<value>.*)$")


@dataclass(frozen=True)
class UnusedParameter:
    """A parameter Postfix does not know (``postconf: warning: …: unused parameter: name=value``)."""

    file: str
    name: str
    value: str


def unused_parameters(postconf_output: str) -> list[UnusedParameter]:
    """The "unused parameter" warnings in postconf's output (one per line)."""
    found = []
    for line in postconf_output.splitlines():
        if (m := _UNUSED.search(line.strip())) and (param := UnusedParameter(m["file"], m["name"], m["value"])):
            if param not in found:  # postconf repeats a warning once per pass over the file
                found.append(param)
    return found


@dataclass(frozen=True)
class SmtpService:
    """A master.cf service that runs the Postfix SMTP/LMTP client, with its ``-o`` arguments."""

    name: str
    type: str
    command: str
    args: tuple[str, ...]


def smtp_services(master_cf: str) -> list[SmtpService]:
    """Every service of ``master_cf`` whose command is ``smtp`` or ``lmtp``."""
    services = []
    for entry in master_entries(master_cf):
        fields = " ".join(entry).split()
        if len(fields) >= 8 and fields[7] in ("smtp", "lmtp"):
            services.append(SmtpService(fields[0], fields[1], fields[7], tuple(fields[8:])))
    return services


def preflight_script(services: list[SmtpService]) -> str:
    """Start each SMTP client service once in stand-alone mode (``-S``), as master(8) would with its master.cf
    arguments: the daemon reads and checks its parameters (a bad value is ``fatal:`` in the log) and then exits
    on end of input. The services start side by side (each waits for tlsmgr). Prints ``failed NAME/TYPE`` for
    each service that did not start, and leaves the shell variable ``failed`` non-empty then. Needs ``dir``
    (daemon_directory, see :data:`READ_PATHS`)."""
    lines = ["failed=$("]
    for svc in services:
        args = " ".join(shlex.quote(a) for a in svc.args)
        name = f"{shlex.quote(svc.name)}/{shlex.quote(svc.type)}"
        lines.append(
            f'  {{ "$dir"/{svc.command} -S -t {shlex.quote(svc.type)} -n {shlex.quote(svc.name)} {args} '
            f"</dev/null >/dev/null 2>&1 || echo failed {name}; }} &"
        )
    lines += ["  wait", ")", '[ -z "$failed" ] || echo "$failed"']
    return "\n".join(lines) + "\n"
