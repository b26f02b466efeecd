from __future__ import annotations

from dataclasses import replace

import pytest

from benchd.analysis import BaselineCandidate, choose_baseline

MATCH = {"scenario": "single_stream", "batch_size": 1, "device": "cuda:0", "hardware_class": "h100-550"}


def run(version: str, order: float, **changes: object) -> BaselineCandidate:
    base = BaselineCandidate(version, order, "single_stream", 1, "cuda:0", "h100-550")
    return replace(base, **changes)


def test_champion_alias_wins_when_it_has_an_eligible_run():
    runs = [run("v1", 1), run("v2", 2), run("v3", 3), run("v4", 4)]
    choice = choose_baseline("v4", runs, champion="v1", **MATCH)
    assert (choice.version, choice.reason) == ("v1", "champion alias (v1)")
    assert choice.found


def test_previous_version_without_champion():
    runs = [run("v1", 1), run("v2", 2), run("v3", 3), run("v5", 5)]
    choice = choose_baseline("v4", runs, champion=None, candidate_order=4, **MATCH)
    assert (choice.version, choice.reason) == ("v3", "previous version (v3)")
    # Without candidate_order the candidate's own runs tell its age; without those it is the newest.
    assert choose_baseline("v3", runs, champion=None, **MATCH).version == "v2"
    assert choose_baseline("v9", runs, champion=None, **MATCH).version == "v5"


def test_champion_that_is_the_candidate_falls_back_to_previous():
    runs = [run("v1", 1), run("v2", 2)]
    choice = choose_baseline("v2", runs, champion="v2", **MATCH)
    assert choice.version == "v1"
    assert choice.reason == "previous version (v1) (the champion alias names the candidate itself)"


def test_throttled_or_invalid_runs_never_serve():
    runs = [run("v1", 1), run("v2", 2, valid=False), run("v3", 3, throttled=True), run("v3", 3, valid=False)]
    choice = choose_baseline("v4", runs, champion="v3", **MATCH)
    assert choice.version == "v1"
    assert "champion v3's 2 runs were: throttled, INVALID" in choice.reason
    # One good run among bad ones is enough.
    assert choose_baseline("v4", [*runs, run("v3", 3)], champion=None, **MATCH).version == "v3"


def test_no_eligible_baseline_says_why():
    choice = choose_baseline("v2", [run("v1", 1, throttled=True), run("v2", 2)], champion=None, **MATCH)
    assert choice.version is None and not choice.found
    assert choice.reason == "no eligible baseline: v1's only run was throttled"
    assert (
        choose_baseline("v1", [], champion=None, **MATCH).reason == "no eligible baseline: no older version"
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
    choice = choose_baseline("v2", [run("v1", 1, **change)], champion="v1", **MATCH)
    assert choice.version is None
    assert (
        choice.reason
        == f"no eligible baseline: champion v1's only run was {words}; v1's only run was {words}"
    )


def test_newer_versions_are_not_previous():
    runs = [run("v1", 1, valid=False), run("v5", 5)]
    assert choose_baseline("v3", runs, champion=None, candidate_order=3, **MATCH).version is None
    assert choose_baseline("v3", runs, champion="v5", candidate_order=3, **MATCH).version == "v5"
