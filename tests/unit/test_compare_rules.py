"""mxharness compare without Docker: what counts as worse or better, the two sides' configurations, which worlds and
messages a comparison runs, and the TLS model's reason of a change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness._compare_config import (
    folder_configuration,
    opportunistic_configuration,
    policy_configuration,
    policy_domains,
)
from harness._compare_plan import comparison_scenarios, on_side, select_destinations
from harness._compare_reason import Side, explanations, reason
from harness.compare import BETTER, ORDER, WORSE, classify
from harness.errors import ScenarioError
from harness.explain import explain
from harness.model import Expect, Message
from harness.postfix import render_main_cf, settings_for
from harness.postfix_config import config_for
from harness.results import CaseResult, Observed, RecipientResult
from harness.scenario import load_scenario, scenario_from_dict
from harness.worlds import library_worlds

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed" / "etc-postfix"


def observed(status: str, dsn: str, tls: str) -> Observed:
    return Observed(status, dsn, "reason", "mx[192.0.2.1]:25", "mx", "192.0.2.1", 25, tls, "ABC123")


SENT_VERIFIED = observed("sent", "2.0.0", "Verified")
SENT_TRUSTED = observed("sent", "2.0.0", "Trusted")
SENT_PLAIN = observed("sent", "2.0.0", "none")
DEFERRED = observed("deferred", "4.7.5", "Untrusted")
BOUNCED = observed("bounced", "5.7.0", "none")


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (SENT_VERIFIED, DEFERRED, "newly deferred"),
        (DEFERRED, SENT_VERIFIED, "newly verified"),  # the twin
        (SENT_TRUSTED, BOUNCED, "newly bounced"),
        (BOUNCED, SENT_TRUSTED, "newly delivered"),
        (DEFERRED, BOUNCED, "newly bounced"),
        (BOUNCED, DEFERRED, "changed"),
        (SENT_VERIFIED, SENT_TRUSTED, "lost verification"),
        (SENT_TRUSTED, SENT_VERIFIED, "newly verified"),
        (SENT_TRUSTED, SENT_PLAIN, "weaker TLS"),
        (SENT_PLAIN, SENT_TRUSTED, "stronger TLS"),
        (DEFERRED, observed("deferred", "4.7.4", "none"), "changed"),
        (SENT_VERIFIED, SENT_VERIFIED, "unchanged"),
        (None, SENT_VERIFIED, "no result"),
    ],
)
def test_each_pair_of_outcomes_is_one_kind_of_change(before: Observed | None, after: Observed, kind: str) -> None:
    assert classify(before, after) == kind
    assert kind in ORDER
    assert (kind in WORSE) != (kind in BETTER) or kind in ("changed", "unchanged")


def test_the_relay_alone_is_no_change() -> None:  # equal MX preferences are tried in random order
    other = observed("sent", "2.0.0", "Verified")
    assert classify(SENT_VERIFIED, Observed(**{**other.__dict__, "relay": "mx2[192.0.2.2]:25"})) == "unchanged"


def test_the_seed_folder_names_its_policy_table_domains() -> None:
    seed = folder_configuration(SEED)
    assert seed.postfix.config_dir == str(SEED) and seed.label == str(SEED)
    assert policy_domains(seed) == ("facebook.com", "hearst.com", "fastmail.fm")


def test_a_folder_that_cannot_be_read_is_an_input_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=re.escape(f"{tmp_path}: --after: --after: {tmp_path} has no main.cf")):
        folder_configuration(tmp_path, option="--after")
    (tmp_path / "main.cf").write_text("smtp_tls_policy_maps = mysql:/etc/postfix/tls.cf\n")
    with pytest.raises(ScenarioError) as exc:
        folder_configuration(tmp_path)
    assert str(exc.value.issues[0]).startswith(f"{tmp_path}/main.cf: smtp_tls_policy_maps: --before: ")


def test_a_policy_table_alone_is_compared_with_opportunistic_tls(tmp_path: Path) -> None:
    table = tmp_path / "tls_policy"
    table.write_text("gmail.com secure match=.l.google.com\n.example.com verify\n")
    after = policy_configuration(table)
    before = opportunistic_configuration()
    assert before.postfix.main_cf == {"smtp_tls_security_level": "may"}
    assert after.postfix.main_cf == {
        "smtp_tls_security_level": "may",
        "smtp_tls_policy_maps": "hash:/etc/postfix/tls_policy",
    }
    assert after.postfix.maps == {"/etc/postfix/tls_policy": table.read_text()}
    assert policy_domains(before) == () and policy_domains(after) == ("gmail.com", ".example.com")


def test_a_policy_table_with_a_folder_replaces_the_folders_own_table(tmp_path: Path) -> None:
    table = tmp_path / "tls_policy"
    table.write_text("fastmail.fm secure match=.messagingengine.com\n")
    after = policy_configuration(table, base=folder_configuration(SEED))
    assert after.postfix.config_dir == str(SEED) and after.postfix.main_cf is None
    assert after.postfix.maps == {"/etc/postfix/tls_policy": table.read_text()}
    assert policy_domains(after) == ("fastmail.fm",)
    two = tmp_path / "etc-postfix"
    two.mkdir()
    (two / "main.cf").write_text("smtp_tls_policy_maps = hash:/etc/postfix/a, hash:/etc/postfix/b\n")
    with pytest.raises(ScenarioError, match="are hash:/etc/postfix/a, hash:/etc/postfix/b: --policy replaces one file"):
        policy_configuration(table, base=folder_configuration(two))


def test_a_policy_line_that_is_not_destination_and_level_is_an_error_at_its_line(tmp_path: Path) -> None:
    table = tmp_path / "tls_policy"
    table.write_text("# comment\nexample.com secure\nfastmail.fm\n  continued line\n")
    with pytest.raises(ScenarioError) as exc:
        policy_configuration(table)
    assert [str(i) for i in exc.value.issues] == [
        f"{table}:3: --policy: 'fastmail.fm' is not `destination level [attribute=value …]`. Hint: e.g. "
        "`example.com secure`"
    ]


def test_the_library_destinations_a_policy_table_names_are_chosen_and_the_others_noted(tmp_path: Path) -> None:
    worlds = library_worlds()
    chosen, notes = select_destinations([folder_configuration(SEED)], worlds)
    assert chosen == {"facebook.com", "hearst.com", "fastmail.fm"} and notes == []
    table = tmp_path / "tls_policy"
    table.write_text(".com secure\nexample.org secure\n[relay.example.net]:587 encrypt\n")
    chosen, notes = select_destinations([policy_configuration(table)], worlds)
    assert chosen == {d for d in _library_domains() if d.endswith(".com")}  # a parent entry covers the domains below
    assert notes == [
        "named by a policy table but described by no world of the library: example.org, [relay.example.net]:587 "
        "(give a world that describes them as WORLD)"
    ]
    chosen, notes = select_destinations([opportunistic_configuration()], worlds)
    assert chosen == _library_domains() and "every destination of the library is compared" in notes[-1]


def _library_domains() -> set[str]:
    return {domain for w in library_worlds() for domain in w.destinations}


def test_library_worlds_become_one_scenario_with_one_message_per_destination() -> None:
    scenarios, slots = comparison_scenarios(library_worlds(), domains={"fastmail.fm", "gmail.com"})
    assert [s.name for s in scenarios] == ["library"]
    library = scenarios[0]
    assert [m.to for m in library.cases[0].send] == ["postmaster@fastmail.fm", "postmaster@gmail.com"]
    assert {"in1-smtp.messagingengine.com", "gmail-smtp-in.l.google.com"} <= set(library.servers)
    assert "smtpin.vvv.facebook.com" not in library.servers  # only the worlds of the chosen destinations
    assert [(s.world, s.domain, s.index) for s in slots] == [
        ("world-fastmail", "fastmail.fm", 0),
        ("world-google", "gmail.com", 1),
    ]
    assert library.postfix.main_cf is None and all(not m.expect.model_fields_set for m in library.cases[0].send)


def test_the_merged_worlds_take_a_name_no_scenario_of_the_comparison_has() -> None:
    other = scenario_from_dict({"name": "library", "dns": {"b.example": {"A": "auto"}}, "cases": _one("a@b.example")})
    scenarios, _ = comparison_scenarios([*library_worlds(), other], domains={"fastmail.fm", "gmail.com"})
    assert [s.name for s in scenarios] == ["library-2", "library"]


def _one(to: str) -> list[dict[str, object]]:
    return [{"name": "c", "send": [{"to": to}]}]


def test_a_scenario_contributes_its_distinct_messages_without_expectations_or_settings() -> None:
    seed = load_scenario(ROOT / "scenarios" / "seed" / "seed-configuration.yaml")
    scenarios, slots = comparison_scenarios([seed])
    (stripped,) = scenarios
    assert [c.name for c in stripped.cases] == ["compare"]
    assert [(m.to, m.via) for m in stripped.cases[0].send] == [
        ("user@facebook.com", "sendmail"),
        ("user@hearst.com", "sendmail"),
        ("user@fastmail.fm", "sendmail"),
        ("user@facebook.com", "smtp"),
    ]
    assert all(m.expect == Expect() and m.expect_for("3.5.25") == Expect() for m in stripped.cases[0].send)
    assert stripped.postfix.config_dir is None and "127.0.0.1" in stripped.servers  # the amavis server is kept
    assert [s.via for s in slots] == ["sendmail", "sendmail", "sendmail", "smtp"]


def test_a_case_that_changes_the_world_is_compared_as_a_case_of_its_own() -> None:
    scenario = scenario_from_dict(
        {
            "name": "variants",
            "dns": {"example.com": {"MX": "10 mx.example.com"}, "mx.example.com": {"A": "auto"}},
            "servers": {"mx.example.com": {}},
            "cases": [
                {
                    "name": "may",
                    "postfix": {"main.cf": {"smtp_tls_security_level": "may"}},
                    "send": [{"to": "a@example.com"}],
                },
                {"name": "encrypt", "send": [{"to": "a@example.com", "expect": {"status": "deferred"}}]},
                {
                    "name": "refused",
                    "servers": {"mx.example.com": {"ports": [2525]}},
                    "send": [{"to": "b@example.com"}],
                },
            ],
        }
    )
    (stripped,), slots = comparison_scenarios([scenario])
    assert [(c.name, [m.to for m in c.send]) for c in stripped.cases] == [
        ("compare", ["a@example.com"]),
        ("refused", ["b@example.com"]),
    ]
    assert stripped.cases[1].servers == scenario.cases[2].servers and stripped.cases[1].postfix.main_cf is None
    assert [(s.case, s.recipient) for s in slots] == [("compare", "a@example.com"), ("refused", "b@example.com")]


def test_each_side_gets_its_configuration_and_a_name_that_says_which() -> None:
    (fastmail,), _ = comparison_scenarios(library_worlds(), domains={"fastmail.fm"})
    before = on_side(fastmail, folder_configuration(SEED), "before")
    assert before.name == "world-fastmail-before" and before.postfix.config_dir == str(SEED)
    long = fastmail.model_copy(update={"name": "x" * 63})
    assert on_side(long, opportunistic_configuration(), "after").name == "x" * 57 + "-after"


_WORLD = {
    "name": "reasons",
    "include": ["fastmail"],
    "postfix": {
        "main.cf": {"smtp_tls_security_level": "may", "smtp_tls_policy_maps": "texthash:/etc/postfix/tls_policy"},
        "maps": {"/etc/postfix/tls_policy": "fastmail.fm secure\n"},
    },
    "cases": [
        {"name": "before", "send": [{"to": "postmaster@fastmail.fm"}]},
        {
            "name": "after",
            "postfix": {"maps": {"/etc/postfix/tls_policy": "fastmail.fm secure match=.messagingengine.com\n"}},
            "send": [{"to": "postmaster@fastmail.fm"}],
        },
    ],
}


def test_a_change_is_explained_by_the_policy_difference_and_the_deciding_name() -> None:
    world = scenario_from_dict(_WORLD)
    before, after = (explain(world, case, "postmaster@fastmail.fm", fixes=False) for case in world.cases)
    better = reason(before, after, (DEFERRED, SENT_VERIFIED))
    assert better == (
        'policy table entry "fastmail.fm secure" → "fastmail.fm secure match=.messagingengine.com" '
        "(/etc/postfix/tls_policy line 1); match nexthop, dot-nexthop → .messagingengine.com; "
        "the certificate name *.messagingengine.com matches .messagingengine.com"
    )
    worse = reason(after, before, (SENT_VERIFIED, DEFERRED))  # the twin
    assert worse is not None and worse.endswith(
        "no name checked (fastmail.fm, .fastmail.fm) is among the certificate's (*.messagingengine.com, "
        "messagingengine.com, mail.messagingengine.com and 3 more)"
    )


def test_no_reason_is_made_up_where_the_model_disagrees_or_cannot_tell() -> None:
    world = scenario_from_dict(_WORLD)
    before, after = (explain(world, case, "postmaster@fastmail.fm", fixes=False) for case in world.cases)
    assert reason(before, after, (SENT_VERIFIED, SENT_VERIFIED)) == (
        "the TLS model disagrees with Postfix before (model: status deferred, dsn 4.7.5, tls Untrusted): "
        "see docs/explain.md"
    )
    faulty = scenario_from_dict(
        {**_WORLD, "dns": {"fastmail.fm": {"MX": "10 in1-smtp.messagingengine.com", "fault": "servfail"}}}
    )
    unsure = explain(faulty, faulty.cases[0], "postmaster@fastmail.fm", fixes=False)
    line = reason(unsure, after, (observed("deferred", "4.4.3", "none"), SENT_VERIFIED))
    assert line is not None and line.startswith("the TLS model cannot tell (before: not modelled: DNS fault")
    assert reason(None, after, (None, SENT_VERIFIED)) is None


def test_a_configuration_folder_is_shown_to_the_model_as_the_main_cf_that_ran() -> None:
    (library,), _ = comparison_scenarios(library_worlds(), domains={"fastmail.fm", "facebook.com"})
    scenario = on_side(library, folder_configuration(SEED), "before")
    case = scenario.cases[0]
    settings = settings_for(scenario.postfix, case.postfix, config=config_for(scenario, case))
    result = CaseResult(
        scenario.name,
        case.name,
        "<dict>",
        tuple(RecipientResult(scenario.name, case.name, m.to, Expect(), None, ()) for m in case.send),
        release="3.7.11",
        main_cf=render_main_cf(settings, version=(3, 7, 11)),
        maps=dict(settings.maps),
    )
    facebook, fastmail = explanations(Side(scenario, case, result))
    assert fastmail is not None and fastmail.prediction.certain
    assert (fastmail.prediction.status, fastmail.prediction.dsn) == ("deferred", "4.7.5")
    assert fastmail.decision.policy is not None and fastmail.decision.policy.entry is not None
    assert fastmail.decision.policy.entry.value == "secure ciphers=high"  # the seed folder's own table
    assert facebook is not None and facebook.prediction.status == "sent"
    nothing = CaseResult(scenario.name, case.name, "<dict>", result.recipients)  # the case wrote no main.cf
    assert explanations(Side(scenario, case, nothing)) == (None, None)


def test_messages_are_built_fresh_without_expectations_per_release() -> None:
    message = Message.model_validate(
        {"to": "a@b.example", "expect": {"tls": {"default": "Trusted", "3.5": "Verified"}}}
    )
    scenario = scenario_from_dict(
        {
            "name": "s",
            "dns": {"b.example": {"A": "auto"}},
            "cases": [{"name": "c", "send": [message.model_dump(by_alias=True)]}],
        }
    )
    (stripped,), _ = comparison_scenarios([scenario])
    assert stripped.cases[0].send[0].expect_for("3.5.25") == Expect()
