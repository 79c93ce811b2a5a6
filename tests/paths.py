"""Where the checkout is, for tests that run commands in it or read its models and recipes."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
