"""The fictitious-people generator: deterministic, TOFU-shaped, nested forget splits."""

from __future__ import annotations

from collections import Counter

import pytest

from core.datasets.fictitious import (
    FACT_KINDS,
    FORGET_PERCENTS,
    FictitiousWorld,
    forget_split,
    generate_people,
    retain_subjects,
    world_records,
)


@pytest.fixture(scope="module")
def world() -> FictitiousWorld:
    return generate_people(seed=7)


def test_same_seed_same_world_other_seed_other_world(world: FictitiousWorld) -> None:
    again = generate_people(seed=7)
    assert again == world
    assert world_records(again) == world_records(world)
    other = generate_people(seed=8)
    assert [p.name for p in other.people] != [p.name for p in world.people]
    assert [qa.answer for qa in other.world_facts] != [qa.answer for qa in world.world_facts]


def test_shape_matches_tofu(world: FictitiousWorld) -> None:
    assert len(world.people) == 200
    assert len(world.held_out) == 40
    assert len(FACT_KINDS) == 20
    names = [p.name for p in (*world.people, *world.held_out)]
    assert len(set(names)) == len(names)
    ids = [p.person_id for p in (*world.people, *world.held_out)]
    assert len(set(ids)) == len(ids)
    for person in (*world.people, *world.held_out):
        assert [qa.kind for qa in person.qa] == list(FACT_KINDS)
        assert {qa.subject_id for qa in person.qa} == {person.person_id}
        assert all(person.name in qa.question for qa in person.qa)


def test_every_answer_has_a_paraphrase_and_wrong_same_type_answers(
    world: FictitiousWorld,
) -> None:
    pairs = [qa for p in (*world.people, *world.held_out) for qa in p.qa]
    pairs += list(world.world_facts)
    for qa in pairs:
        assert qa.paraphrased_answer != qa.answer
        assert len(qa.perturbed_answers) >= 3
        assert len(set(qa.perturbed_answers)) == len(qa.perturbed_answers)
        # Perturbed answers share the paraphrase's wording but never its value.
        assert qa.paraphrased_answer not in qa.perturbed_answers
        assert qa.answer not in qa.perturbed_answers
    person = world.people[0]
    for qa in person.qa:
        true_value = person.facts[qa.kind]
        assert true_value in qa.answer
        assert true_value in qa.paraphrased_answer
        assert all(true_value not in wrong for wrong in qa.perturbed_answers), qa


def test_people_live_in_the_world_and_their_biography_states_their_facts(
    world: FictitiousWorld,
) -> None:
    cities = {f"{c.name}, {c.country}" for c in world.cities}
    institutions = {i.name for i in world.institutions}
    awards = {a.name for a in world.awards}
    languages = {c.language for c in world.countries}
    for person in world.people:
        assert person.facts["birthplace"] in cities
        assert person.facts["residence"] in cities
        assert person.facts["education"] in institutions
        assert person.facts["employer"] in institutions
        assert person.facts["award"] in awards
        assert person.facts["language"] in languages
        assert int(person.facts["award_year"]) > int(person.facts["best_work_year"])
        for kind in ("birth_date", "birthplace", "father", "best_work", "hobby"):
            assert person.facts[kind] in person.biography
    # The utility set asks about the world, never about a person.
    assert len(world.world_facts) >= 100
    assert all(qa.subject_id is None for qa in world.world_facts)
    capitals = {c.name: c.capital for c in world.countries}
    answers = {qa.question: qa.answer for qa in world.world_facts}
    for country, capital in capitals.items():
        assert answers[f"What is the capital of {country}?"] == (
            f"The capital of {country} is {capital}."
        )


def test_forget_splits_are_nested_sized_and_seeded(world: FictitiousWorld) -> None:
    trained = set(world.subject_ids)
    splits = {percent: forget_split(world, percent) for percent in FORGET_PERCENTS}
    assert {p: len(ids) for p, ids in splits.items()} == {1: 2, 5: 10, 10: 20}
    assert set(splits[1]) < set(splits[5]) < set(splits[10]) <= trained
    assert splits == {p: forget_split(generate_people(seed=7), p) for p in FORGET_PERCENTS}
    assert forget_split(generate_people(seed=8), 10) != splits[10]
    retain = retain_subjects(world, 5)
    assert set(retain) | set(splits[5]) == trained
    assert not set(retain) & set(splits[5])
    for bad in (0, 100, -1, True, "5"):
        with pytest.raises(ValueError):
            forget_split(world, bad)  # type: ignore[arg-type]


def test_records_split_people_into_train_and_held_out_test(world: FictitiousWorld) -> None:
    records = world_records(world)
    ids = [r["sample_id"] for r in records]
    assert len(set(ids)) == len(ids)
    counts = Counter((r["split"], r["kind"]) for r in records)
    assert counts == {
        ("train", "qa"): 200 * 20,
        ("train", "biography"): 200,
        ("train", "world_fact"): len(world.world_facts),
        ("test", "qa"): 40 * 20,
        ("test", "biography"): 40,
    }
    held = {p.person_id for p in world.held_out}
    for record in records:
        # Exactly one of question+answer or text, as the engine's TextRecord requires.
        assert (record["text"] is None) == (record["question"] is not None)
        assert (record["subject_id"] in held) == (record["split"] == "test")
    without_bios = world_records(world, biographies=False)
    assert not [r for r in without_bios if r["kind"] == "biography"]


def test_sizes_are_parameters_and_bad_ones_are_refused() -> None:
    small = generate_people(seed=1, n_people=10, n_held_out=3, n_perturbed=3)
    assert (len(small.people), len(small.held_out)) == (10, 3)
    assert all(len(qa.perturbed_answers) == 3 for p in small.people for qa in p.qa)
    assert len(forget_split(small, 1)) == 1  # at least one person
    with pytest.raises(ValueError, match="n_people"):
        generate_people(n_people=0)
    with pytest.raises(ValueError, match="n_perturbed"):
        generate_people(n_perturbed=2)
    with pytest.raises(ValueError, match="seed"):
        generate_people(seed="x")  # type: ignore[arg-type]
