"""Every bundle of the bad corpus (≥ 50) is refused with its own reason, nothing of it is left on disk,
and the good bundle it was made from is accepted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sdk.rollout.badbundles import check_corpus, make_corpus


def test_corpus_all_refused_with_expected_reason(bundles: dict[str, Path], keys: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    corpus = make_corpus(bundles["1.1.0"], keys[0], tmp_path / "corpus")
    reasons = Counter(r for _, r in corpus)
    assert len(corpus) >= 50
    for reason in ("unsigned", "bad_signature", "tampered", "untrusted_key", "truncated", "downgrade", "oversized",
                   "bomb", "path_traversal", "absolute_path", "link", "special_file", "duplicate",
                   "manifest_missing", "manifest_invalid", "model_invalid"):
        assert reasons[reason] >= 1, reason
    result = check_corpus(corpus, [keys[1]], good=bundles["1.1.0"])
    assert result["mismatched"] == [] and result["accepted"] == []
    assert result["refused"] == result["as_expected"] == len(corpus)
    assert result["good_accepted"] is True and result["leftovers"] == []
    assert not list((tmp_path / "corpus").parent.glob("evil")) and not Path("/tmp/evil").exists()
