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
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


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
    found = []
    folded = fold(text)
    for region in taxonomy.regions:
        if any(_mentions_folded(folded, n) for n in (region.name, *region.aliases)):
            found.append(region.slug)
    return found


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
    folded = fold("\n".join((signals.title, *signals.tags, signals.lead)))
    return tuple(
        c.slug for c in taxonomy.categories if any(_mentions_folded(folded, k) for k in c.keywords)
    )


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
