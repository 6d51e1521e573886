"""The identity linkage model: names across scripts and layouts, scores equal to Splink's,
households and placeholders kept apart, and quality against the rules on generated data."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.identity_link import service_rules
from omnicdp.core.identifiers import (
    normalize_identifier,
    normalize_usable_identifiers,
)
from omnicdp.services.identity.linkage import engine, features
from omnicdp.services.identity.linkage.batch import link_table
from omnicdp.services.identity.linkage.cluster import cluster
from omnicdp.services.identity.linkage.comparisons import COMPARISONS, levenshtein
from omnicdp.services.identity.linkage.features import (
    INPUT_COLUMNS,
    fold,
    phone_key,
    record_features,
    split_name,
    surname_stem,
    table_features,
)
from omnicdp.services.identity.linkage.metrics import pairwise_quality
from omnicdp.services.identity.linkage.model import LinkageModel, ModelError
from omnicdp.services.identity.linkage.table import features_frame, read_person_table
from omnicdp.services.identity.records import normalize_features
from omnicdp.synth import generate_retailer, names
from omnicdp.synth.noise import format_phone, wrong_layout

QUALITY_CUSTOMERS = 1000
QUALITY_SEED = 5


@pytest.fixture(scope="module")
def model() -> LinkageModel:
    return LinkageModel.load_default()


def _row(**fields: str) -> dict[str, str]:
    return {"record_id": fields.pop("record_id", "r"), "source": "crm", **fields}


def test_cyrillic_and_every_latin_spelling_fold_to_one_name() -> None:
    rng = random.Random(1)
    for name in (*names.MALE_FIRST, *names.FEMALE_FIRST, *names.SURNAMES):
        spellings = {names.transliterate(name, system) for system in names.SYSTEMS}
        spellings |= {names.latin_spelling(name, rng) for _ in range(5)}
        keys = {fold(s) for s in spellings} | {fold(name)}
        # Alexander / Aleksandr: the one spelling no system folds away is one edit off.
        assert max(levenshtein(a, b) for a in keys for b in keys) <= 1, (name, keys)
    assert fold("Юлия") == fold("Iuliia") == fold("Yuliya") == fold("Julia")
    assert surname_stem(fold("Иванова")) == surname_stem(fold("Ivanov"))
    assert surname_stem(fold("Вишневская")) == surname_stem(fold("Vishnevskiy"))


def test_wrong_layout_patronymics_and_full_names_are_read_back() -> None:
    for first, last in (("Иван", "Петров"), ("Наталья", "Щербакова"), ("Юлия", "Соловьёва")):
        assert split_name(wrong_layout(first), wrong_layout(last)) == (fold(first), fold(last))
    assert split_name("Bdfy", "") == ("ivan", None)
    assert split_name("Иван Петрович", "Сидоров") == ("ivan", "sidorov")
    assert split_name("Сидоров Иван Петрович", "") == ("ivan", "sidorov")
    assert split_name("Иван Петрович Сидоров", "") == ("ivan", "sidorov")
    assert split_name("Ivan", "Ivanov") == ("ivan", "ivanov")  # a Latin name stays Latin
    assert record_features(_row(first_name="Саша"))["first_canon"] == fold("Александр")


def test_fast_phone_path_agrees_with_the_identity_normaliser() -> None:
    rng = random.Random(2)
    raws = [format_phone("RU", f"9{rng.randrange(10**9):09d}", style)
            for style in ("e164", "pretty", "spaces", "trunk", "trunk_dashes", "trunk_pretty",
                          "bare", "seven") for _ in range(50)]
    raws += ["+79999999999", "89000000000", "9123456789", "+7 (900) 123-45-67", "89111111111",
             "+7 916 000-00-01", "8 495 123-45-67", "+375 29 123-45-67", "12345", "9161234"]
    for raw in raws:
        try:
            expected = normalize_identifier("phone", raw, "RU")
        except Exception:  # noqa: BLE001 (malformed: the features leave it out)
            expected = None
        assert phone_key(raw, None) == expected, raw


def test_stored_normalised_values_give_the_same_features_as_raw_ones() -> None:
    """Online, candidates come from the identity store, which keeps identifiers and traits
    normalised: their features equal those of the raw record."""
    for raw in _LEVEL_RECORDS:
        traits = normalize_features(raw)
        identifiers, _ = normalize_usable_identifiers(
            {k: raw[k] for k in ("email", "phone") if k in raw}, "RU", traits.get("country"))
        assert record_features({**traits, **identifiers}) == record_features(raw), raw


# Records crafted so that every level of every comparison is reached by some pair.
_LEVEL_RECORDS = [
    _row(record_id="a", first_name="Иван", last_name="Петров", date_of_birth="1980-03-07",
         email="ivan.petrov@mail.ru", phone="+7 916 123-45-67",
         address_line="ул. Ленина, д. 5, кв. 12", postcode="101000", city="Москва"),
    _row(record_id="b", first_name="Ваня", last_name="Петрова", date_of_birth="1980-07-03",
         email="ivan.petrov@yandex.ru", phone="8 916 123-45-76", postcode="101000",
         city="Москва"),
    _row(record_id="c", first_name="Petrov", last_name="Ivan", date_of_birth="1980-03-08",
         email="ivan.petrof@mail.ru", phone="+7 916 123-45-67", address_line="Ленина 5-12",
         city="Moscow"),
    _row(record_id="d", first_name="Ивн", last_name="Петрв", date_of_birth="1975-11-30",
         email="ivan.petrov@mail.ru", phone="+7 903 555-12-34", city="Казань"),
    _row(record_id="e", first_name="Мария", last_name="Сидорова", date_of_birth="1990-01-02",
         email="ivan.petrov@mail.ru", phone="+7 916 123-45-67", city="Москва"),
    _row(record_id="f", first_name="Иван"),
    _row(record_id="g", email="m.sidorova@gmail.com"),
]


def _every_level(model: LinkageModel, features: list[dict]) -> set[tuple[str, str]]:
    seen = set()
    for left in features:
        for right in features:
            for w in model.score_pair(left, right).weights:
                seen.add((w.comparison, w.level))
    return seen


def test_scores_equal_splinks_own_for_the_same_pairs(model: LinkageModel,
                                                     tmp_path: Path) -> None:
    """The Python scorer and Splink (score_pairs on crafted records reaching every level;
    predict over a generated table's blocked pairs) agree to 1e-6."""
    from splink import DuckDBAPI, Linker

    crafted = pd.DataFrame(_LEVEL_RECORDS).fillna("")
    frame, _ = features_frame(crafted, model.placeholder_names)
    features = frame.to_dict("records")
    every = {(c.name, level.label) for c in COMPARISONS for level in c.levels}
    assert _every_level(model, features) == every

    settings = copy.deepcopy(model.splink_settings)
    settings["retain_intermediate_calculation_columns"] = True
    columns = list(engine.SPLINK_COLUMNS)
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(frame[columns].astype("string")), settings)
    rows = [{k: v for k, v in f.items() if k in columns} for f in features]
    scored = linker.inference.score_pairs(rows, rows).as_pandas_dataframe()
    by_id = {f["unique_id"]: f for f in features}
    assert len(scored) == len(rows) ** 2
    for pair in scored.to_dict("records"):
        ours = model.score_pair(by_id[pair["unique_id_l"]], by_id[pair["unique_id_r"]])
        assert ours.match_weight == pytest.approx(pair["match_weight"], abs=1e-6)
        assert ours.match_probability == pytest.approx(pair["match_probability"], abs=1e-6)
        for w in ours.weights:
            assert w.match_weight == pytest.approx(pair[f"mw_{w.comparison}"], abs=1e-6)

    out = tmp_path / "retailer"
    generate_retailer(150, 3, out)
    frame, _ = features_frame(read_person_table(out / "persons.csv"), model.placeholder_names)
    linker = Linker(DuckDBAPI().register(frame[columns].astype("string")), settings)
    predicted = linker.inference.predict().as_pandas_dataframe()
    by_id = {f["unique_id"]: f for f in frame.to_dict("records")}
    assert len(predicted) > 200
    for pair in predicted.to_dict("records"):
        ours = model.score_pair(by_id[pair["unique_id_l"]], by_id[pair["unique_id_r"]])
        assert ours.match_weight == pytest.approx(pair["match_weight"], abs=1e-6)
        assert ours.match_probability == pytest.approx(pair["match_probability"], abs=1e-6)


def test_a_model_whose_sql_differs_from_the_code_is_refused(model: LinkageModel) -> None:
    document = copy.deepcopy(model.document)
    document["splink"]["comparisons"][0]["comparison_levels"][1]["sql_condition"] = "1 = 1"
    with pytest.raises(ModelError, match="retrain"):
        LinkageModel(document)
    with pytest.raises(ModelError, match="format"):
        LinkageModel({"format": "something else"})


def test_one_person_across_scripts_and_layouts_links_a_household_does_not(
        model: LinkageModel) -> None:
    home = dict(address_line="ул. Садовая, д. 17, кв. 4", postcode="190000",
                city="Санкт-Петербург", phone="+7 812 555-01-02")
    table = pd.DataFrame([
        # Виктор, in three sources: Cyrillic, Latin, and the wrong keyboard layout.
        _row(record_id="v1", first_name="Виктор", last_name="Смирнов",
             date_of_birth="1979-05-14", email="v.smirnov79@mail.ru", **home),
        _row(record_id="v2", source="web", first_name="Viktor", last_name="Smirnov",
             date_of_birth="1979-05-14", phone="+7 921 444-55-66", **{
                 k: v for k, v in home.items() if k != "phone"}),
        _row(record_id="v3", source="pos", first_name="Dbrnjh", last_name="Cvbhyjd",
             phone="8 921 444-55-66", city="Санкт-Петербург"),
        # His wife and son: same surname (her form), address, home phone, family e-mail.
        _row(record_id="w1", first_name="Ольга", last_name="Смирнова",
             date_of_birth="1981-09-02", email="v.smirnov79@mail.ru", **home),
        _row(record_id="w2", source="loyalty", first_name="Olga", last_name="Smirnova",
             date_of_birth="1981-09-02", **home),
        _row(record_id="s1", first_name="Денис", last_name="Смирнов",
             date_of_birth="2004-02-20", **home),
    ]).fillna("")
    links = link_table(table, model).links.set_index("record_id")["customer_id"]
    assert links["v1"] == links["v2"] == links["v3"]
    assert links["w1"] == links["w2"]
    assert len({links["v1"], links["w1"], links["s1"]}) == 3


def test_a_shared_placeholder_does_not_merge_strangers(model: LinkageModel) -> None:
    firsts = ["Анна", "Игорь", "Светлана", "Павел", "Дарья", "Олег", "Нина", "Кирилл"]
    lasts = ["Орлова", "Белов", "Зайцева", "Гусев", "Комарова", "Титов", "Фомина", "Юдин"]
    table = pd.DataFrame([
        _row(record_id=f"s{i}", source="pos", first_name=first, last_name=last,
             email="nety@mail.ru", phone="+7 495 600-00-01", city="Москва")
        for i, (first, last) in enumerate(zip(firsts, lasts, strict=True))]).fillna("")
    result = link_table(table, model)
    assert result.placeholders == 2  # the e-mail and the store's phone
    assert result.links["customer_id"].nunique() == len(firsts)


def test_clusters_never_hold_two_user_ids_or_two_cards() -> None:
    identifiers = {"user_id": ["u1", None, "u2", None], "crm_id": [None] * 4,
                   "loyalty_id": [None, "L1", None, "L2"], "email": [None] * 4,
                   "first_canon": [None] * 4, "last": [None] * 4, "dob": [None] * 4}
    # 0-1 is the best link; 1-2 would give 0's cluster a second user id, 0-3 a second card.
    pairs = [(0, 1, 0.99), (1, 2, 0.98), (0, 3, 0.97), (2, 3, 0.5)]
    result = cluster(identifiers, pairs, 0.9)
    assert result.labels(["a", "b", "c", "d"]) == ["a", "a", "c", "d"]
    assert result.placed_by == [0.99, 0.99, None, None]


def test_features_computed_by_worker_processes_equal_the_callers_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large table's features are shared out to worker processes (here from 100 records
    on): the same values, in the same order, as computed in one process."""
    generate_retailer(150, QUALITY_SEED, tmp_path)
    table = read_person_table(tmp_path / "persons.csv")
    rows = {c: table[c].tolist() for c in INPUT_COLUMNS if c in table.columns}
    alone = table_features(rows, len(table), workers=1)
    monkeypatch.setattr(features, "PARALLEL_RECORDS", 100)
    shared = table_features(rows, len(table), workers=3)
    assert shared == alone and len(shared["first_canon"]) == len(table) > 100


def test_model_beats_the_rules_on_a_generated_retailer_in_batch_and_online(model: LinkageModel,
                                                       tmp_path: Path) -> None:
    generate_retailer(QUALITY_CUSTOMERS, QUALITY_SEED, tmp_path)
    table = read_person_table(tmp_path / "persons.csv")
    truth_table = read_person_table(tmp_path / "persons_truth.csv")
    truth = dict(zip(truth_table["record_id"], truth_table["person_id"], strict=True))
    links = link_table(table, model).links
    ours = pairwise_quality(dict(zip(links["record_id"], links["customer_id"], strict=True)),
                            truth)
    rules = pairwise_quality(service_rules(table), truth)
    assert ours.precision >= max(rules.precision, 0.98), (ours, rules)
    assert ours.f1 >= rules.f1 + 0.04, (ours, rules)
    assert (links["match_probability"].dropna() >= model.threshold).all()
    # Online: the identity service's resolver with the model, records in arrival order.
    online = pairwise_quality(service_rules(table, model), truth)
    assert online.precision >= max(rules.precision, 0.98), (online, rules)
    assert online.f1 >= rules.f1 + 0.04, (online, rules)
