"""Providers, one package per service behind the small protocols in base.py; registry.py maps names to them."""
