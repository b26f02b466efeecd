from __future__ import annotations

from dataclasses import replace

import pytest

from benchd.analysis import BaselineCandidate, choose_baseline, eligible_runs

MATCH = {"scenario": "single_stream", "batch_size": 1, "device": "cuda:0", "hardware_class": "h100-550"}


def run(version: str, **changes: object) -> BaselineCandidate:
    return replace(BaselineCandidate(version, "single_stream", 1, "cuda:0", "h100-550"), **changes)


def choose(candidate: str, runs: list[BaselineCandidate], champion: str | None, **kw: object):
    versions = sorted({r.version for r in runs} | {candidate})
    return choose_baseline(
        candidate,
        versions,
        champion=champion,
        why_not=eligible_runs(runs, **MATCH),
        **kw,  # type: ignore[arg-type]
    )


def test_champion_alias_wins_when_it_has_an_eligible_run():
    runs = [run("v1"), run("v2"), run("v3"), run("v4")]
    choice = choose("v4", runs, champion="v1")
    assert (choice.version, choice.reason) == ("v1", "champion alias (v1)")
    assert choice.found


def test_previous_version_in_version_order_without_champion():
    runs = [run("v1"), run("v2"), run("v3"), run("v5")]
    choice = choose("v4", runs, champion=None)
    assert (choice.version, choice.reason) == ("v3", "previous version (v3)")
    assert choose("v3", runs, champion=None).version == "v2"
    assert choose("v9", runs, champion=None).version == "v5"
    # version order is natural, not lexical: v10 comes after v9
    assert choose_baseline("v10", ["v9", "v10", "v1"], champion=None).version == "v9"


def test_without_stored_runs_every_version_serves():
    assert choose_baseline("3", ["1", "2", "3"], champion=None).version == "2"
    assert choose_baseline("3", ["3", "1"], champion="1").reason == "champion alias (1)"


def test_an_explicit_request_wins_unless_it_is_the_candidate():
    assert choose_baseline("3", ["1", "2", "3"], champion="2", requested="1").version == "1"
    assert choose_baseline("3", ["1", "2", "3"], champion="1", requested="champion").version == "1"
    choice = choose_baseline("3", ["1", "2", "3"], champion=None, requested="3")
    assert choice.version is None and "is the candidate itself" in choice.reason


def test_champion_that_is_the_candidate_falls_back_to_previous():
    runs = [run("v1"), run("v2")]
    choice = choose("v2", runs, champion="v2")
    assert choice.version == "v1"
    assert choice.reason == "previous version (v1) (the champion alias names the candidate itself)"


def test_throttled_or_invalid_runs_never_serve():
    runs = [run("v1"), run("v2", valid=False), run("v3", throttled=True), run("v3", valid=False)]
    choice = choose("v4", runs, champion="v3")
    assert choice.version == "v1"
    assert "champion v3's 2 runs were: throttled, INVALID" in choice.reason
    # One good run among bad ones is enough.
    assert choose("v4", [*runs, run("v3")], champion=None).version == "v3"


def test_no_eligible_baseline_says_why():
    choice = choose("v2", [run("v1", throttled=True), run("v2")], champion=None)
    assert choice.version is None and not choice.found
    assert choice.reason == "no eligible baseline: v1's only run was throttled"
    assert choose("v1", [], champion=None).reason == "no eligible baseline: no older version"
    assert choose_baseline("v2", ["v1", "v2"], champion=None, why_not=eligible_runs([], **MATCH)).reason == (
        "no eligible baseline: v1 has no finished run"
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hardware_class": "a100-535"}, "on hardware class 'a100-535', not 'h100-550'"),
        ({"device": "cuda:1"}, "on device 'cuda:1', not 'cuda:0'"),
        ({"batch_size": 8}, "at batch size 8, not 1"),
        ({"scenario": "server"}, "for scenario 'server', not 'single_stream'"),
    ],
)
def test_a_run_under_other_conditions_is_not_a_baseline(change, words):
    choice = choose("v2", [run("v1", **change)], champion="v1")
    assert choice.version is None
    assert (
        choice.reason
        == f"no eligible baseline: champion v1's only run was {words}; v1's only run was {words}"
    )


def test_newer_versions_are_not_previous():
    runs = [run("v1", valid=False), run("v5")]
    assert choose("v3", runs, champion=None).version is None
    assert choose("v3", runs, champion="v5").version == "v5"
