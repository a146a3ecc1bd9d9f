"""Pure decisions: which regions and categories an article belongs to, and
whether it is an advertorial. No I/O; everything comes in as arguments.

Region precedence: explicit metadata and the dateline city (the strongest
signal) win; otherwise the source's default region, refined by any of its
sub-regions named in the title or lead; otherwise regions named in the title
or lead. A city always implies its province.

Category precedence: explicit metadata (slug or name) plus the source default;
when neither gives one, keyword rules (whole words, case-insensitive) over the
title, tags and lead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from kabarfeed.models import Taxonomy

_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
ADVERTORIAL_TERMS = frozenset(
    {"adv", "advertorial", "iklan", "sponsored", "konten bersponsor", "sponsor", "paid"}
)


@dataclass(frozen=True, slots=True)
class Signals:
    """What classification looks at, extracted from a raw article."""

    title: str
    lead: str = ""
    dateline_city: str | None = None
    explicit_regions: tuple[str, ...] = ()
    explicit_categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    explicit_advertorial: bool | None = None
    source_region: str | None = None
    source_category: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome: region and category slugs (ordered), advertorial flag."""

    regions: tuple[str, ...]
    categories: tuple[str, ...]
    advertorial: bool


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for matching."""
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(text.casefold().split())


@dataclass(frozen=True, slots=True)
class _Matcher:
    """One compiled alternation of many terms, mapping each hit to slugs."""

    pattern: re.Pattern[str] | None
    slugs_by_term: dict[str, tuple[str, ...]]

    def find(self, folded_text: str) -> list[str]:
        """Slugs of every term found in ``folded_text``, in term-definition order."""
        if self.pattern is None:
            return []
        hits = {m[0] for m in self.pattern.finditer(folded_text)}
        found: list[str] = []
        for term, slugs in self.slugs_by_term.items():
            if term in hits:
                found.extend(s for s in slugs if s not in found)
        return found


def _matcher(terms: Iterable[tuple[str, str]]) -> _Matcher:
    by_term: dict[str, tuple[str, ...]] = {}
    for slug, term in terms:
        key = fold(term)
        if key and slug not in by_term.get(key, ()):
            by_term[key] = (*by_term.get(key, ()), slug)
    if not by_term:
        return _Matcher(None, {})
    alternation = "|".join(re.escape(t) for t in sorted(by_term, key=len, reverse=True))
    return _Matcher(re.compile(rf"(?<!\w)(?:{alternation})(?!\w)"), by_term)


@lru_cache(maxsize=16)
def _region_matcher(taxonomy: Taxonomy) -> _Matcher:
    return _matcher((r.slug, n) for r in taxonomy.regions for n in (r.name, *r.aliases))


@lru_cache(maxsize=16)
def _keyword_matcher(taxonomy: Taxonomy) -> _Matcher:
    return _matcher((c.slug, k) for c in taxonomy.categories for k in c.keywords)


@lru_cache(maxsize=4096)
def _word_pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(fold(term)) + r"(?!\w)")


def mentions(text: str, term: str) -> bool:
    """Whether ``term`` occurs in ``text`` as whole words (folded)."""
    return _mentions_folded(fold(text), term)


def _mentions_folded(folded_text: str, term: str) -> bool:
    folded_term = fold(term)
    return bool(folded_term) and _word_pattern(folded_term).search(folded_text) is not None


def region_for_name(taxonomy: Taxonomy, name: str) -> str | None:
    """The region whose slug, name or alias equals ``name`` (folded), if any."""
    key = fold(name).replace("-", " ")
    for region in taxonomy.regions:
        names = (region.slug.replace("-", " "), region.name, *region.aliases)
        if key in {fold(n) for n in names}:
            return region.slug
    # "Kota Balikpapan", "Kabupaten Kutai Kartanegara": strip the admin prefix.
    for prefix in ("kota ", "kabupaten ", "kab. ", "provinsi ", "prov. "):
        if key.startswith(prefix):
            return region_for_name(taxonomy, key.removeprefix(prefix))
    return None


def category_for_name(taxonomy: Taxonomy, name: str) -> str | None:
    """The category whose slug or name equals ``name`` (folded), if any."""
    key = fold(name).replace("-", " ")
    for category in taxonomy.categories:
        if key in {fold(category.slug.replace("-", " ")), fold(category.name)}:
            return category.slug
    return None


def _with_ancestors(taxonomy: Taxonomy, slugs: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for slug in slugs:
        for s in (slug, *taxonomy.ancestors(slug)):
            if s not in out:
                out.append(s)
    return tuple(out)


def _named_regions(taxonomy: Taxonomy, text: str) -> list[str]:
    found = _region_matcher(taxonomy).find(fold(text))
    order = {r.slug: i for i, r in enumerate(taxonomy.regions)}
    return sorted(found, key=order.__getitem__)


def decide_regions(taxonomy: Taxonomy, signals: Signals) -> tuple[str, ...]:
    """Region slugs for an article, most specific signal first, ancestors added."""
    direct = [r for r in (region_for_name(taxonomy, n) for n in signals.explicit_regions) if r]
    if signals.dateline_city:
        city = region_for_name(taxonomy, signals.dateline_city)
        if city:
            direct.append(city)
    if not direct:
        named = _named_regions(taxonomy, f"{signals.title}\n{signals.lead}")
        default = signals.source_region if taxonomy.region(signals.source_region or "") else None
        if default:
            inside = set(taxonomy.descendants(default))
            direct = [default, *(n for n in named if n in inside)]
        else:
            direct = named
    return _with_ancestors(taxonomy, direct)


def decide_categories(taxonomy: Taxonomy, signals: Signals) -> tuple[str, ...]:
    """Category slugs: explicit and source default, else keyword rules."""
    found: list[str] = []
    for name in signals.explicit_categories:
        slug = category_for_name(taxonomy, name)
        if slug and slug not in found:
            found.append(slug)
    default = signals.source_category
    if default and taxonomy.category(default) and default not in found:
        found.append(default)
    if found:
        return tuple(found)
    text = "\n".join((signals.title, *signals.tags, signals.lead))
    matched = set(_keyword_matcher(taxonomy).find(fold(text)))
    return tuple(c.slug for c in taxonomy.categories if c.slug in matched)


def decide_advertorial(signals: Signals) -> bool:
    """Explicit flag or sign-off wins; else an advertorial-like category or tag."""
    if signals.explicit_advertorial is not None:
        return signals.explicit_advertorial
    terms = (*signals.explicit_categories, *signals.tags)
    return any(fold(t) in ADVERTORIAL_TERMS for t in terms)


def classify(taxonomy: Taxonomy, signals: Signals) -> Classification:
    """All three decisions at once."""
    return Classification(
        regions=decide_regions(taxonomy, signals),
        categories=decide_categories(taxonomy, signals),
        advertorial=decide_advertorial(signals),
    )
