"""The Postfix configuration of a case, rendered without Docker: main.cf, master.cf, maps, install script.

The master.cf input is the seed report's (tests/data/seed-master.cf, Ubuntu's with an amavis content filter).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.model import PostfixSpec
from harness.postfix import (
    HARNESS_MAIN_CF,
    POSTCONF_WARNINGS,
    READ_PATHS,
    TRUST_FILE,
    PostfixSettings,
    SmtpService,
    UnusedParameter,
    indexed_maps,
    install_script,
    merge_master_cf,
    preflight_script,
    read_paths,
    render_main_cf,
    settings_for,
    smtp_services,
    start_postfix,
    unused_parameters,
)

SEED_MASTER_CF = (Path(__file__).resolve().parents[1] / "data" / "seed-master.cf").read_text(encoding="utf-8")
VERSION = (3, 7, 11)


def spec(**fields: object) -> PostfixSpec:
    """A ``postfix`` section as the YAML would give it (aliases ``main.cf``, ``master.cf``)."""
    return PostfixSpec.model_validate(fields)


def parameters(main_cf: str) -> dict[str, str]:
    """main.cf text → parameter: value, checking that every line is a comment or ``name = value``."""
    out: dict[str, str] = {}
    for line in main_cf.splitlines():
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(" = ")
        assert sep and name and not name[0].isspace(), f"not a main.cf parameter line: {line!r}"
        assert name not in out, f"{name} set twice"
        out[name] = value
    return out


def entries(master_cf: str) -> dict[tuple[str, str], list[str]]:
    """master.cf text → (service, type): the entry's lines, in file order."""
    out: dict[tuple[str, str], list[str]] = {}
    current: list[str] = []
    for line in master_cf.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace():
            current.append(line)
            continue
        fields = line.split()
        key = (fields[0], fields[1])
        assert key not in out, f"{key} listed twice"
        current = out[key] = [line]
    return out


# --- settings_for -------------------------------------------------------------------------------------------


def test_settings_without_overrides_are_the_scenario_s() -> None:
    base = spec(release="3.7", hostname="mx.example.test", trust=["root"], **{"main.cf": {"a": "1"}})
    settings = settings_for(base, PostfixSpec())
    assert settings == PostfixSettings(
        release="3.7", hostname="mx.example.test", trust=("root",), main_cf={"a": "1"}, master_cf=(), maps={}
    )


def test_default_hostname_and_trust() -> None:
    settings = settings_for(PostfixSpec(), PostfixSpec())
    assert settings.hostname == "mail.example.test"
    assert settings.trust is None  # every root CA of the scenario
    assert settings.release is None


def test_a_case_main_cf_is_merged_key_by_key() -> None:
    base = spec(**{"main.cf": {"smtp_tls_security_level": "may", "smtp_tls_policy_maps": "hash:/etc/postfix/p"}})
    case = spec(**{"main.cf": {"smtp_tls_security_level": "secure", "smtp_tls_loglevel": 2}})
    assert settings_for(base, case).main_cf == {
        "smtp_tls_security_level": "secure",
        "smtp_tls_policy_maps": "hash:/etc/postfix/p",
        "smtp_tls_loglevel": "2",
    }


def test_case_maps_are_merged_path_by_path() -> None:
    base = spec(maps={"/etc/postfix/a": "base a\n", "/etc/postfix/b": "base b\n"})
    case = spec(maps={"/etc/postfix/b": "case b\n", "/etc/postfix/c": "case c\n"})
    assert settings_for(base, case).maps == {
        "/etc/postfix/a": "base a\n",
        "/etc/postfix/b": "case b\n",
        "/etc/postfix/c": "case c\n",
    }


def test_a_case_trust_replaces_the_scenario_trust() -> None:
    base = spec(trust=["root-a", "root-b"])
    assert settings_for(base, spec(trust=["root-c"])).trust == ("root-c",)
    assert settings_for(base, PostfixSpec()).trust == ("root-a", "root-b")


def test_an_empty_case_trust_trusts_nothing() -> None:
    assert settings_for(spec(trust=["root"]), spec(trust=[])).trust == ()


def test_master_cf_entries_of_scenario_and_case_are_both_kept_in_order() -> None:
    base = spec(**{"master.cf": "a unix - - n - - smtp\n"})
    case = spec(**{"master.cf": "b unix - - n - - smtp\n"})
    assert settings_for(base, case).master_cf == ("a unix - - n - - smtp\n", "b unix - - n - - smtp\n")
    assert settings_for(base, PostfixSpec()).master_cf == ("a unix - - n - - smtp\n",)


def test_a_case_release_and_hostname_override_the_scenario_s() -> None:
    settings = settings_for(spec(release="3.7", hostname="a.test"), spec(release="3.8", hostname="b.test"))
    assert (settings.release, settings.hostname) == ("3.8", "b.test")


# --- render_main_cf -----------------------------------------------------------------------------------------


def test_main_cf_holds_every_harness_default() -> None:
    params = parameters(render_main_cf(PostfixSettings(), version=VERSION))
    for name, value in HARNESS_MAIN_CF.items():
        assert params[name] == value
    assert params["myhostname"] == "mail.example.test"
    assert params["maillog_file"] == "/dev/stdout"
    assert params["smtp_tls_session_cache_database"] == ""
    assert params["inet_interfaces"] == "loopback-only"


def test_main_cf_does_not_set_a_security_level() -> None:
    assert "smtp_tls_security_level" not in parameters(render_main_cf(PostfixSettings(), version=VERSION))


def test_main_cf_myhostname_is_the_postfix_hostname() -> None:
    params = parameters(render_main_cf(PostfixSettings(hostname="relay.example.org"), version=VERSION))
    assert params["myhostname"] == "relay.example.org"


def test_a_scenario_parameter_replaces_a_harness_default() -> None:
    settings = PostfixSettings(main_cf={"smtp_tls_loglevel": "2", "inet_protocols": "ipv4"})
    text = render_main_cf(settings, version=VERSION)
    params = parameters(text)
    assert params["smtp_tls_loglevel"] == "2"
    assert params["inet_protocols"] == "ipv4"
    assert text.count("smtp_tls_loglevel") == 1


def test_scenario_parameters_are_written_after_the_defaults() -> None:
    params = list(parameters(render_main_cf(PostfixSettings(main_cf={"zz_custom": "x"}), version=VERSION)))
    assert params[-1] == "zz_custom"


def test_the_trust_file_is_the_cafile_when_the_scenario_names_no_ca_location() -> None:
    params = parameters(render_main_cf(PostfixSettings(), version=VERSION))
    assert params["smtp_tls_CAfile"] == TRUST_FILE == "/etc/postfix/mxharness-trust.pem"


@pytest.mark.parametrize("given", [{"smtp_tls_CAfile": "/etc/ssl/ca.pem"}, {"smtp_tls_CApath": "/etc/postfix/rootcas"}])
def test_no_trust_file_is_added_when_the_scenario_names_a_ca_location(given: dict[str, str]) -> None:
    params = parameters(render_main_cf(PostfixSettings(main_cf=given), version=VERSION))
    assert TRUST_FILE not in params.values()
    assert {k: v for k, v in params.items() if k.startswith("smtp_tls_CA")} == given


@pytest.mark.parametrize(
    ("version", "level"),
    [((3, 7, 11), "3.6"), ((3, 6), "3.6"), ((3, 10, 1), "3.6"), ((3, 5, 9), "2"), ((2, 11), "2")],
)
def test_compatibility_level_follows_the_postfix_version(version: tuple[int, ...], level: str) -> None:
    assert parameters(render_main_cf(PostfixSettings(), version=version))["compatibility_level"] == level


def test_the_scenario_may_set_compatibility_level() -> None:
    params = parameters(render_main_cf(PostfixSettings(main_cf={"compatibility_level": "2"}), version=VERSION))
    assert params["compatibility_level"] == "2"


def test_a_multi_line_value_becomes_continuation_lines() -> None:
    value = "check_client_access hash:/etc/postfix/a,\n  permit_mynetworks,\n  reject\n"
    text = render_main_cf(PostfixSettings(main_cf={"smtpd_client_restrictions": value}), version=VERSION)
    expected = (
        "smtpd_client_restrictions = check_client_access hash:/etc/postfix/a,\n    permit_mynetworks,\n    reject\n"
    )
    assert expected in text


def test_spaces_inside_a_value_are_kept() -> None:
    value = "inline:{ example.com = secure  match=.example.net }"
    text = render_main_cf(PostfixSettings(main_cf={"smtp_tls_policy_maps": value}), version=VERSION)
    assert f"smtp_tls_policy_maps = {value}\n" in text


def test_main_cf_ends_with_a_newline() -> None:
    assert render_main_cf(PostfixSettings(), version=VERSION).endswith("\n")


# --- merge_master_cf ----------------------------------------------------------------------------------------


def test_the_image_master_cf_alone_keeps_every_entry() -> None:
    merged = entries(merge_master_cf(SEED_MASTER_CF))
    assert len(merged) == 33
    assert list(merged)[:3] == [("smtp", "inet"), ("submission", "inet"), ("pickup", "unix")]
    assert ("127.0.0.1:10025", "inet") in merged


def test_continuation_lines_stay_with_their_entry() -> None:
    merged = entries(merge_master_cf(SEED_MASTER_CF))
    assert merged[("pickup", "unix")][1:] == [
        "   -o content_filter=",
        "   -o receive_override_options=no_header_body_checks",
    ]
    assert len(merged[("127.0.0.1:10025", "inet")]) == 1 + 18
    assert merged[("mailman", "unix")][1:] == [
        "  flags=FR user=list argv=/usr/lib/mailman/bin/postfix-to-mailman.py",
        "  ${nexthop} ${user}",
    ]


def test_commented_entries_and_lines_are_dropped() -> None:
    merged = merge_master_cf(SEED_MASTER_CF)
    assert "oqmgr" not in merged
    assert "smtp_helo_timeout" not in merged  # a commented-out continuation line of `relay`
    assert entries(merged)[("relay", "unix")] == ["relay unix - - n - - smtp"]


@pytest.mark.parametrize("service", [("smtp", "unix"), ("relay", "unix"), ("lmtp", "unix"), ("smtp-amavis", "unix")])
def test_smtp_and_lmtp_client_services_run_without_chroot(service: tuple[str, str]) -> None:
    first = entries(merge_master_cf(SEED_MASTER_CF))[service][0].split()
    assert first[4] == "n"
    assert first[7] in ("smtp", "lmtp")


@pytest.mark.parametrize(
    ("service", "chroot"),
    [
        (("smtp", "inet"), "-"),
        (("cleanup", "unix"), "-"),
        (("proxymap", "unix"), "n"),
        (("local", "unix"), "n"),
    ],
)
def test_other_services_keep_their_chroot(service: tuple[str, str], chroot: str) -> None:
    merged = entries(merge_master_cf(SEED_MASTER_CF))
    original = entries(SEED_MASTER_CF)
    assert merged[service] == original[service]
    assert merged[service][0].split()[4] == chroot


def test_a_smtp_entry_with_chroot_y_gets_chroot_n_and_keeps_its_options() -> None:
    merged = entries(merge_master_cf("out unix - - y - - smtp -o smtp_bind_address=127.0.0.1\n  -o a=b\n"))
    assert merged[("out", "unix")] == ["out unix - - n - - smtp -o smtp_bind_address=127.0.0.1", "  -o a=b"]


def test_an_entry_of_the_same_service_and_type_replaces_the_image_s_in_place() -> None:
    addition = "relay     unix  -       -       n       -       5       smtp\n  -o smtp_tls_security_level=secure\n"
    merged = entries(merge_master_cf(SEED_MASTER_CF, addition))
    assert merged[("relay", "unix")] == [
        "relay     unix  -       -       n       -       5       smtp",
        "  -o smtp_tls_security_level=secure",
    ]
    assert list(merged).index(("relay", "unix")) == list(entries(SEED_MASTER_CF)).index(("relay", "unix"))


def test_an_entry_of_the_same_service_but_another_type_is_added() -> None:
    image = entries(merge_master_cf(SEED_MASTER_CF))
    merged = entries(merge_master_cf(SEED_MASTER_CF, "relay inet n - n - - smtpd\n"))
    assert merged[("relay", "unix")] == image[("relay", "unix")]
    assert merged[("relay", "inet")] == ["relay inet n - n - - smtpd"]
    assert len(merged) == len(image) + 1


def test_a_new_entry_is_added_at_the_end() -> None:
    addition = "secure-out unix - - - - - smtp\n  -o smtp_tls_security_level=secure\n"
    merged = entries(merge_master_cf(SEED_MASTER_CF, addition))
    assert list(merged)[-1] == ("secure-out", "unix")
    assert merged[("secure-out", "unix")] == [
        "secure-out unix - - n - - smtp",  # chroot forced
        "  -o smtp_tls_security_level=secure",
    ]


def test_a_later_addition_replaces_an_earlier_one() -> None:
    merged = entries(merge_master_cf(SEED_MASTER_CF, "x unix - - n - - smtp\n", "x unix - - n - 2 smtp\n"))
    assert merged[("x", "unix")] == ["x unix - - n - 2 smtp"]


def test_merged_master_cf_starts_with_a_comment_and_ends_with_a_newline() -> None:
    merged = merge_master_cf(SEED_MASTER_CF)
    assert merged.startswith("# master.cf written by mxharness")
    assert merged.endswith("\n")


# --- indexed_maps -------------------------------------------------------------------------------------------

POLICY = "/etc/postfix/tls_policy"


def settings_with(main_cf: dict[str, str], *paths: str) -> PostfixSettings:
    return PostfixSettings(main_cf=main_cf, maps={p: "example.com secure\n" for p in paths})


@pytest.mark.parametrize("kind", ["hash", "lmdb", "cdb", "btree", "dbm", "sdbm"])
def test_an_indexed_map_named_in_main_cf_is_built(kind: str) -> None:
    settings = settings_with({"smtp_tls_policy_maps": f"{kind}:{POLICY}"}, POLICY)
    assert indexed_maps(settings, "") == [f"{kind}:{POLICY}"]


@pytest.mark.parametrize("kind", ["texthash", "inline", "regexp", "pcre"])
def test_maps_that_need_no_postmap_are_not_built(kind: str) -> None:
    settings = settings_with({"smtp_tls_policy_maps": f"{kind}:{POLICY}"}, POLICY)
    assert indexed_maps(settings, "") == []


def test_an_indexed_map_named_in_a_master_cf_option_is_built() -> None:
    master_cf = merge_master_cf(
        SEED_MASTER_CF, "out unix - - n - - smtp\n  -o smtp_tls_policy_maps=lmdb:/etc/postfix/x\n"
    )
    assert indexed_maps(settings_with({}, "/etc/postfix/x"), master_cf) == ["lmdb:/etc/postfix/x"]


@pytest.mark.parametrize("written", ["$config_directory", "${config_directory}", "$(config_directory)"])
def test_config_directory_is_expanded(written: str) -> None:
    settings = settings_with({"smtp_tls_policy_maps": f"hash:{written}/tls_policy"}, POLICY)
    assert indexed_maps(settings, "") == [f"hash:{POLICY}"]


def test_a_map_the_scenario_does_not_provide_is_ignored() -> None:
    settings = settings_with({"smtp_tls_policy_maps": "hash:/etc/postfix/elsewhere"}, POLICY)
    assert indexed_maps(settings, "") == []


def test_each_map_is_built_once_and_several_in_one_value_are_found() -> None:
    settings = settings_with(
        {
            "smtp_tls_policy_maps": "hash:/etc/postfix/a, btree:/etc/postfix/b",
            "transport_maps": "hash:/etc/postfix/a",
            "relay_domains": "proxy:cdb:/etc/postfix/c",
        },
        "/etc/postfix/a",
        "/etc/postfix/b",
        "/etc/postfix/c",
    )
    assert indexed_maps(settings, "") == ["hash:/etc/postfix/a", "btree:/etc/postfix/b", "cdb:/etc/postfix/c"]


def test_a_map_with_texthash_and_hash_uses_is_built_for_the_hash_use() -> None:
    settings = settings_with({"a_maps": f"texthash:{POLICY}", "b_maps": f"hash:{POLICY}"}, POLICY)
    assert indexed_maps(settings, "") == [f"hash:{POLICY}"]


# --- install_script -----------------------------------------------------------------------------------------


def test_install_script_builds_every_indexed_map_with_postmap() -> None:
    script = install_script(["hash:/etc/postfix/tls_policy", "lmdb:/etc/postfix/with space"])
    assert "postmap hash:/etc/postfix/tls_policy &" in script
    assert "postmap 'lmdb:/etc/postfix/with space' &" in script


def test_install_script_builds_the_maps_and_leaves_the_start_to_the_runner() -> None:
    script = install_script(["hash:/etc/postfix/tls_policy"])
    assert "postmap hash:/etc/postfix/tls_policy" in script
    assert "/run/mxharness/go" not in script  # Postfix starts only after its parameter check (start_postfix)
    assert "/run/mxharness/go" in start_postfix(0)


def test_unused_parameters_are_read_once_each_from_postconf_warnings() -> None:
    output = (
        "postconf: warning: /etc/postfix/main.cf: unused parameter: smtp_tls_securty_level=may\n"
        "postconf: warning: /etc/postfix/master.cf: unused parameter: smtp_fooo=1\n"
        "postconf: warning: /etc/postfix/main.cf: unused parameter: smtp_tls_securty_level=may\n"
    )
    assert unused_parameters(output) == [
        UnusedParameter("/etc/postfix/main.cf", "smtp_tls_securty_level", "may"),
        UnusedParameter("/etc/postfix/master.cf", "smtp_fooo", "1"),
    ]


def test_smtp_services_carry_their_master_cf_arguments() -> None:
    master = "smtp unix - - n - - smtp\nrelay2 unix - - n - - smtp\n  -o smtp_tls_security_level=encrypt\n"
    master += "local unix - n n - - local\n"
    assert smtp_services(master) == [
        SmtpService("smtp", "unix", "smtp", ()),
        SmtpService("relay2", "unix", "smtp", ("-o", "smtp_tls_security_level=encrypt")),
    ]
    script = preflight_script(smtp_services(master))
    assert '"$dir"/smtp -S -t unix -n relay2 -o smtp_tls_security_level=encrypt </dev/null' in script


def test_install_script_without_maps_runs_no_postmap() -> None:
    script = install_script([])
    assert "postmap" not in script
    assert script.startswith("set -e\n")


def test_install_script_installs_the_trust_store_where_postfix_looks() -> None:
    script = install_script([])
    assert read_paths(POSTCONF_WARNINGS) in script and '"$cafile"' in script and '"$capath"' in script
    assert "openssl rehash" in script
    assert "nameserver 127.0.0.53" in script


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["/etc/postfix/ca.pem", "", "/d", "/var/spool/postfix"], "/etc/postfix/ca.pem||/d|/var/spool/postfix"),
        (["", "", "/d", "/var/spool/postfix"], "||/d|/var/spool/postfix"),
        (["", "/etc/ssl/certs", "/d", "/q"], "|/etc/ssl/certs|/d|/q"),
    ],
)
def test_read_paths_keeps_empty_values_in_place(tmp_path: Path, values: list[str], expected: str) -> None:
    # A stand-in postconf on PATH that prints the values in the order asked, as Postfix's does.
    fake = tmp_path / "postconf"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{v}'" for v in values) + "\n")
    fake.chmod(0o755)
    script = f'set -e\n{READ_PATHS}\necho "$cafile|$capath|$dir|$q"'
    done = subprocess.run(
        ["sh", "-c", script], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == expected
