"""Cells of the CSV files Kairos writes: a spreadsheet must never run one as a formula."""

# A spreadsheet runs a cell starting with one of these as a formula (or strips it and runs the rest).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Return the text, with a leading quote when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
