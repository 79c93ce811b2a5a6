"""Torch networks: streaming layers (conv), generators (melgan, ap), discriminators, losses."""
