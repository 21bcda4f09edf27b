"""Ranking by Delta_OT with ties, explanations, mean FD rank and metric-hacking flags."""

import pytest

from featsel.diagnostics import metric_hacking_flags
from featsel.ranking import CandidateScores, mean_fd_rank, rank_candidates


def _c(name, mean, half, **kw):
    return CandidateScores(name, {0.05: {"mean": mean, "ci_low": mean - half,
                                         "ci_high": mean + half}}, **kw)


def test_order_ties_and_explanations():
    cands = [_c("identity", 0.9, 0.02, effective_rank=40.0),
             _c("pca", 0.3, 0.05, effective_rank=8.0, same_class_mass=0.8, chance_mass=0.1),
             _c("vit", 0.33, 0.02, effective_rank=20.0)]
    flags = metric_hacking_flags({"vit": {"inception": 0.97, "vit": 1.0}, "pca": {"inception": 0.2}})
    r = rank_candidates(cands, tau=0.05, flags=flags)
    assert r.order == ["pca", "vit", "identity"]
    assert r.candidates[0].tied_with == ["vit"] and r.candidates[2].tied_with == []
    assert r.candidates[0].explanation.startswith("1st of 3; lowest Delta_OT 0.3")
    assert "tied with vit" in r.candidates[0].explanation
    assert "not independent evidence for inception, vit" in r.candidates[1].explanation
    df = r.to_frame()
    assert list(df["candidate"]) == r.order and "explanation" in df.columns
    d = r.to_dict()
    assert d["order"] == r.order and len(d["flags"]) == 2


def test_flags_rules():
    flags = metric_hacking_flags({"a": {"e1": 0.95, "e2": 0.5}}, threshold=0.9,
                                 fingerprints={"a": "x", "e2": "x"})
    got = {(f.candidate, f.evaluation) for f in flags}
    assert got == {("a", "e1"), ("a", "e2")}
    assert "same network" in [f for f in flags if f.evaluation == "e2"][0].reason
    with pytest.raises(ValueError, match="threshold"):
        metric_hacking_flags({}, threshold=2.0)


def test_mean_fd_rank_table4():
    fd = {"pca": {"m1": 1.0, "m2": 3.0}, "scvi": {"m1": 2.0, "m2": 2.0},
          "ambient": {"m1": 3.0, "m2": 1.0}, "x": {"m1": 0.5, "m2": 0.5}}
    assert mean_fd_rank(fd) == {"pca": 3.0, "scvi": 3.0, "ambient": 3.0, "x": 1.0}
    r = rank_candidates([_c(n, i / 10, 0.01, fd=fd[n]) for i, n in enumerate(fd)])
    assert r.mean_fd_rank["x"] == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one"):
        rank_candidates([])
    with pytest.raises(ValueError, match="unique"):
        rank_candidates([_c("a", 0.1, 0.1), _c("a", 0.2, 0.1)])
    with pytest.raises(ValueError, match="tau=0.2"):
        rank_candidates([_c("a", 0.1, 0.1)], tau=0.2)


def test_tied_recommendation_is_named_with_how_to_break_it():
    # pca and vit overlap; the control overlaps pca too; identity is separated
    cands = [_c("pca", 0.30, 0.05), _c("vit", 0.33, 0.02), _c("identity", 0.9, 0.02),
             _c("noise:dim=1", 0.34, 0.05, control=True)]
    r = rank_candidates(cands, repeats_option="--repeats")
    assert r.recommended is None  # the control sits above a real candidate (identity)
    assert r.tied_best == [] and r.tie_break == ""
    r = rank_candidates(cands[:3] + [_c("noise:dim=1", 1.5, 0.01, control=True)],
                        repeats_option="--repeats")
    assert r.recommended == "pca" and r.tied_best == ["vit"] and r.tied_controls == []
    assert "--repeats" in r.tie_break and "featsel validate --featurizers pca,vit" in r.tie_break
    d = r.to_dict()
    assert d["tied_best"] == ["vit"] and d["tie_break"] == r.tie_break
    # no option adds draws to this criterion: only training separates them
    assert "--repeats" not in rank_candidates(cands[:3]).tie_break
    # separated: no tie, no advice
    r = rank_candidates([_c("pca", 0.3, 0.01), _c("vit", 0.5, 0.01)])
    assert r.tied_best == [] and r.tie_break == ""


def test_flag_summary_says_what_the_flags_change():
    flags = metric_hacking_flags({"a": {"e1": 0.95, "e2": 0.99}, "b": {"e1": 0.97, "e2": 0.1}})
    r = rank_candidates([_c("a", 0.1, 0.01), _c("b", 0.2, 0.01)], flags=flags,
                        evaluations=["e1", "e2"])
    assert r.flag_summary == {"pairs": 4, "flagged": 3, "same_network": 0,
                              "evaluations_all_flagged": ["e1"],
                              "candidates_all_flagged": ["a"], "recommended_flagged": ["e1", "e2"]}
    assert r.to_dict()["flag_summary"] == r.flag_summary


def test_low_effective_rank_recommendation_carries_a_caution():
    # identity is recommended (lowest value) with effective rank 0.98: a caution, not a switch
    cands = [_c("identity", 0.1, 0.01, effective_rank=0.98),
             _c("pca", 0.5, 0.01, effective_rank=12.0)]
    r = rank_candidates(cands, tau=0.05)
    assert r.recommended == "identity"
    assert r.caution.startswith("identity has effective rank 0.98 (below 2)")
    assert r.to_dict()["caution"] == r.caution
    # at the threshold or above, or without an effective rank: no caution
    for er in (2.0, 12.0, None):
        cands[0] = _c("identity", 0.1, 0.01, effective_rank=er)
        assert rank_candidates(cands, tau=0.05).caution == ""
    # the caution is about the recommendation only: a low-rank runner-up gets none
    cands = [_c("pca", 0.1, 0.01, effective_rank=12.0), _c("px", 0.5, 0.01, effective_rank=1.0)]
    assert rank_candidates(cands, tau=0.05).caution == ""


def test_a_vae_encoder_recommendation_carries_a_caution():
    # the MLP VAE couplings of the studies: ranked first without training, trained worst
    cands = [_c("runs/vae3/featurizer.pt", 0.1, 0.01, effective_rank=2.9, kind="mlp-vae"),
             _c("pca:dim=3", 0.3, 0.01, effective_rank=3.0, kind="pca")]
    r = rank_candidates(cands, tau=0.05)
    assert r.recommended == "runs/vae3/featurizer.pt"
    assert r.caution.startswith("runs/vae3/featurizer.pt is a mlp-vae encoder")
    assert r.caution.endswith("confirm it with featsel select before training it in full")
    # with a low effective rank too: both, the rank one first
    cands[0] = _c("runs/vae3/featurizer.pt", 0.1, 0.01, effective_rank=1.5, kind="mlp-vae")
    c = rank_candidates(cands, tau=0.05).caution
    assert c.startswith("runs/vae3/featurizer.pt has effective rank 1.50") and "; also " in c
    # other kinds, no kind, or a VAE that is not the recommendation: none
    for kind in ("pca", None):
        cands[0] = _c("runs/vae3/featurizer.pt", 0.1, 0.01, effective_rank=2.9, kind=kind)
        assert rank_candidates(cands, tau=0.05).caution == ""
    cands = [_c("pca:dim=3", 0.1, 0.01, effective_rank=3.0, kind="pca"),
             _c("vae", 0.3, 0.01, effective_rank=2.9, kind="mlp-vae")]
    assert rank_candidates(cands, tau=0.05).caution == ""
