"""The model card: what a model version predicts, from what, how well, for whom, and its limits.

Pure: built from plain facts at training time and stored with the version, so the card always
describes the artifact next to it.
"""

from typing import Any

from ml.evaluation import METRIC_LABELS


def model_card(facts: dict[str, Any]) -> str:
    """Return the card as Markdown text from the version's facts."""
    metrics, fairness = facts["metrics"], facts.get("fairness") or {}
    lines = [
        f"# Purchase propensity, version {facts['version']}",
        "",
        "## What it predicts",
        f"The probability that a customer places an order (not cancelled or refunded) within {facts['horizon_days']} "
        "days of the moment their features are read. Scores rank customers for targeting; they are not a promise.",
        "",
        "## Data",
        f"- Trained on data up to {facts['as_of']:%Y-%m-%d %H:%M} UTC only.",
        f"- Training snapshots (cutoffs): {', '.join(s['cutoff'][:10] for s in metrics['snapshots'] if s['role'] == 'training')}.",
        f"- Validation snapshot: cutoff {facts['validation_cutoff']:%Y-%m-%d}, the most recent whose "
        f"{facts['horizon_days']}-day outcome is complete; never a random split.",
        f"- Customers per snapshot: {', '.join(str(s['customers']) for s in metrics['snapshots'])}; "
        f"buyers in the validation window: {metrics['model']['positives']}.",
        f"- {len(facts['feature_names'])} features: recency, frequency and spend in 7/30/90/365-day windows, tenure, "
        "time between orders, spend trend, basket size, category mix, returns, and browsing, cart and e-mail "
        "engagement. Gender, age and country are never features.",
        "",
        "## Performance on the validation snapshot",
        "| Metric | Model | Recency rank | Logistic regression | |",
        "|---|---|---|---|---|",
    ]
    for key, label, direction in METRIC_LABELS:
        row = [f"{metrics[name][key]:.4f}" for name in ("model", "recency", "logistic")]
        lines.append(f"| {label} | {' | '.join(row)} | {direction} is better |")
    verdict = "beats" if facts["beats_baselines"] else "does NOT beat"
    lines += [
        "",
        f"The model {verdict} both baselines on ROC AUC and log loss. {metrics.get('calibration_note', '')}.",
        f"LightGBM, {facts['best_iteration']} trees (early stopping on the validation snapshot).",
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
        lines += ["Selection-rate warnings (four-fifths rule):", *[f"- {warning}" for warning in warnings]]
    else:
        lines.append(
            "No group's selection rate is below four fifths of the highest, at the top decile or the threshold."
        )
    lines += [
        "",
        "## Limits",
        "- Customers with little history get scores driven by tenure and engagement alone.",
        "- A store whose buying pattern shifts (a sale, a new catalogue) drifts from the training window; retrain and "
        "compare before activating.",
        "- Reasons are SHAP contributions on the log-odds scale: they explain the model, not the customer.",
    ]
    return "\n".join(lines) + "\n"
