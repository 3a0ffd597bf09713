"""A user's configuration folder (postfix.config_dir): reading it, and what the harness changes for the pod.

The seed reporter's folder (scenarios/seed/etc-postfix, copied unchanged from the report) is the main input; the
Docker side (that Postfix runs it and delivers as reported) is scenarios/seed/seed-configuration.yaml.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ScenarioError
from harness.model import PostfixSpec
from harness.postfix import render_main_cf, settings_for
from harness.postfix_config import ConfigFolderError, expand, load_postfix_config, parse_main_cf
from harness.postfix_neutralise import SNAKEOIL_CERT, neutralise
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed" / "etc-postfix"
AMAVIS = ("127.0.0.1", 10024)


def _folder(tmp_path: Path, main_cf: str, master_cf: str | None = None, **files: str) -> Path:
    (tmp_path / "main.cf").write_text(dedent(main_cf))
    if master_cf is not None:
        (tmp_path / "master.cf").write_text(dedent(master_cf))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_main_cf_syntax_continuations_comments_last_definition_wins() -> None:
    params = parse_main_cf("# c\na = 1\nb = x,\n    y  \n\n  # indented comment\na = 2 \n")
    assert params == {"b": "x, y", "a": "2"}
    with pytest.raises(ConfigFolderError, match="line 1: not `name = value`"):
        parse_main_cf("this is not a parameter\n")


def test_parameter_expansion_follows_postconf_5() -> None:
    params = {"a": "A", "empty": "", "nested": "$a/${a}/$(a)"}
    assert expand("$nested", params) == "A/A/A"
    assert expand("${a?set}|${empty?set}|${a:unset}|${empty:unset}", params) == "set|||unset"
    assert expand("${data_directory}/x $config_directory $unknown.", params) == "/var/lib/postfix/x /etc/postfix ."


def test_the_seed_folder_is_read_with_every_map_it_references() -> None:
    config = load_postfix_config(SEED)
    assert config.main_cf["smtp_tls_policy_maps"] == "hash:/etc/postfix/tls_policy"
    assert config.files["/etc/postfix/tls_policy"].splitlines()[-1] == "fastmail.fm     secure ciphers=high"
    assert {str(m) for m in config.maps} >= {"hash:/etc/postfix/tls_policy", "hash:/etc/aliases", "static:1001"}
    # Referenced but not posted with the report: empty stand-ins, so that trivial-rewrite does not stop.
    assert set(config.missing) == {"/etc/postfix/vmaps", "/etc/postfix/valias", "/etc/postfix/virtual_mailbox_domains"}
    assert config.outside == ("/etc/aliases",)  # the session caches under data_directory are state, not config


def test_the_seed_folder_neutralised_keeps_the_tls_policy_and_says_what_changed() -> None:
    pod = neutralise(load_postfix_config(SEED), served={AMAVIS})
    assert pod.main_cf["smtp_tls_policy_maps"] == "hash:/etc/postfix/tls_policy"
    assert pod.main_cf["smtp_tls_security_level"] == "may" and pod.main_cf["smtp_tls_loglevel"] == "2"
    assert pod.main_cf["content_filter"] == "smtp-amavis:[127.0.0.1]:10024"  # a scenario server plays amavis
    assert pod.main_cf["smtpd_milters"] == "" and pod.main_cf["smtpd_sasl_auth_enable"] == "no"
    assert pod.main_cf["smtpd_tls_cert_file"] == SNAKEOIL_CERT
    assert pod.main_cf["inet_interfaces"] == "loopback-only"
    assert pod.main_cf["virtual_transport"].startswith("error:5.3.5 ")
    assert pod.files == {"/etc/mailname": "mail.EXAMPLE.com\n"}
    text = "\n".join(pod.changes)
    assert "smtpd_milters=inet:localhost:8891 removed: no milter runs in the pod" in text
    assert "master.cf postlog/unix-dgram added" in text
    assert "smtp_tls_CApath=/etc/postfix/rootcas/ holds the scenario's trusted CAs" in text
    assert "content_filter" not in text  # kept, so not a change
    assert "postlog   unix-dgram" in pod.master_cf and "smtp-amavis" in pod.master_cf


def test_a_content_filter_nobody_plays_is_removed() -> None:
    pod = neutralise(load_postfix_config(SEED), served=set())
    assert pod.main_cf["content_filter"] == ""
    assert any(
        c.startswith("content_filter=smtp-amavis:[127.0.0.1]:10024 removed: nothing listens") for c in pod.changes
    )


def test_master_cf_chroot_and_listeners_on_foreign_addresses(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "myhostname = mx.example.net\n",
        """\
        smtp      inet  n       -       y       -       -       smtpd
        203.0.113.5:2525 inet n -       n       -       -       smtpd
        127.0.0.1:10025 inet n  -       n       -       -       smtpd
        postlog   unix-dgram n  -       n       -       1       postlogd
        """,
    )
    pod = neutralise(load_postfix_config(folder), served=set())
    assert "smtp inet n - n - - smtpd" in pod.master_cf
    assert "203.0.113.5" not in pod.master_cf and "127.0.0.1:10025" in pod.master_cf
    assert pod.master_cf.count("postlogd") == 1
    assert "master.cf 203.0.113.5:2525/inet removed: 203.0.113.5 is not an address of the pod" in pod.changes
    assert "master.cf chroot y → n for smtp/inet: the pod builds no chroot jail" in pod.changes


@pytest.mark.parametrize("value", ["mysql:/etc/postfix/mysql-virtual.cf", "proxy:ldap:/etc/postfix/ldap.cf"])
def test_a_map_type_the_pod_cannot_open_is_an_error_naming_the_map(tmp_path: Path, value: str) -> None:
    folder = _folder(tmp_path, f"virtual_mailbox_maps = {value}\n")
    with pytest.raises(ConfigFolderError, match=r"virtual_mailbox_maps = …(mysql|ldap):/etc/postfix/") as raised:
        load_postfix_config(folder)
    assert raised.value.key == "virtual_mailbox_maps"


def test_every_map_type_of_the_image_is_accepted_and_files_are_copied(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        """\
        transport_maps = lmdb:$config_directory/transport, cdb:/etc/postfix/t2
        smtp_tls_policy_maps = texthash:/etc/postfix/p1 regexp:/etc/postfix/p2 pcre:/etc/postfix/p3
            inline:{ example.com=secure } btree:/etc/postfix/p4
        header_checks = proxy:hash:/etc/postfix/h
        """,
        transport="t\n",
        p1="p1\n",
        p3="p3\n",
    )
    config = load_postfix_config(folder)
    assert config.files == {"/etc/postfix/transport": "t\n", "/etc/postfix/p1": "p1\n", "/etc/postfix/p3": "p3\n"}
    assert set(config.missing) == {"/etc/postfix/t2", "/etc/postfix/p2", "/etc/postfix/p4", "/etc/postfix/h"}
    assert "inline:{ example.com=secure }" in {str(m) for m in config.maps}


def test_settings_put_the_scenario_over_the_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "myhostname = mail.example.org\nsmtp_tls_security_level = may\nsmtp_tls_loglevel = 0\n")
    spec = PostfixSpec.model_validate({"main.cf": {"smtp_tls_security_level": "encrypt"}})
    settings = settings_for(spec, PostfixSpec(), config=load_postfix_config(folder), served=())
    text = render_main_cf(settings, version=(3, 7, 11))
    assert "smtp_tls_security_level = encrypt" in text and "smtp_tls_security_level = may" not in text
    assert "smtp_tls_loglevel = 1" in text and "compatibility_level" not in text  # the folder's own, unchanged
    assert settings.hostname == "mail.example.org"
    assert settings.user_parameters == {"myhostname", "smtp_tls_loglevel"}
    assert any("smtp_tls_CAfile and smtp_tls_CApath are not set" in c for c in settings.changes)


def test_a_scenario_naming_a_missing_folder_is_an_input_error_at_the_key(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: s\npostfix:\n  config_dir: no-such-folder\ncases:\n  - name: c\n    send: [{to: a@b.example}]\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(scenario)
    (issue,) = raised.value.issues
    assert (issue.line, issue.key) == (3, "postfix.config_dir")
    assert "no-such-folder is not a folder. Hint: copy the server's /etc/postfix there" in issue.message


def test_cli_postfix_config_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "relay_domains = sqlite:/etc/postfix/relay.cf\n")
    result = CliRunner().invoke(main, ["run", "--postfix-config", str(folder), str(ROOT / "scenarios/seed")])
    assert result.exit_code == 2
    assert "--postfix-config" in result.output and "relay_domains" in result.output and "sqlite" in result.output
