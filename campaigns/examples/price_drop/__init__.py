"""The price-drop example: a polled trigger (`triggers.py`) and a step (`steps.py`), as an app ships them."""
