"""reelflow: storyboards in, rendered episodes out."""

__version__ = "0.1.0"
