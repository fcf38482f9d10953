"""python manage.py train_intents [--activate]"""

from django.core.management.base import BaseCommand, CommandError

from ml.intent_evaluation import MARGIN_OVER_MAJORITY, evaluation_table
from ml.intent_registry import activate_intent_version, train_intents
from ml.registry import ActivationRefused


class Command(BaseCommand):
    help = (
        "Train a message intent and sentiment model on ml/data and the inbox's corrections; print cross-validated "
        "and held-out macro-F1 against a majority-class and a keyword-rule baseline."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--activate", action="store_true", help="Activate the new version if it beats both baselines."
        )

    def handle(self, *args, activate: bool, **options) -> None:
        trained = train_intents()
        version, evaluation = trained.version, trained.evaluation
        self.stdout.write(
            f"{version}: {version.params['examples']} examples ({trained.corrections} corrections from the inbox)"
        )
        self.stdout.write(evaluation_table(evaluation))
        verdict = "beats" if evaluation.beats_baselines else "does not beat"
        self.stdout.write(
            f"{verdict} both baselines (macro-F1 at least {MARGIN_OVER_MAJORITY} above the majority class and above "
            "the keyword rules, cross-validated and held-out)"
        )
        if not activate:
            self.stdout.write(f"{version} is a candidate; activate it with --activate or in the admin")
            return
        try:
            activate_intent_version(version)
        except ActivationRefused as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(f"activated {version}")
