"""The papers' numbers as data: the one table every study, the report and the widgets read.

:data:`PAPER` and :data:`CLAIMS`: Yang, Xu & Yu (2024); :data:`NEURAL_PAPER`: Kim, Mitchell & Wang (2026);
:data:`SPURIOUS_PAPER`: the spurious-bias family (IFBiD / Sialelli et al., Cohen et al., Zheng et al.).
Below, the relabeling paper's conventions.

``PAPER[study][key][metric]``: ``key`` is ``"dataset/features"`` in cfdkit's
names (``loan/tabular`` is the paper's "Loan, BoW"; ``*/embeddings`` is the
paper's "BERT").  Rates are fractions (61 % -> 0.61).  Data sets the paper
uses that are not available offline (``essays``, ``tweets``) are kept so the
report can list them as not reproduced.  Figures 2-6 have no numbers in the
text; their claims are in :data:`CLAIMS`.
"""

from __future__ import annotations

#: Numbers of Tables 2, 3/8, 4, 6, 7 and §3.4.
PAPER: dict = {
    # Table 2: found S_t, flip successful, successful ratio (= flip / found)
    "table2": {
        "loan/tabular": {"found_rate": 0.61, "flip_rate": 0.49, "success_ratio": 0.80},
        "sst2/bow": {"found_rate": 1.00, "flip_rate": 0.72, "success_ratio": 0.72},
        "sst2/embeddings": {"found_rate": 1.00, "flip_rate": 0.73, "success_ratio": 0.73},
        "essays/bow": {"found_rate": 0.77, "flip_rate": 0.40, "success_ratio": 0.52},
        "essays/embeddings": {"found_rate": 0.76, "flip_rate": 0.39, "success_ratio": 0.51},
        "hate-speech/bow": {"found_rate": 0.99, "flip_rate": 0.87, "success_ratio": 0.87},
        "hate-speech/embeddings": {"found_rate": 0.99, "flip_rate": 0.86, "success_ratio": 0.87},
        "tweets/bow": {"found_rate": 1.00, "flip_rate": 0.75, "success_ratio": 0.75},
        "tweets/embeddings": {"found_rate": 1.00, "flip_rate": 0.68, "success_ratio": 0.68},
    },
    # Table 3 / Table 8: average running time of Algorithm 1 per test point (ms, Apple M1 Pro)
    "table3": {
        "sst2/bow": {"ms_per_test_point": 19.04}, "sst2/embeddings": {"ms_per_test_point": 140.51},
        "essays/bow": {"ms_per_test_point": 160.01}, "essays/embeddings": {"ms_per_test_point": 265.09},
        "hate-speech/bow": {"ms_per_test_point": 103.70}, "hate-speech/embeddings": {"ms_per_test_point": 299.46},
        "tweets/bow": {"ms_per_test_point": 58.42}, "tweets/embeddings": {"ms_per_test_point": 260.75},
        "loan/tabular": {"ms_per_test_point": 63.97},
    },
    # Table 6: test accuracy and l2 of the models
    "table6": {
        "loan/tabular": {"accuracy": 0.79, "l2": 100}, "sst2/bow": {"accuracy": 0.79, "l2": 1000},
        "sst2/embeddings": {"accuracy": 0.82, "l2": 500}, "essays/bow": {"accuracy": 0.97, "l2": 1},
        "essays/embeddings": {"accuracy": 0.98, "l2": 10}, "hate-speech/bow": {"accuracy": 0.87, "l2": 10},
        "hate-speech/embeddings": {"accuracy": 0.89, "l2": 10}, "tweets/bow": {"accuracy": 0.70, "l2": 500},
        "tweets/embeddings": {"accuracy": 0.75, "l2": 1000},
    },
    # Table 4: 30 % label noise, misclassified test points; mean |S_t ∩ N| (noisy) and |S_t \ N| (normal)
    "table4": {
        "loan/tabular": {"mean_noisy_removal_alg1": 47.9, "mean_noisy_removal_alg2": 45.6, "mean_noisy_relabel": 11.6,
                         "mean_normal_removal_alg1": 30.6, "mean_normal_removal_alg2": 27.0, "mean_normal_relabel": 22.9},
        "sst2/bow": {"mean_noisy_removal_alg1": 1.8, "mean_noisy_removal_alg2": 1.8, "mean_noisy_relabel": 0.8,
                     "mean_normal_removal_alg1": 2.1, "mean_normal_removal_alg2": 2.1, "mean_normal_relabel": 1.3},
        "hate-speech/bow": {"mean_noisy_removal_alg1": 146.8, "mean_noisy_removal_alg2": 104.2, "mean_noisy_relabel": 55.8,
                            "mean_normal_removal_alg1": 31.9, "mean_normal_removal_alg2": 21.0, "mean_normal_relabel": 8.2},
    },
    # Table 7: clean training set, random test points; mean |S_t|
    "table7": {
        "loan/tabular": {"mean_size_removal_alg1": 965.4, "mean_size_removal_alg2": 440.4, "mean_size_relabel": 67.0},
        "sst2/bow": {"mean_size_removal_alg1": 712.8, "mean_size_removal_alg2": 636.8, "mean_size_relabel": 138.5},
        "hate-speech/bow": {"mean_size_removal_alg1": 768.6, "mean_size_removal_alg2": 411.6, "mean_size_relabel": 49.3},
    },
    # §3.4: mean share of S_t inside the biased set B, misclassified test points
    "tag-bias": {"loan/tabular": {"share_in_biased_tag_x": 0.60, "share_in_biased_tag_y": 0.23}},
}

#: Claims of the figures (no numbers in the text), by study and metric.
CLAIMS: dict = {
    "figure2": {"ip_relabel_largest_mean_abs_delta": "IP-relabel changes the test probability more than every other ranking (SST)"},
    "figure3": {"share_sets_below_2pct": "relabeling < 2 % of the training data 'can usually' flip a prediction (hate speech)"},
    "figure4": {"embeddings_larger": "BERT typically needs more relabeling than BoW LR on shared flipped points"},
    "figure5": {"spearman": "confident predictions can still have small |S_t| (no correlation value given)"},
    "noise-sweep": {"size_decreases_0_to_0.5": "|S_t| declines from noise 0 to 0.5",
                    "size_increases_0.5_to_0.9": "|S_t| increases from noise 0.5 to 0.9",
                    "accuracy_drop_0_to_0.3": "no noticeable accuracy decline from noise 0 to 0.3"},
}

#: Every metric name that can appear in ``reproduction.json``.
METRICS: dict = {
    "found_rate": "share of test points for which Algorithm 1 returned a set S_t (Table 2 'Found S_t')",
    "flip_rate": "share of all test points whose prediction flipped after relabeling S_t and retraining (Table 2 'Flip Successful')",
    "success_ratio": "flip_rate / found_rate (Table 2 'Successful Ratio')",
    "mean_size": "mean |S_t| over test points with a set",
    "median_size": "median |S_t| over test points with a set",
    "accuracy": "test accuracy of the fitted model at threshold tau (Table 6)",
    "ms_per_test_point": "Algorithm 1 wall time per test point in ms, scores + selection, no verification (Table 3/8)",
    "mean_noisy_<method>": "mean |S_t ∩ N| (training points whose label was flipped by the 30 % noise) on misclassified test points; method in relabel, removal_alg1, removal_alg2 (Table 4)",
    "mean_normal_<method>": "mean |S_t \\ N| on misclassified test points (Table 4)",
    "mean_size_<method>": "mean |S_t| on random test points, clean training labels (Table 7)",
    "share_in_biased_tag_x": "§3.4: mean share of S_t inside the biased set B, misclassified tag-X test points",
    "share_in_biased_tag_y": "§3.4: the same for tag-Y test points",
    "share_sets_below_2pct": "Figure 3: share of found sets with |S_t| < 2 % of the training set",
    "mean_size_pct": "Figure 3: mean |S_t| as % of the training set",
    "spearman": "Figure 5: Spearman correlation of |S_t| with |p - 0.5| over points with a set",
    "mean_size_bow": "Figure 4: mean |S_t| with BoW features on test points flipped under both feature sets",
    "mean_size_embeddings": "Figure 4: the same with embedding ('BERT') features",
    "embeddings_larger": "Figure 4: mean_size_embeddings > mean_size_bow (the paper's claim: true)",
    "mean_abs_delta_k<k>_<method>": "Figure 2: mean |P'(y=1) - P(y=1)| after relabeling the top-k of that ranking and retraining",
    "ip_relabel_largest_mean_abs_delta": "Figure 2: share of the k values at which ip_relabel has the largest mean |Δp| of all rankings",
    "mean_size_noise_<r>": "Figure 6: mean |S_t| (over seeds) with a share r of training labels flipped",
    "accuracy_noise_<r>": "Figure 6: test accuracy (mean over seeds) at noise ratio r",
    "size_decreases_0_to_0.5": "Figure 6: mean |S_t| at noise 0.5 < at noise 0",
    "size_increases_0.5_to_0.9": "Figure 6: mean |S_t| at noise 0.9 > at noise 0.5",
    "accuracy_drop_0_to_0.3": "Figure 6: accuracy at noise 0 minus accuracy at noise 0.3",
    "cfds_found_<ranking>": "neural table (Kim et al. Table 1): test cases with a counterfactual dataset found within budget m",
    "test_cases_<ranking>": "neural table: test cases searched for that data set",
    "cfds_found_total_<ranking>": "neural table: CFDs found summed over the data sets (paper: 174 of 1,113; random 70, L2 67)",
    "test_cases_total": "neural table: test cases summed over the data sets",
    "rank_s_per_test_<ranking>": "neural table (Table 2): ranking overhead per test input, seconds",
    "runtime_s_per_test_<ranking>": "neural table (Table 3): ranking + retraining per test input, seconds (batched retraining)",
    "minimal_found_rate": "share of test points with a verified minimal relabel set (RelabelAudit.minimal_sets: an exact, converged refit flips it)",
    "minimal_flip_rate": "share of all test points whose verified minimal set flips the prediction again when refit separately from the search (RelabelAudit.retrain_probabilities); at most minimal_found_rate",
    "median_estimated_size": "median Algorithm 1 |S_t| over test points with a set (same rows as minimal_sets)",
    "median_verified_size": "median size of the verified minimal (1-minimal) sets over test points with one",
    "median_lower_bound": "median certified lower bound on the number of relabels that can flip a test point",
    "n_test": "imbalanced case: test points searched in that setting",
    "median_lower_bound_found": "median certified lower bound over the test points with a verified set",
    "one_minimal_rate": "share of verified minimal sets that are 1-minimal (every leave-one-out refit converged and none flips)",
    "max_estimated_size_pct": "imbalanced case: the largest Algorithm 1 set as % of the training set",
    "minimal_n_test": "test points (seeded sample) on which the verified minimal sets of Table 2 were searched",
    "median_estimated_size_both": "median Algorithm 1 |S_t| over the test points that have both an Algorithm 1 set and a verified minimal set",
    "median_verified_size_both": "median verified minimal set size over the same test points",
    "positive_share": "imbalanced case: share of positive labels in the subsampled training set",
    "share_0_to_1": "imbalanced case: share of Algorithm 1's relabels that turn a 0 into a 1",
    "share_0_to_1_minimal": "imbalanced case: the same for the verified minimal sets",
    "share_predicted_positive": "imbalanced case: share of the sampled test points predicted positive at tau",
    "cfds_beating_placebo_<ranking>": "neural table: CFDs found whose specificity is >= 0.9, i.e. at most 10 % of random label sets of the same size from the same candidate pool also flip the prediction",
    "mean_specificity_<ranking>": "neural table: mean over found CFDs of 1 - share of random same-size label sets (same pool) that also flip the prediction",
    "placebo_flip_rate_random_k<k>": "neural table: mean over test cases of the share of random size-k label sets (candidate pool) whose retrained network flips the prediction",
    "placebo_flip_rate_seed": "neural table: mean over test cases of the share of other initialization seeds (original labels) that flip the prediction",
    "not_reproduced": "the paper's data set is not available offline (value: the reason)",
    # ifbid (Serna et al.; Sialelli et al.)
    "accuracy_sigma2_<s>": "ifbid: mean unbiased test accuracy of the zoo's models trained at colour jitter sigma2 = s",
    "color_score_sigma2_<s>": "ifbid: mean colour-score (Sialelli et al., Alg. 1; 1 = colour-blind, near 0 = colour only)",
    "detector_accuracy_4level_<detector>": "ifbid: accuracy of a weight-based detector at telling the 4 bias levels "
                                           "apart on held-out models",
    "detector_accuracy_2level_<detector>": "ifbid: the same for strong (0.02, 0.03) vs weak (0.04, 0.05) bias",
    "detector_accuracy_4level_<detector>_conv_only": "ifbid: 4-level accuracy reading the convolution layers only",
    "detector_generalization_<zoo>_4level_<detector>": "ifbid: 4-level accuracy on a zoo trained on other digits or "
                                                       "with a deeper architecture",
    "mitigation_delta_accuracy_<localisation>_<mitigation>": "ifbid Table III: change of unbiased accuracy",
    "mitigation_delta_color_score_<localisation>_<mitigation>": "ifbid Table III: change of the colour-score",
    # cf-alignment (Cohen, Blankemeier & Chaudhari): relative change (Eq. 3) with the colour classifier
    "rc_unbiased": "cf-alignment: relative change of a classifier trained on unbiased digits with the colour classifier",
    "rc_biased": "cf-alignment: the same for ERM trained at rho = 0.99 (colour = label in 99 % of training digits)",
    "rc_composed": "cf-alignment: the same for the Eq. 4 composition sigma(f_target) + 0.3 sigma(f_colour)",
    "rc_<method>": "cf-alignment: relative change with the colour classifier; method in erm, groupdro, jtt, flac",
    "auc_<method>": "cf-alignment: AUC on colour-conflicting test inputs",
    "wga_<method>": "cf-alignment / neurontune: worst-group accuracy (groups = label x spurious attribute)",
    # neurontune (Zheng, Ye & Zhang)
    "wga_erm": "neurontune: worst-group accuracy of the ERM model",
    "wga_neurontune": "neurontune: worst-group accuracy after masking the flagged neurons and retraining the head",
    "wga_neurontune_dagger": "neurontune: the same with the head retrained on the other validation half",
    "wga_control_nomask": "neurontune control: same head retraining, no neuron masked",
    "wga_control_randommask": "neurontune control: same head retraining, a random mask of the same size",
    "mean_acc_erm": "neurontune: mean accuracy of the ERM model", "mean_acc_neurontune": "neurontune: the same after regulation",
    "n_flagged": "neurontune: neurons flagged as biased (delta > lambda)",
    "jaccard_flagged_before_after_cfd": "bridge: Jaccard of the flagged neurons before/after retraining with a CFD's labels flipped",
    "delta_sfit_after_cfd": "bridge: change of SFit after retraining with a CFD's labels flipped",
    "cfd_mean_size_<ranking>": "bridge: mean size of the counterfactual datasets found with that ranking",
    "ls_rc_colour_before": "bridge: relative change (Eq. 3) of the colour classifier along the Latent Shift counterfactual",
    "delta_rc_colour_after_cfd": "bridge: change of that relative change after retraining with a CFD's labels flipped",
    "delta_rc_colour_after_random": "bridge control: the same after as many random label flips",
}


# Kim, Mitchell & Wang (NLDL 2026), Tables 1-3, as read from the authors' slides (shared/papers/cfd_nn_method.md §8).
#: dataset: (test cases, (ours, random, l2) found, (ours, random, l2) overhead s, (ours, random, l2) runtime s)
NEURAL_PAPER = {
    "salary": (10, (3, 1, 3), (0.04, 0.00, 0.01), (0.35, 0.31, 0.32)),
    "student": (121, (20, 13, 10), (0.07, 0.02, 0.03), (4.19, 4.35, 4.52)),
    "german": (182, (38, 17, 15), (0.08, 0.02, 0.04), (2.33, 2.56, 2.62)),
    "compas": (200, (27, 10, 5), (0.28, 0.12, 0.24), (14.83, 17.03, 17.18)),
    "default": (200, (18, 5, 8), (2.91, 1.52, 4.32), (133.82, 134.34, 122.55)),
    "bank": (200, (24, 9, 11), (3.22, 1.72, 5.04), (123.53, 143.85, 142.38)),
    "adult": (200, (44, 15, 15), (5.73, 3.26, 9.35), (195.81, 206.90, 206.32)),
}
NEURAL_PAPER_TOTAL = {"test_cases": 1113, "combined": 174, "random": 70, "l2_distance": 67}


# ---------------------------------------------------------------------------------------------------------------
# The spurious-bias family: IFBiD / "Mirror, mirror" (Sialelli et al.), CF alignment (Cohen et al.), NeuronTune
# (Zheng et al.).  Keys are the records' metric names.

#: Sialelli et al., Table III: (delta accuracy, delta colour-score) per (localisation, mitigation).
IFBID_TABLE3 = {
    ("fgsm", "reset_layer"): (-0.4031, -0.0497), ("fgsm", "reset_neuron"): (-0.4015, 0.4949),
    ("fgsm", "dropout"): (0.0, 0.0), ("fgsm", "finetune"): (0.0328, 0.0143), ("fgsm", "step"): (-0.0039, -0.0013),
    ("gm", "reset_layer"): (-0.4013, -0.0227), ("gm", "reset_neuron"): (-0.3741, 0.1064),
    ("gm", "dropout"): (-0.0011, -0.0010), ("gm", "finetune"): (0.0314, 0.0131), ("gm", "step"): (0.0003, 0.0),
}

#: Paper values. Accuracy: mean over digits of the IFBiD README's per-digit unbiased accuracy (DigitWdb, MNIST
#: 28x28); detectors: Sialelli et al. Table I (re-shuffled split / original split), Table II (conv only),
#: Table IV (generalisation set); colour-scores and 2-level accuracies are not given as numbers.
IFBID_PAPER = {
    **{f"accuracy_sigma2_{s}": v for s, v in zip((0.02, 0.03, 0.04, 0.05), (0.445, 0.610, 0.746, 0.842))},  # σ² levels
    "detector_accuracy_4level_pca_knn": 1.0, "detector_accuracy_4level_conv1x1": 0.566,
    "detector_accuracy_4level_conv1x1_dense": 1.0, "detector_accuracy_4level_dense": 0.445,
    "detector_accuracy_4level_dense_dense": 0.99, "detector_accuracy_4level_rnn": 1.0,
    "detector_accuracy_4level_pca_knn_conv_only": 0.30233, "detector_accuracy_4level_rnn_conv_only": 0.368,
    "detector_generalization_other_digits_4level_pca_knn": 0.4945,
    "detector_generalization_other_digits_4level_conv1x1": 0.28,
    "detector_generalization_other_digits_4level_conv1x1_dense": 0.32,
    "detector_generalization_other_digits_4level_dense": 0.24,
    "detector_generalization_other_digits_4level_dense_dense": 0.26,
    "detector_generalization_other_digits_4level_rnn": 0.302,
    "detector_generalization_deeper_4level_pca_knn": 0.24, "detector_generalization_deeper_4level_conv1x1": 0.25,
    "detector_generalization_deeper_4level_conv1x1_dense": 0.39, "detector_generalization_deeper_4level_dense": 0.31,
    "detector_generalization_deeper_4level_dense_dense": 0.26,
    **{f"mitigation_delta_accuracy_{lo}_{me}": v[0] for (lo, me), v in IFBID_TABLE3.items()},
    **{f"mitigation_delta_color_score_{lo}_{me}": v[1] for (lo, me), v in IFBID_TABLE3.items()},
}

#: Cohen et al. (CF alignment): the values its records are compared with (None: no counterpart).
CF_ALIGNMENT_PAPER = {
    "rc_unbiased": 0.01,   # Fig. 4a: smiling vs arched_eyebrows, unchanged classifier
    "rc_composed": 0.97,   # Fig. 4b: smiling + 0.3 arched_eyebrows
    "rc_biased": 0.35,     # Table 1: Waterbird baseline vs water classifier
    "rc_erm": 0.35, "auc_erm": 0.69,            # Table 1 baseline
    "rc_groupdro": 0.25, "auc_groupdro": 0.92,  # Table 1 GroupDRO
    "rc_jtt": 0.42, "auc_jtt": None,            # Table 1 JTT (AUC garbled in the extraction)
    "rc_flac": -0.039, "auc_flac": 0.93,        # Table 3, alpha = 30000 (vs male classifier)
    "wga_erm": None, "wga_groupdro": None, "wga_jtt": None, "wga_flac": None,
}

#: The paper's worst-group accuracies [SEC], ERM → NeuronTune (→ NeuronTune†), as context only.
NEURONTUNE_PAPER_WGA = {
    "Waterbirds": (72.6, 92.2, 92.5), "CelebA": (47.2, 83.1, 87.3),
    "MultiNLI": (67.9, 72.1, 72.5), "CivilComments": (57.4, 82.4, 82.7),
}
#: Which paper benchmark each cfdkit data set stands in for (context column of the records).
NEURONTUNE_CONTEXT = {"colored-digits": "Waterbirds", "planted-tabular": "CelebA", "planted-text": "CivilComments"}

#: The spurious family's paper numbers in one table, by study.
SPURIOUS_PAPER = {"ifbid": IFBID_PAPER, "ifbid-table3": IFBID_TABLE3, "cf-alignment": CF_ALIGNMENT_PAPER,
                  "neurontune": NEURONTUNE_PAPER_WGA, "neurontune-context": NEURONTUNE_CONTEXT}


def paper_records() -> list[dict]:
    """The paper's numbers as flat records ``{study, dataset, features, metric, paper}``."""
    out = []
    for study, table in PAPER.items():
        for key, metrics in table.items():
            ds, feats = key.split("/")
            for metric, value in metrics.items():
                out.append({"study": study, "dataset": ds, "features": feats, "metric": metric, "paper": value})
    return out


def paper_value(study: str, dataset: str, features: str, metric: str):
    """One number of :data:`PAPER`, or None."""
    return PAPER.get(study, {}).get(f"{dataset}/{features}", {}).get(metric)
