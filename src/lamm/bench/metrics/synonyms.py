"""Shipped class-name synonym tables and the label matcher used by classification, detection and locating.

A label is *named* in an answer when the label itself or one of its synonyms occurs as whole words,
case-insensitively, optionally with a plural ``s``/``es`` ("cats", "buses"); ``_`` and ``-`` count as
spaces ("dining-table"). Tables cover the LAMM-Benchmark classes: CIFAR10, UCMerced, VOC2012 and the
18 ScanNet detection classes, plus CelebA hair colours. Labels not in the tables match their own name.

WordNet (optional, classification only): when ``nltk`` is importable *and* its WordNet data is already
on disk (never downloaded), the lemmas of the label's first noun synset and of all its hyponyms are added
("golden retriever" names a dog). Reports say which sources were used, because scores can differ.

>>> m = LabelMatcher(["diningtable", "person"])
>>> [(label, text) for _, _, label, text in m.find("Two men sit at the dining table.")]
[('person', 'men'), ('diningtable', 'dining table')]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
UCMERCED_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
SCANNET_CLASSES = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter",
    "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "garbage bin",
)  # fmt: skip

_PLANE = ("airplane", "aeroplane", "plane", "airliner", "jet", "aircraft")
# key: the label lower-cased with spaces, "_" and "-" removed; value: synonyms (the label is implied)
SYNONYMS: dict[str, tuple[str, ...]] = {
    # CIFAR10
    "airplane": _PLANE,
    "automobile": ("automobile", "car", "auto", "sedan", "motorcar", "suv"),
    "bird": ("bird", "sparrow", "ostrich", "eagle", "parrot", "hummingbird"),
    "cat": ("cat", "kitten", "kitty", "feline"),
    "deer": ("deer", "fawn", "doe", "stag", "elk", "moose", "reindeer", "antelope"),
    "dog": ("dog", "puppy", "pup", "canine", "hound"),
    "frog": ("frog", "toad", "bullfrog"),
    "horse": ("horse", "pony", "foal", "stallion", "mare"),
    "ship": ("ship", "boat", "vessel", "steamship", "liner", "tanker", "freighter", "cruise ship"),
    "truck": ("truck", "lorry", "pickup truck", "fire truck", "fire engine", "dump truck"),
    # VOC2012
    "aeroplane": _PLANE,
    "bicycle": ("bicycle", "bike", "cycle"),
    "boat": ("boat", "ship", "sailboat", "yacht", "canoe", "kayak", "vessel"),
    "bottle": ("bottle",),
    "bus": ("bus", "coach"),
    "car": ("car", "automobile", "taxi", "suv", "sedan"),
    "chair": ("chair", "armchair", "stool"),
    "cow": ("cow", "calf", "cattle", "bull", "ox", "oxen"),
    "diningtable": ("dining table", "table"),
    "motorbike": ("motorbike", "motorcycle", "scooter", "moped"),
    "person": (
        "person", "people", "man", "men", "woman", "women", "child", "children", "boy", "girl", "baby",
        "guy", "kid", "human", "kayaker", "rider", "player", "pedestrian", "lady", "gentleman",
    ),
    "pottedplant": ("potted plant", "plant", "houseplant", "flower pot"),
    "sheep": ("sheep", "lamb"),
    "sofa": ("sofa", "couch", "settee"),
    "train": ("train", "locomotive"),
    "tvmonitor": ("tv monitor", "tv", "television", "monitor", "computer monitor", "screen"),
    # ScanNet (chair, sofa as above)
    "cabinet": ("cabinet", "cupboard", "wardrobe", "dresser"),
    "bed": ("bed",),
    "table": ("table", "coffee table", "dining table"),
    "door": ("door",),
    "window": ("window",),
    "bookshelf": ("bookshelf", "bookshelves", "bookcase", "shelf", "shelves"),
    "picture": ("picture", "painting", "photo", "photograph", "poster", "artwork"),
    "counter": ("counter", "countertop"),
    "desk": ("desk",),
    "curtain": ("curtain", "drape"),
    "refrigerator": ("refrigerator", "fridge"),
    "showercurtain": ("shower curtain",),
    "toilet": ("toilet",),
    "sink": ("sink", "basin"),
    "bathtub": ("bathtub", "tub", "bath"),
    "garbagebin": ("garbage bin", "trash can", "trash bin", "garbage can", "wastebasket", "bin"),
    # UCMerced (airplane as above)
    "agricultural": ("agricultural", "agriculture", "farmland", "farm", "crop field", "cropland"),
    "baseballdiamond": ("baseball diamond", "baseball field"),
    "beach": ("beach",),
    "buildings": ("buildings", "building"),
    "chaparral": ("chaparral", "shrubland"),
    "denseresidential": ("dense residential",),
    "forest": ("forest", "woods"),
    "freeway": ("freeway", "highway"),
    "golfcourse": ("golf course",),
    "harbor": ("harbor", "harbour", "marina"),
    "intersection": ("intersection",),
    "mediumresidential": ("medium residential",),
    "mobilehomepark": ("mobile home park",),
    "overpass": ("overpass",),
    "parkinglot": ("parking lot",),
    "river": ("river",),
    "runway": ("runway",),
    "sparseresidential": ("sparse residential",),
    "storagetanks": ("storage tanks", "storage tank"),
    "tenniscourt": ("tennis court",),
}

#: CelebA hair colours: canonical colour → words that name it
HAIR_COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("black",),
    "blond": ("blond", "blonde", "golden", "yellow"),
    "brown": ("brown", "brunette", "chestnut"),
    "gray": ("gray", "grey", "white", "silver"),
    "red": ("red", "ginger", "auburn"),
    "bald": ("bald",),
}


#: other spellings of a class name in files in the wild → the key of the class (after the steps of
#: :func:`label_key`). VoteNet, mmdet3d and 3DETR spell ScanNet's "shower curtain" "showercurtrain".
KEY_SPELLINGS: dict[str, str] = {"showercurtrain": "showercurtain"}


def label_key(label: str) -> str:
    """Table key of a label: lower-case, without spaces, ``_`` and ``-`` ("Dining_table" → "diningtable"),
    with known misspellings mapped to their class (:data:`KEY_SPELLINGS`), so two labels of one class
    compare equal.

    >>> label_key("Dining_table"), label_key("showercurtrain") == label_key("shower curtain")
    ('diningtable', True)
    """
    key = re.sub(r"[\s_\-]+", "", str(label).lower())
    return KEY_SPELLINGS.get(key, key)


def _spaced(s: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(s).lower()).strip()


@functools.lru_cache(maxsize=1)
def wordnet_available() -> bool:
    """True when nltk is importable and its WordNet corpus is already installed (nothing is downloaded)."""
    try:
        import nltk  # noqa: F401  (optional; absent in the default install)
        from nltk.corpus import wordnet as wn

        wn.ensure_loaded()
    except (ImportError, LookupError, OSError):
        return False
    return True


@functools.lru_cache(maxsize=4096)
def wordnet_aliases(label: str) -> tuple[str, ...]:
    """Lemmas of the label's first noun synset and of its hyponym closure; ``()`` without WordNet."""
    if not wordnet_available():
        return ()
    from nltk.corpus import wordnet as wn

    synsets = wn.synsets(_spaced(label).replace(" ", "_"), pos=wn.NOUN)
    if not synsets:
        return ()
    first = synsets[0]
    names = set(first.lemma_names())
    for s in first.closure(lambda s: s.hyponyms()):
        names.update(s.lemma_names())
    return tuple(sorted(_spaced(n) for n in names))


def aliases(label: str, *, wordnet: bool = False) -> tuple[str, ...]:
    """Every phrase that names ``label`` (spaced, lower-case), the label itself first."""
    out = [_spaced(label)]
    out += [_spaced(a) for a in SYNONYMS.get(label_key(label), ())]
    if wordnet:
        out += list(wordnet_aliases(label))
    return tuple(dict.fromkeys(a for a in out if a))


class LabelMatcher:
    """Finds mentions of a fixed set of labels (with synonyms) in text, with their positions.

    A phrase that names several labels ("table" for both ``table`` and ``diningtable``) is given to the
    label whose own name it is, else to every label it names (``find`` reports the first, sorted).
    """

    def __init__(self, labels: Iterable[str], *, wordnet: bool = False) -> None:
        self.labels = tuple(dict.fromkeys(str(label) for label in labels))
        phrase_to: dict[str, list[str]] = {}
        for label in self.labels:
            for a in aliases(label, wordnet=wordnet):
                phrase_to.setdefault(a, []).append(label)
        self._to: dict[str, tuple[str, ...]] = {}
        for phrase, owners in phrase_to.items():
            exact = [o for o in owners if _spaced(o) == phrase]
            self._to[phrase] = tuple(exact or sorted(set(owners)))
        alts = sorted(self._to, key=len, reverse=True)
        body = "|".join(r"\s+".join(re.escape(w) for w in p.split(" ")) for p in alts) or r"(?!x)x"
        self._re = re.compile(rf"(?<![a-z0-9])({body})(?:e?s)?(?![a-z0-9])")

    def find(self, text: str) -> list[tuple[int, int, str, str]]:
        """Mentions as ``(start, end, label, matched_phrase)`` in text order."""
        if not isinstance(text, str) or not self._to:
            return []
        norm = re.sub(r"[_\-]", " ", text.lower())  # same length: positions stay valid in ``text``
        if len(norm) != len(text):  # a few characters change length when lower-cased (e.g. "İ")
            norm = "".join(c.lower()[:1] or " " for c in text).replace("_", " ").replace("-", " ")
        out = []
        for m in self._re.finditer(norm):
            phrase = re.sub(r"\s+", " ", m.group(1))
            out.append((m.start(), m.end(), self._to[phrase][0], phrase))
        return out

    def named(self, text: str) -> list[str]:
        """Every label named in ``text`` (all owners of each phrase), in order of first mention."""
        if not isinstance(text, str) or not self._to:
            return []
        norm = re.sub(r"[_\-]", " ", text.lower())
        seen: dict[str, None] = {}
        for m in self._re.finditer(norm):
            for label in self._to[re.sub(r"\s+", " ", m.group(1))]:
                seen.setdefault(label, None)
        return list(seen)


class ObjectVocabulary:
    """The classes a detection family recognises in answers: its fixed ``vocabulary`` plus every
    ground-truth ``object[].label`` of the records being scored (so an unseen class is still read).
    One :class:`LabelMatcher` is built and cached per resulting vocabulary."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = tuple(vocabulary)
        self._keys = {label_key(v) for v in self.vocabulary}
        self._matchers: dict[tuple[str, ...], LabelMatcher] = {}

    def matcher(self, records: Sequence[dict]) -> LabelMatcher:
        """The matcher for ``records``' ground-truth labels (objects without a string label are ignored)."""
        extra = sorted({o["label"] for r in records for o in (r.get("object") or [])
                        if isinstance(o, dict) and isinstance(o.get("label"), str)
                        and label_key(o["label"]) not in self._keys})
        vocab = self.vocabulary + tuple(extra)
        if vocab not in self._matchers:
            self._matchers[vocab] = LabelMatcher(vocab)
        return self._matchers[vocab]
