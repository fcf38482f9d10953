"""Importing customers, products, orders, order lines and events from CSV and JSON Lines files."""

from marketing.imports.importer import ImportFailed, ImportReport, import_file, parse_map_options
from marketing.imports.schemas import KINDS

__all__ = ["KINDS", "ImportFailed", "ImportReport", "import_file", "parse_map_options"]
