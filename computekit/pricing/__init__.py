"""Pricing: token prices from genai-prices, computekit's own dated tables, and config overrides."""

from ._book import PriceBook, PriceRef, TokenRates, TrainingRates, UnknownPriceWarning

__all__ = ["PriceBook", "PriceRef", "TokenRates", "TrainingRates", "UnknownPriceWarning"]
