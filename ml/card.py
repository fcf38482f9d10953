"""The model card: what a model version predicts, from what, how well, for whom, and its limits.

Pure: built from plain facts at training time and stored with the version, so the card always
describes the artifact next to it.
"""

from typing import Any

from ml.evaluation import METRIC_LABELS

BASELINE_LABELS = {"recency": "recency rank", "logistic": "logistic regression", "bgnbd": "BG/NBD"}
COLUMNS = (("model", "Model"), ("recency", "Recency rank"), ("logistic", "Logistic regression"), ("bgnbd", "BG/NBD"))


def weighting(half_life_days: int | None) -> str:
    """Say how snapshots were weighed in the fit."""
    if half_life_days is None:
        return "every snapshot weighs the same"
    return f"older snapshots weigh half as much every {half_life_days} days"


def model_card(facts: dict[str, Any]) -> str:
    """Return the card as Markdown text from the version's facts."""
    metrics, fairness = facts["metrics"], facts.get("fairness") or {}
    columns = [(key, label) for key, label in COLUMNS if key in metrics]
    refit = facts.get("refit_cutoffs") or []
    lines = [
        f"# Purchase propensity, version {facts['version']}",
        "",
        "## What it predicts",
        f"The probability that a customer places an order (not cancelled or refunded) within {facts['horizon_days']} "
        "days of the moment their features are read. Scores rank customers for targeting; they are not a promise.",
        "",
        "## Data",
        f"- Trained on data up to {facts['as_of']:%Y-%m-%d %H:%M} UTC only.",
        f"- Tuning snapshots (cutoffs): {', '.join(s['cutoff'][:10] for s in metrics['snapshots'] if s['role'] == 'training')}.",
        f"- Validation snapshot: cutoff {facts['validation_cutoff']:%Y-%m-%d}, the most recent whose "
        f"{facts['horizon_days']}-day outcome is complete; never a random split.",
        f"- Customers per snapshot: {', '.join(str(s['customers']) for s in metrics['snapshots'])}; "
        f"buyers in the validation window: {metrics['model']['positives']}.",
        f"- {len(facts['feature_names'])} features: recency, frequency and spend in 7/30/90/365-day windows, tenure "
        "since the first sign of life, time between orders, spend trend, basket size, category mix, returns, "
        "browsing, cart and e-mail engagement, and the BG/NBD model's chance that the customer is still active and "
        "orders within the horizon. Gender, age and country are never features.",
        "",
        "## How the shipped model was made",
        f"The configuration and its number of trees ({facts['best_iteration']}) were chosen on the validation snapshot; "
        "the model averages the raw scores of three boosters of it trained with different seeds. "
        f"The shipped model was then refit with them on every complete snapshot, {len(refit)} cutoffs from "
        f"{refit[0]:%Y-%m-%d} to {refit[-1]:%Y-%m-%d}, the validation one included, so that it learns from the "
        f"freshest outcomes ({weighting(facts.get('half_life_days'))}). The figures below are those of the chosen "
        "configuration on the validation snapshot; "
        "`backtest_propensity` judges the shipped model itself, out of time."
        if refit
        else f"LightGBM, {facts['best_iteration']} trees.",
        "",
        "## Performance on the validation snapshot",
        "| Metric | " + " | ".join(label for _, label in columns) + " | |",
        "|" + "---|" * (len(columns) + 2),
    ]
    for key, label, direction in METRIC_LABELS:
        row = [f"{metrics[name][key]:.4f}" for name, _ in columns]
        lines.append(f"| {label} | {' | '.join(row)} | {direction} is better |")
    verdict = "beats" if facts["beats_baselines"] else "does NOT beat"
    baselines = [BASELINE_LABELS[name] for name, _ in columns if name != "model"]
    lines += [
        "",
        f"The model {verdict} every baseline ({', '.join(baselines)}) on ROC AUC and log loss. "
        f"{metrics.get('calibration_note', '')}.",
    ]
    if facts.get("bgnbd"):
        params = facts["bgnbd"]
        lines.append(
            f"BG/NBD (Fader, Hardie & Lee, 2005) fitted on the validation snapshot's histories, in days: r = {params['r']:.4g}, "
            f"α = {params['alpha']:.4g}, a = {params['a']:.4g}, b = {params['b']:.4g}. Customers who never ordered get "
            "the observed buy rate of such customers."
        )
    lines += [
        "",
        "## Most important features (gain)",
        *[f"- {name}" for name, _ in facts["importance"][:8]],
        "",
        "## Fairness",
    ]
    warnings = fairness.get("warnings") or []
    if not fairness:
        lines.append("No fairness report: the store records no gender, age or country.")
    elif warnings:
        lines += ["Where the model treats groups differently beyond what their buying explains:", *[f"- {warning}" for warning in warnings]]
    else:
        lines.append(
            "No group's true-positive rate falls below four fifths of the best-served group's, and the model is "
            "calibrated within every group it can judge."
        )
    lines += [
        "",
        "## Limits",
        "- Customers with little history get scores driven by tenure and engagement alone.",
        "- A store whose buying pattern shifts (a sale, a new catalogue) drifts from the training window; retrain and "
        "compare before activating.",
        "- Reasons are SHAP contributions on the log-odds scale, computed when asked for: they explain the model, not "
        "the customer.",
    ]
    return "\n".join(lines) + "\n"
