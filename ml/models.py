"""Model versions, the scoring runs that apply them, and the scores they give customers.

A version row holds everything needed to use, judge and roll back a model without a deploy: the
artifact itself, the feature names in order, the parameters, the metrics of the model and of its
baselines, the fairness report and a generated model card. Every score row names its version, so
activating an earlier version restores its scores at once.
"""

from django.db import models
from django.db.models import Q

from marketing.models import Customer

PURCHASE_PROPENSITY = "purchase_propensity"


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelVersionQuerySet(models.QuerySet):
    def active(self, task: str = PURCHASE_PROPENSITY) -> "ModelVersionQuerySet":
        return self.filter(task=task, status=ModelStatus.ACTIVE)


class ModelVersion(models.Model):
    task = models.CharField(max_length=64, default=PURCHASE_PROPENSITY, help_text="What the model predicts.")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    horizon_days = models.PositiveIntegerField(default=90, help_text="Predicts an order within this many days.")
    as_of = models.DateTimeField(null=True, blank=True, help_text="Trained on data up to this moment only.")
    training_from = models.DateTimeField(null=True, blank=True, help_text="Cutoff of the oldest training snapshot.")
    training_to = models.DateTimeField(null=True, blank=True, help_text="Cutoff of the validation snapshot.")
    feature_names = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    fairness = models.JSONField(default=dict, blank=True)
    beats_baselines = models.BooleanField(default=False)
    artifact = models.TextField(
        blank=True, default="", help_text="The model as text: LightGBM's own, or the task's JSON around it."
    )
    card = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="model_version_unique"),
            # Scores are read from the active version: there is at most one per task.
            models.UniqueConstraint(fields=["task"], condition=Q(status="active"), name="one_active_model_per_task"),
        ]

    def __str__(self) -> str:
        return f"{self.task} v{self.version} ({self.status})"


class Score(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="scores", db_constraint=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    probability = models.FloatField()
    decile = models.PositiveSmallIntegerField(help_text="1 = the tenth most likely to act, 10 = the least.")
    reasons = models.JSONField(
        null=True, blank=True, default=None,
        help_text="The three features that moved this score most; computed when first asked for (NULL until then).",
    )
    scored_at = models.DateTimeField(help_text="The moment the features were read as of.")

    class Meta:
        # The unique index (version, customer) serves both the segment rule and the customer page;
        # a second index would slow every bulk write of a million scores.
        constraints = [models.UniqueConstraint(fields=["model_version", "customer"], name="score_unique_per_version")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.probability:.3f} (decile {self.decile})"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ScoringRun(models.Model):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="runs")
    as_of = models.DateTimeField(help_text="Features are read as of this moment.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    chunk_customers = models.PositiveIntegerField()
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    customers_scored = models.PositiveIntegerField(default=0)
    decile_cut_points = models.JSONField(
        default=list, blank=True, help_text="Nine probabilities between deciles, from a sample scored first."
    )
    season_index = models.FloatField(default=1.0, help_text="The season index every chunk reads its features with.")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Scoring run {self.pk} of {self.model_version} ({self.status})"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ScoringChunkQuerySet(models.QuerySet):
    def pending(self) -> "ScoringChunkQuerySet":
        return self.filter(status=ChunkStatus.PENDING)


class ScoringChunk(models.Model):
    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    customers = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ScoringChunkQuerySet.as_manager()

    class Meta:
        ordering = ["run", "first_id"]
        constraints = [models.UniqueConstraint(fields=["run", "first_id"], name="scoring_chunk_unique")]

    def __str__(self) -> str:
        return f"customers {self.first_id}–{self.last_id} ({self.status})"


class Backtest(models.Model):
    """A version trained on data before `as_of`, judged with its baselines on who ordered in the next horizon."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="backtests")
    as_of = models.DateTimeField(help_text="Trained on data before this moment; customers scored as of it.")
    horizon_days = models.PositiveIntegerField()
    customers = models.PositiveIntegerField(help_text="Customers known at as_of, every one scored.")
    positives = models.PositiveIntegerField(help_text="Those who ordered within the horizon after as_of.")
    metrics = models.JSONField(default=dict, help_text="The model and each baseline, judged the same way.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Backtest of {self.model_version} as of {self.as_of:%Y-%m-%d}"


SALES_FORECAST = "sales_forecast"


class Forecast(models.Model):
    """One week of one series' forecast under a version: units with their interval, and revenue with its own."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="forecasts")
    category = models.CharField(max_length=120, help_text='The product category; "__all__" is the whole shop.')
    week_start = models.DateField(help_text="The Monday of the week, in the shop's time zone.")
    units = models.FloatField()
    units_low = models.FloatField(help_text="Lower end of the prediction interval.")
    units_high = models.FloatField(help_text="Upper end of the prediction interval.")
    revenue = models.FloatField()
    revenue_low = models.FloatField()
    revenue_high = models.FloatField()
    method = models.CharField(max_length=32, help_text="The method whose units forecast this is.")
    revenue_method = models.CharField(max_length=32, help_text="The method whose revenue forecast this is.")

    class Meta:
        verbose_name = "sales forecast"
        ordering = ["model_version", "category", "week_start"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "category", "week_start"], name="forecast_unique_week")
        ]

    def __str__(self) -> str:
        return f"{self.category} from {self.week_start}: {self.units:.1f} units"


class WeeklySales(models.Model):
    """The weekly sales a forecast version learned from, kept with it: its charts and comparisons with last
    year read what the version saw, whatever happens to the orders later."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="weekly_sales")
    category = models.CharField(max_length=120, help_text='The product category; "__all__" is the whole shop.')
    week_start = models.DateField(help_text="The Monday of the week, in the shop's time zone.")
    units = models.FloatField()
    revenue = models.FloatField()

    class Meta:
        verbose_name_plural = "weekly sales"
        ordering = ["model_version", "category", "week_start"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "category", "week_start"], name="weekly_sales_unique_week")
        ]

    def __str__(self) -> str:
        return f"{self.category} in the week of {self.week_start}: {self.units:.0f} units"


class SalesForecastVersion(ModelVersion):
    """The versions of the sales forecast, for their own admin page (activation judged by the backtest)."""

    class Meta:
        proxy = True
        verbose_name = "sales forecast version"
class IntentModelVersion(ModelVersion):
    """The message-intent versions, for their own admin page (the same rows as every model version)."""

    class Meta:
        proxy = True
        verbose_name = "message intent model"


PRODUCT_RECOMMENDATIONS = "product_recommendations"


class Recommendation(models.Model):
    """One customer's stored picks under a version: product ids best first, with their scores."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="recommendations")
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="recommendations", db_constraint=False
    )
    product_ids = models.JSONField(default=list, help_text="Product ids, best first; more than a message shows, so "
                                   "that products out of stock at send time can be skipped.")
    scores = models.JSONField(default=list)
    computed_at = models.DateTimeField(help_text="The moment the customer's history was read as of.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "customer"], name="recommendation_unique_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {len(self.product_ids)} picks"


class RecommenderVersion(ModelVersion):
    """The versions of the product recommender, for their own admin page."""

    class Meta:
        proxy = True
        verbose_name = "recommender version"


SEND_TIMES = "send_times"


class SendTime(models.Model):
    """A customer's best hours to receive e-mail under a version, in their own local time."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="send_times")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="send_times", db_constraint=False)
    hours = models.JSONField(
        default=list,
        help_text="Local hours of the week (0 = Monday 00:00, 167 = Sunday 23:00), best first.",
    )
    engagements = models.PositiveIntegerField(default=0, help_text="Opens and clicks by a person it learned from.")
    weekly = models.BooleanField(default=True, help_text="False when history was thin and the hour of day was used.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "customer"], name="send_time_unique_per_version")]

    def __str__(self) -> str:
        return f"{self.customer_id}: hour {self.hours[:1]}"


class SendTimeVersion(ModelVersion):
    """The versions of the send-time model, for their own admin page."""

    class Meta:
        proxy = True
        verbose_name = "send-time model"
