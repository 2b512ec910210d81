"""``wiretape templatize``: find chained values in a recorded set and write them into its tests.

``wiretape record`` finds the same chains as it writes a set (``SetWriter``), so a fresh set replays
with its chains; this command runs detection again on an existing set (for example one recorded
before, or after editing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from wiretape.chains import detect
from wiretape.model import TestCase
from wiretape.store.reader import load_set, save_test


@dataclass(frozen=True, slots=True)
class Templatized:
    tests: int  # tests whose chains changed
    chains: int  # chained values in the whole set
    changed: tuple[TestCase, ...]  # the tests as they are (or would be) written


def templatize(set_path: Path, *, dry_run: bool = False) -> Templatized:
    test_set = load_set(set_path)
    found = detect(test_set.tests)
    changed = []
    for test in test_set.tests:
        chains = found.get(test.id, ())
        if chains != test.chains:
            changed.append(dataclasses.replace(test, chains=chains))
    if not dry_run:
        for test in changed:
            save_test(set_path, test)
    return Templatized(
        tests=len(changed),
        chains=sum(len(c) for c in found.values()),
        changed=tuple(changed),
    )
