"""Text datasets: records, the text shard format, uploads (JSONL/CSV/Parquet) and the
fictitious-people built-in, each refusal naming where the problem is."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from core.datasets.builtin import FICTITIOUS_PEOPLE, HELD_OUT_MIN, WORLD_FACTS_MIN, load_builtin
from core.datasets.errors import DatasetImportError, ShardError
from core.datasets.fictitious import FACT_KINDS, generate_people
from core.datasets.reader import ShardReader
from core.datasets.text import MAX_TEXT_CHARS, TextDatasetImport, TextSampleRecord
from core.datasets.text_shards import (
    blank_text_shard,
    decode_text_shard,
    encode_text_shard,
    text_shard_slices,
)
from core.datasets.text_uploads import import_text_file
from core.storage import LocalStore

QA = {"question": "Where was Ana born?", "answer": "Ana was born in Porto.", "subject_id": "ana"}


def _jsonl(tmp_path: Path, rows: list[object], name: str = "people.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- records


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "needs 'text', or 'question' and 'answer'"),
        ({"question": "q?"}, "'answer' is missing"),
        ({"text": "t", "question": "q?", "answer": "a"}, "not both"),
        ({"text": "a\x00b"}, "NUL"),
        ({"text": "a\x07b"}, "control character"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "limit"),
        ({"text": "   "}, "empty"),
        ({"text": "t", "perturbed_answers": ("w",)}, "only goes with"),
        ({"question": "q", "answer": "a", "perturbed_answers": ()}, "non-empty list"),
        ({"text": "t", "split": "dev"}, "split 'dev'"),
        ({"text": "t", "kind": "Bad Kind"}, "'kind'"),
    ],
)
def test_bad_records_are_refused_with_the_field(fields: dict, message: str) -> None:
    with pytest.raises(DatasetImportError, match=message):
        TextSampleRecord(sample_id="s1", **fields).validate()


def test_good_records_and_duplicate_ids() -> None:
    text = TextSampleRecord(sample_id="a", text="line one\n\tline two", subject_id="p")
    qa = TextSampleRecord(
        sample_id="b",
        question="q?",
        answer="a.",
        paraphrased_answer="A.",
        perturbed_answers=("b.", "c.", "d."),
    )
    data = TextDatasetImport(name="d", records=[text, qa], source="test")
    assert data.num_samples == 2 and data.subjects() == {"p": ["a"]}
    assert qa.content()["perturbed_answers"] == ["b.", "c.", "d."]
    with pytest.raises(DatasetImportError, match="appears twice"):
        TextDatasetImport(name="d", records=[text, text], source="test")
    with pytest.raises(DatasetImportError, match="no records"):
        TextDatasetImport(name="d", records=[], source="test")


# ----------------------------------------------------------------- shards


def _contents(n: int) -> list[dict]:
    return [
        TextSampleRecord(sample_id=f"s{i}", question=f"q{i}?", answer=f"answer {i}").content()
        for i in range(n)
    ]


def test_shard_round_trip_is_deterministic_and_blanking_keeps_indices() -> None:
    contents = _contents(5)
    blob = encode_text_shard(contents)
    assert blob == encode_text_shard(contents)  # same records, same bytes, same key
    assert decode_text_shard(blob) == contents
    blanked = decode_text_shard(blank_text_shard(blob, [1, 3]))
    assert blanked[1] is None and blanked[3] is None
    assert blanked[0] == contents[0] and blanked[4] == contents[4]
    assert b"answer 1" not in gzip.decompress(blank_text_shard(blob, [1]))
    with pytest.raises(ShardError, match="outside"):
        blank_text_shard(blob, [5])


@pytest.mark.parametrize(
    "data",
    [
        b"not gzip at all",
        gzip.compress(b"{not json"),
        gzip.compress(json.dumps({"format": "other", "records": []}).encode()),
        gzip.compress(json.dumps({"format": "expunge.text-shard/1", "records": [1]}).encode()),
        gzip.compress(
            json.dumps({"format": "expunge.text-shard/1", "records": [{"text": 5}]}).encode()
        ),
        gzip.compress(b"{}")[:-6],  # truncated
    ],
)
def test_anything_but_a_text_shard_is_a_shard_error(data: bytes) -> None:
    with pytest.raises(ShardError):
        decode_text_shard(data)


def test_a_shard_that_inflates_too_far_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.datasets import text_shards

    monkeypatch.setattr(text_shards, "MAX_DECODED_BYTES", 1000)
    with pytest.raises(ShardError, match="inflates"):
        decode_text_shard(gzip.compress(b" " * 5000))


def test_shards_are_cut_by_count_and_by_size() -> None:
    contents = _contents(10)
    assert text_shard_slices(contents, shard_size=4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    one = len(json.dumps(contents[0], separators=(",", ":"))) + 1
    by_size = text_shard_slices(contents, shard_size=100, max_bytes=3 * one + 2)
    assert all(s.stop - s.start <= 3 for s in by_size) and by_size[-1].stop == 10
    assert text_shard_slices([], shard_size=4) == []


def test_reader_reads_text_back_and_refuses_purged_slots(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    contents = _contents(3)
    store.put_bytes("d/shards/00000-a.json.gz", blank_text_shard(encode_text_shard(contents), [1]))
    reader = ShardReader(store)
    assert reader.gather_text(
        [("d/shards/00000-a.json.gz", 2), ("d/shards/00000-a.json.gz", 0)]
    ) == [
        contents[2],
        contents[0],
    ]
    with pytest.raises(ShardError, match="purged"):
        reader.text("d/shards/00000-a.json.gz", 1)
    with pytest.raises(ShardError, match="text shard"):
        reader.shard("d/shards/00000-a.json.gz")


# ---------------------------------------------------------------- uploads


def test_jsonl_upload_with_qa_text_and_eval_fields(tmp_path: Path) -> None:
    rows = [
        {**QA, "sample_id": "ana-1", "paraphrased_answer": "Porto is where Ana was born.",
         "perturbed_answers": ["Ana was born in Lyon.", "Ana was born in Oslo."]},
        {"text": "Ana writes poems.", "subject_id": "ana", "split": "test", "kind": "biography"},
        {"question": "Capital of X?", "answer": "Y.", "subject_id": 7},
    ]  # fmt: skip
    data = import_text_file(_jsonl(tmp_path, rows), "people")
    first, second, third = data.records
    assert first.sample_id == "ana-1" and first.perturbed_answers == (
        "Ana was born in Lyon.",
        "Ana was born in Oslo.",
    )
    assert second.sample_id == "people-000002" and second.split == "test"
    assert third.subject_id == "7"  # numbers are accepted as ids, kept as strings
    assert data.source == "upload:people.jsonl" and "3 text records" in data.description


def test_csv_and_parquet_uploads(tmp_path: Path) -> None:
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(
        "sample_id,subject_id,question,answer,perturbed_answers,split\n"
        'a,ana,Q1?,A1.,"[""W1."", ""W2.""]",train\n'
        'b,bob,"Q2, with a comma?","A2\nover two lines.",,test\n',
        encoding="utf-8",
    )
    records = import_text_file(csv_path, "p").records
    assert records[0].perturbed_answers == ("W1.", "W2.")
    assert records[1].question == "Q2, with a comma?" and records[1].split == "test"
    assert records[1].answer == "A2\nover two lines."

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "subject_id": ["ana", "bob"],
            "text": ["Ana's text.", None],
            "question": [None, "Q?"],
            "answer": [None, "A."],
            "perturbed_answers": [None, ["W."]],
        }
    )
    parquet = tmp_path / "p.parquet"
    pq.write_table(table, parquet)
    records = import_text_file(parquet, "p").records
    assert records[0].text == "Ana's text." and records[1].perturbed_answers == ("W.",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"question": "q?", "answer": "a", "subject_id": "s"}\n\xff\xfe\n', "line 2: not UTF-8"),
        (b'{"text": "a", "subject_id": "s"}\n{"text": "a\x00"}\n', "line 2: contains a NUL"),
        (b'{"text": "a\\u0000b", "subject_id": "s"}\n', "line 1: 'text' contains a NUL"),
        (b'{"text": "a", "subject_id": "s", "split": "dev"}\n', "line 1: split 'dev'"),
        (b'{"subject_id": "s"}\n', "line 1: needs 'text', or 'question' and 'answer'"),
        (b'{"question": "q?", "subject_id": "s"}\n', "line 1: 'answer' is missing"),
        (b'{"text": "t", "subject_id": "s", "label": 3}\n', "line 1: unknown field.*label"),
        (b'{"text": "t"}\n', "line 1: 'subject_id' is missing"),
        (b'{"text": "t", "subject_id": "s"}\n[1, 2]\n', "line 2: each line must be a JSON obj"),
        (b'{"text": "t", "subject_id": "s"\n', "line 1: not valid JSON"),
        (b'{"text": 5, "subject_id": "s"}\n', "line 1: 'text' must be a string"),
        (
            b'{"text": "t", "subject_id": "s", "sample_id": "x"}\n'
            b'{"text": "u", "subject_id": "s", "sample_id": "x"}\n',
            "line 2: sample_id 'x' already used at .*line 1",
        ),
        (
            json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1), "subject_id": "s"}).encode(),
            "line 1: 'text' is 20001 characters long",
        ),
        (b"\n\n", "holds no records"),
    ],
)
def test_bad_jsonl_is_refused_naming_line_and_field(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetImportError, match=message):
        import_text_file(path, "bad")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"subject_id,text\ns,ok\ns,caf\xe9\n", "line 3: not UTF-8"),
        (b"subject_id,text\ns,a\x00b\n", "line 2: contains a NUL"),
        (b"subject_id,prompt\ns,x\n", "unknown columns prompt"),
        (b"subject_id,question\ns,q?\n", "needs a 'text' column, or 'question' and 'answer'"),
        (b"subject_id,text,split\ns,t,validation\n", "row 2: split 'validation'"),
        (b"subject_id,question,answer\ns,q?,\n", "row 2: 'answer' is missing"),
        (b"subject_id,question,answer,perturbed_answers\ns,q,a,w1|w2\n", "row 2: .*JSON list"),
        (b"subject_id,text\n,t\n", "row 2: 'subject_id' is missing"),
        (b"subject_id,text\ns,t,extra\n", "row 2: more cells than the header"),
        (b"", "empty"),
    ],
)
def test_bad_csv_is_refused_naming_row_and_field(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetImportError, match=message):
        import_text_file(path, "bad")


def test_records_about_nobody_need_require_subjects_off(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [{"text": "General fact."}])
    with pytest.raises(DatasetImportError, match="require_subjects=false"):
        import_text_file(path, "facts")
    data = import_text_file(path, "facts", require_subjects=False)
    assert data.records[0].subject_id is None


def test_unsupported_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "people.txt"
    path.write_text("hello")
    with pytest.raises(DatasetImportError, match=r"\.jsonl, \.csv or \.parquet"):
        import_text_file(path, "p")


# ------------------------------------------------------- fictitious-people


def test_fictitious_people_builtin_is_the_generated_world() -> None:
    data = load_builtin(FICTITIOUS_PEOPLE)
    assert isinstance(data, TextDatasetImport)
    world = generate_people(seed=0)
    per_person = len(FACT_KINDS) + 1  # QA pairs + biography
    train = [r for r in data.records if r.split == "train"]
    test = [r for r in data.records if r.split == "test"]
    assert len(train) == len(world.people) * per_person + len(world.world_facts)
    assert len(test) == len(world.held_out) * per_person
    subjects = data.subjects()
    assert set(subjects) == {p.person_id for p in (*world.people, *world.held_out)}
    person = world.people[3]
    mine = [r for r in data.records if r.subject_id == person.person_id]
    assert {r.question for r in mine if r.question} == {qa.question for qa in person.qa}
    assert all(len(r.perturbed_answers or ()) >= 3 for r in mine if r.question)
    assert any(r.text == person.biography for r in mine)
    assert {r.split for r in mine} == {"train"}


def test_fictitious_people_limit_keeps_whole_people_with_stable_ids() -> None:
    full = load_builtin(FICTITIOUS_PEOPLE)
    small = load_builtin(FICTITIOUS_PEOPLE, limit=50)
    assert isinstance(small, TextDatasetImport) and isinstance(full, TextDatasetImport)
    people = {r.subject_id for r in small.records if r.split == "train" and r.subject_id}
    assert len(people) == 3  # ceil(50 / 21) whole people
    for subject in people:
        assert len(small.subjects()[subject]) == len(full.subjects()[subject])
    by_id = {r.sample_id: r for r in full.records}
    assert all(by_id[r.sample_id] == r for r in small.records)
    # At least HELD_OUT_MIN held-out people: half to calibrate a stop rule on, half to
    # judge on.
    assert len({r.subject_id for r in small.records if r.split == "test"}) == HELD_OUT_MIN
    # World facts in proportion, at least WORLD_FACTS_MIN, spread over every kind of fact.
    facts = [r for r in small.records if r.kind == "world_fact"]
    assert len(facts) == WORLD_FACTS_MIN
    every = [r for r in full.records if r.kind == "world_fact"]
    assert len(every) > 5 * WORLD_FACTS_MIN
    assert facts[0] == every[0] and facts[-1].sample_id > every[len(every) * 9 // 10].sample_id
    half = load_builtin(FICTITIOUS_PEOPLE, limit=100 * 21)
    assert isinstance(half, TextDatasetImport)
    assert sum(r.kind == "world_fact" for r in half.records) == len(every) // 2
