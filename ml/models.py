"""Model versions and the scores they give customers.

Only what segments need today is here: which version is active for a task, and each customer's
probability and decile under it. Training, the artifact and the metrics build on these rows.
"""

from django.db import models

from marketing.models import Customer


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    task = models.CharField(max_length=64, default="purchase_propensity", help_text="What the model predicts.")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    feature_names = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="model_version_unique"),
            # Scores are read from the active version: there is at most one per task.
            models.UniqueConstraint(fields=["task"], condition=models.Q(status="active"), name="one_active_model_per_task"),
        ]

    def __str__(self) -> str:
        return f"{self.task} v{self.version} ({self.status})"


class Score(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="scores", db_constraint=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    probability = models.FloatField()
    decile = models.PositiveSmallIntegerField(help_text="1 = the tenth most likely to act, 10 = the least.")
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "customer"], name="score_unique_per_version")]
        indexes = [models.Index(fields=["customer", "model_version"], name="score_customer_version")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.probability:.3f} (decile {self.decile})"
