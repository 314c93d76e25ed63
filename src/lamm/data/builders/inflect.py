"""English inflection of category names: plural, singular and the indefinite article.

Only the last word of a name is inflected (``traffic light`` → ``traffic lights``); irregular nouns
and the suffix rules' exceptions are tables, so a wrong form is fixed by adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable

_IRREGULAR = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "sheep": "sheep",
    "deer": "deer",
    "fish": "fish",
    "knife": "knives",
    "leaf": "leaves",
    "shelf": "shelves",
    "scissors": "scissors",
    "skis": "skis",
    "glasses": "glasses",
    "bus": "buses",
    "cactus": "cacti",
    "wolf": "wolves",
    "calf": "calves",
}


def plural(noun: str) -> str:
    """English plural of a category name (last word inflected): ``traffic light`` → ``traffic lights``.

    >>> [plural(w) for w in ("cat", "bus", "box", "person", "baby", "toy", "hot dog")]
    ['cats', 'buses', 'boxes', 'people', 'babies', 'toys', 'hot dogs']
    """
    return _on_last_word(noun, _plural_word)


def _on_last_word(noun: str, inflect: Callable[[str], str]) -> str:
    """``noun`` with its last word inflected (``traffic light`` → ``traffic`` + inflect(``light``))."""
    head, _, last = noun.rpartition(" ")
    word = inflect(last)
    return f"{head} {word}" if head else word


def _plural_word(last: str) -> str:
    low = last.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return last + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return last[:-1] + "ies"
    return last + "s"


# plural -> singular where the suffix rules below go wrong; invariant nouns map to themselves
_SINGULAR_IRREGULAR = {
    **{p: s for s, p in _IRREGULAR.items()},
    "glasses": "glasses",  # eyeglasses or drinking glasses: the plural is the safe reading of both
    "sunglasses": "sunglasses",
    "jeans": "jeans",
    "pants": "pants",
    "trousers": "trousers",
    "shorts": "shorts",
    "series": "series",
    "species": "species",
    "deers": "deer",
    "fishes": "fish",
    "sheeps": "sheep",
    "skis": "ski",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "loaves": "loaf",
    "halves": "half",
    "scarves": "scarf",
    "hooves": "hoof",
    "potatoes": "potato",
    "tomatoes": "tomato",
    "mangoes": "mango",
    "heroes": "hero",
    "echoes": "echo",
    "cookies": "cookie",
    "movies": "movie",
    "pies": "pie",
    "ties": "tie",
    "brownies": "brownie",
    "zombies": "zombie",
    "buses": "bus",
    "gases": "gas",
    "lenses": "lens",
    "cacti": "cactus",
    "fungi": "fungus",
    "dice": "die",
    "oxen": "ox",
    "lice": "louse",
}


def singular(noun: str) -> str:
    """English singular of a plural category name (last word inflected): ``sea shells`` → ``sea shell``.
    A name that does not read as a plural is returned as it is.

    >>> [singular(w) for w in ("sea shells", "apples", "strawberries", "boxes", "people", "cookies", "bus")]
    ['sea shell', 'apple', 'strawberry', 'box', 'person', 'cookie', 'bus']
    """
    return _on_last_word(noun, _singular_word)


def _singular_word(last: str) -> str:
    low = last.lower()
    if low in _SINGULAR_IRREGULAR:
        return _SINGULAR_IRREGULAR[low]
    if low.endswith("ies") and len(low) > 4:
        return last[:-3] + "y"
    if low.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return last[:-2]
    if low.endswith("s") and not low.endswith(("ss", "us", "is")):
        return last[:-1]
    return last


def is_plural(noun: str) -> bool:
    """Whether a category name reads as a plural (its singular differs, or it is an invariant plural)."""
    low = noun.rpartition(" ")[2].lower()
    return singular(noun) != noun or _SINGULAR_IRREGULAR.get(low) == low


def article(noun: str) -> str:
    """``a cat`` / ``an apple`` (by first letter; good enough for category names)."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
