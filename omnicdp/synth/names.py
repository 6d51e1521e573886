"""Russian (and a few foreign) names, and the ways Russian names get written in Latin letters.

Name lists are in rough order of popularity; :func:`zipf_weights` turns that order into
sampling weights so that common names (Иван Иванов) collide between unrelated people, as
they do in real customer bases.

Several transliteration systems are in use at once: passports since 2014 follow ICAO 9303
(Юлия -> Iuliia), older documents and maps BGN/PCGN (Yuliya), and people typing their own
name mostly an informal English spelling (Yulia, Alexey). A person's Latin spelling therefore
varies between sources.
"""

from __future__ import annotations

import random

MALE_FIRST = (
    "Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Максим", "Евгений", "Иван",
    "Михаил", "Артём", "Владимир", "Николай", "Денис", "Павел", "Игорь", "Роман", "Виктор",
    "Никита", "Олег", "Илья", "Кирилл", "Антон", "Юрий", "Вадим", "Константин", "Егор",
    "Владислав", "Руслан", "Виталий", "Станислав", "Вячеслав", "Георгий", "Борис", "Тимур",
    "Фёдор", "Григорий", "Ярослав", "Степан", "Валерий", "Геннадий", "Рустам", "Ильдар",
    "Айрат", "Семён",
)
FEMALE_FIRST = (
    "Елена", "Ольга", "Наталья", "Татьяна", "Анна", "Мария", "Екатерина", "Ирина", "Светлана",
    "Юлия", "Анастасия", "Марина", "Дарья", "Ксения", "Виктория", "Евгения", "Людмила",
    "Галина", "Надежда", "Александра", "Полина", "Алина", "Кристина", "Валентина", "Оксана",
    "Елизавета", "Вера", "Любовь", "Лариса", "Софья", "Алёна", "Валерия", "Карина", "Тамара",
    "Нина", "Яна", "Ульяна", "Жанна", "Динара", "Гульнара", "Лилия", "Альбина",
)
# Male forms; female forms are derived by :func:`female_surname`.
SURNAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов",
    "Воробьёв", "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев",
    "Киселёв", "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов",
    "Медведев", "Антонов", "Тарасов", "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов",
    "Беляев", "Герасимов", "Богданов", "Осипов", "Сидоров", "Матвеев", "Титов", "Марков",
    "Миронов", "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов", "Гаврилов",
    "Тихонов", "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев", "Фомин", "Чернов",
    "Абрамов", "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев",
    "Чернышёв", "Быков", "Маслов", "Родионов", "Коновалов", "Лазарев", "Воронин", "Климов",
    "Филатов", "Пономарёв", "Голубев", "Кудрявцев", "Прохоров", "Наумов", "Потапов",
    "Журавлёв", "Овчинников", "Трофимов", "Леонов", "Соболев", "Ермаков", "Колесников",
    "Гончаров", "Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин", "Ефремов", "Архипов",
    "Громов", "Кириллов", "Малышев", "Панов", "Моисеев", "Румянцев", "Акимов", "Кондратьев",
    "Бирюков", "Горбунов", "Анисимов", "Тихомиров", "Галкин", "Лукьянов", "Михеев",
    "Скворцов", "Юдин", "Белоусов", "Нестеров", "Симонов", "Харитонов", "Князев", "Цветков",
    "Левин", "Воронцов", "Аксёнов", "Вишневский", "Островский", "Покровский", "Толстой",
    "Шевченко", "Бондаренко", "Ковальчук", "Ким", "Цой", "Хабибуллин", "Сафин", "Галиев",
    "Закиров", "Валиев", "Мухаметшин",
)

# Short forms people type into web forms ("Саша" for Александр).
DIMINUTIVES = {
    "Александр": "Саша", "Александра": "Саша", "Алексей": "Лёша", "Дмитрий": "Дима",
    "Евгений": "Женя", "Евгения": "Женя", "Владимир": "Вова", "Михаил": "Миша",
    "Сергей": "Серёжа", "Николай": "Коля", "Екатерина": "Катя", "Анастасия": "Настя",
    "Мария": "Маша", "Наталья": "Наташа", "Татьяна": "Таня", "Елена": "Лена", "Юлия": "Юля",
    "Ольга": "Оля", "Светлана": "Света", "Ирина": "Ира", "Дарья": "Даша", "Ксения": "Ксюша",
}
# Spellings of the same name that are all "correct" in Cyrillic.
CYRILLIC_VARIANTS = {"Наталья": "Наталия", "Софья": "София", "Дарья": "Дария"}
# Latin spellings that no system produces but people use.
EXTRA_LATIN = {
    "Юлия": ("Julia",), "Александр": ("Alexander", "Alexandr"), "Ксения": ("Ksenia",),
    "Мария": ("Maria",), "Наталья": ("Natalia", "Nataliya"), "Евгений": ("Evgeniy",),
    "Дмитрий": ("Dmitriy",), "Юрий": ("Yuri", "Iouri"), "Фёдор": ("Fedor", "Fiodor"),
    "Артём": ("Artem",), "Алёна": ("Alena",), "Семён": ("Semen",),
}

# Kazakhstan and Belarus: Cyrillic names, local geography; Germany: Latin only.
KZ_MALE_FIRST = ("Нурлан", "Ерлан", "Даурен", "Асхат", "Арман", "Бахыт")
KZ_FEMALE_FIRST = ("Айгерим", "Асель", "Динара", "Жанар", "Гульмира", "Сауле")
KZ_SURNAMES = ("Ахметов", "Искаков", "Жумабаев", "Серикбаев", "Касымов", "Нурланов")
DE_MALE_FIRST = ("Thomas", "Michael", "Andreas", "Stefan", "Jan", "Lukas")
DE_FEMALE_FIRST = ("Anna", "Julia", "Katharina", "Laura", "Sabine", "Lena")
DE_SURNAMES = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Wagner")

_BASE = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
}
_SYSTEM_LETTERS = {
    "icao": {"ъ": "ie"},
    "bgn": {"й": "y", "ё": "yo", "ю": "yu", "я": "ya"},
    "informal": {"й": "y", "ё": "yo", "ю": "yu", "я": "ya"},
}
SYSTEMS = tuple(_SYSTEM_LETTERS)
_VOWELS = set("аеёиоуыэюяьъй")


def zipf_weights(count: int, offset: float = 4.0) -> list[float]:
    """Sampling weights for a list in popularity order: the first items are most common."""
    return [1.0 / (rank + offset) for rank in range(count)]


def female_surname(surname: str) -> str:
    """The female form of a male surname (Иванов -> Иванова, Вишневский -> Вишневская)."""
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    if surname.endswith("ский") or surname.endswith("цкий"):
        return surname[:-2] + "ая"
    if surname.endswith("ой"):
        return surname[:-2] + "ая"
    return surname  # Шевченко, Ким: indeclinable


# Fathers' names whose patronymic is not the regular one: (male, female).
_IRREGULAR_PATRONYMICS = {"Дмитрий": ("Дмитриевич", "Дмитриевна"),
                          "Георгий": ("Георгиевич", "Георгиевна"),
                          "Илья": ("Ильич", "Ильинична"), "Никита": ("Никитич", "Никитична")}


def patronymic(father: str, sex: str) -> str:
    """The patronymic from a father's first name (Сергей -> Сергеевич / Сергеевна,
    Юрий -> Юрьевич, Илья -> Ильич / Ильинична)."""
    irregular = _IRREGULAR_PATRONYMICS.get(father)
    if irregular is not None:
        return irregular[0] if sex == "m" else irregular[1]
    if father.endswith("ий"):
        stem = father[:-2] + "ьев"
    elif father.endswith(("ей", "ай")):
        stem = father[:-1] + "ев"
    else:
        stem = father + "ов"
    return stem + ("ич" if sex == "m" else "на")


def transliterate(text: str, system: str) -> str:
    """``text`` in Latin letters following one of :data:`SYSTEMS`.

    ``icao`` is the Russian passport standard, ``bgn`` a simplified BGN/PCGN without
    apostrophes, ``informal`` how people spell their own names (Alexey, Dmitry, Yulia).
    """
    letters = {**_BASE, **_SYSTEM_LETTERS[system]}
    lower = text.lower()
    if system == "informal":
        lower = _informal_endings(lower)
    out: list[str] = []
    for i, ch in enumerate(lower):
        latin = letters.get(ch, ch)
        if system == "bgn" and ch == "е" and (i == 0 or lower[i - 1] in _VOWELS
                                               or not lower[i - 1].isalpha()):
            latin = "ye"
        out.append(latin)
    return _same_case(text, "".join(out))


def _same_case(original: str, latin: str) -> str:
    if len(original) > 1 and original.isupper():
        return latin.upper()
    originals = original.replace("-", " ").split(" ")
    latins = latin.replace("-", " ").split(" ")
    if len(originals) != len(latins):
        return latin
    out = list(latin)
    pos = 0
    for orig_word, latin_word in zip(originals, latins, strict=True):
        if orig_word[:1].isupper() and latin_word:
            out[pos] = out[pos].upper()
        pos += len(latin_word) + 1
    return "".join(out)


def _informal_endings(lower: str) -> str:
    words = []
    for word in lower.split(" "):
        if word.endswith("ий"):
            word = word[:-2] + "y"
        elif word.endswith("ия"):
            word = word[:-2] + "ia"
        words.append(word[:1] + word[1:].replace("кс", "x"))  # Alexey, but Ksenia
    return " ".join(words)


def latin_spelling(cyrillic: str, rng: random.Random) -> str:
    """One plausible Latin spelling of a Cyrillic name, from a weighted mix of systems."""
    extra = EXTRA_LATIN.get(cyrillic)
    if extra and rng.random() < 0.2:
        return rng.choice(extra)
    system = rng.choices(SYSTEMS, weights=(0.35, 0.2, 0.45))[0]
    return transliterate(cyrillic, system)


def is_cyrillic(text: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in text)
