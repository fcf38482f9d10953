"""Text cells that a spreadsheet would run: every CSV Kairos writes passes its text cells through here.

A cell starting with "=", "+", "-" or "@" (or a tab or carriage return, which some programs skip
before looking) is read as a formula by Excel, LibreOffice and Google Sheets, so a product name or a
customer id from a shop could run one on the marketer's machine. A leading apostrophe makes it text.
Numbers that Kairos formats itself are never passed here: "-3.5" is a number, not a formula.
"""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """Return the text as a spreadsheet shows it literally."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
