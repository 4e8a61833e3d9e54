"""Metrics against small cases computed by hand."""

import math

import numpy as np
import pytest

from harness.checks import metrics as M


def test_cosine_known_angles():
    assert M.cosine([1, 0], [1, 0]) == pytest.approx(1.0)
    assert M.cosine([1, 0], [0, 2]) == pytest.approx(0.0)
    assert M.cosine([1, 1], [-1, -1]) == pytest.approx(-1.0)
    assert M.cosine([3, 4], [4, 3]) == pytest.approx(24 / 25)


def test_cosine_of_zero_vector_is_zero_not_nan():
    assert M.cosine([0, 0], [1, 0]) == 0.0


def test_cosine_matrix_shape_and_values():
    a = np.array([[1, 0], [0, 1]], dtype=np.float32)
    b = np.array([[1, 1], [1, 0], [0, 3]], dtype=np.float32)
    m = M.cosine_matrix(a, b)
    assert m.shape == (2, 3)
    assert m[0].tolist() == pytest.approx([1 / math.sqrt(2), 1, 0])
    assert m[1].tolist() == pytest.approx([1 / math.sqrt(2), 0, 1])


def test_rowwise_cosine():
    a = np.array([[1, 0], [0, 1]])
    b = np.array([[2, 0], [1, 0]])
    assert M.rowwise_cosine(a, b).tolist() == pytest.approx([1.0, 0.0])


def test_rank_is_stable_on_ties():
    assert M.rank([0.5, 0.9, 0.5, 0.1]) == [1, 0, 2, 3]


def test_recall_at_k():
    ranked = ["a", "b", "c", "d"]
    assert M.recall_at_k(ranked, {"b", "d"}, 1) == 0.0
    assert M.recall_at_k(ranked, {"b", "d"}, 2) == 0.5
    assert M.recall_at_k(ranked, {"b", "d"}, 4) == 1.0


def test_reciprocal_rank():
    assert M.reciprocal_rank(["a", "b", "c"], {"c"}) == pytest.approx(1 / 3)
    assert M.reciprocal_rank(["a", "b", "c"], {"a", "c"}) == 1.0
    assert M.reciprocal_rank(["a", "b"], {"z"}) == 0.0


def test_ndcg_by_hand():
    # relevant at ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    ranked = ["x", "a", "b", "y"]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert M.ndcg_at_k(ranked, {"a", "b"}, 3) == pytest.approx(dcg / ideal)
    # cut-off before the first relevant item
    assert M.ndcg_at_k(ranked, {"a", "b"}, 1) == 0.0
    # perfect ranking
    assert M.ndcg_at_k(["a", "b", "x"], {"a", "b"}, 10) == pytest.approx(1.0)


def test_metric_value_by_name_and_unknown_name():
    assert M.metric_value("recall@1", ["a", "b"], ["b"]) == 0.0
    assert M.metric_value("mrr", ["a", "b"], ["b"]) == 0.5
    with pytest.raises(ValueError, match="unknown metric"):
        M.metric_value("f1@3", ["a"], ["a"])


def test_metric_names_order_includes_thresholds():
    assert M.metric_names([5, 1], ["ndcg@10"]) == ["recall@1", "recall@5", "ndcg@1", "ndcg@5", "ndcg@10", "mrr"]


def test_retrieval_scores_means_and_exclusion():
    # two queries; candidates on the unit circle
    cands = np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    ids = ["east", "north", "west"]
    queries = np.array([[0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    means, per = M.retrieval_scores(queries, cands, ids, [["east"], ["west"]], ["recall@1", "mrr"])
    # q1 finds east first (rr 1); q2 ranks north, east, west -> west at 3 (rr 1/3)
    assert per[0] == {"recall@1": 1.0, "mrr": 1.0}
    assert per[1]["mrr"] == pytest.approx(1 / 3)
    assert means["recall@1"] == 0.5
    assert means["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    # excluding 'north' from q2's ranking lifts west to rank 2
    _, per = M.retrieval_scores(queries, cands, ids, [["east"], ["west"]], ["mrr"], exclude=[None, "north"])
    assert per[1]["mrr"] == 0.5
