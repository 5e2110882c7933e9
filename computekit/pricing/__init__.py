"""Pricing: token prices from genai-prices, computekit's own dated tables, and config overrides."""

from ._book import BATCH_CONTEXT, PriceBook, PriceRef, TokenRates, TrainingRates, UnknownPriceWarning

__all__ = ["BATCH_CONTEXT", "PriceBook", "PriceRef", "TokenRates", "TrainingRates", "UnknownPriceWarning"]
