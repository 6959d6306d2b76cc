"""Identity resolution: which source records are the same customer.

The rest of Accord talks to `Matcher` (interface.py) only, so the learned probabilistic
engine replaces the rule engine without touching intake, golden records or the web.
"""

from accord.match.interface import Link, Matcher, MatchRecord, MatchResult, build_matcher

__all__ = ["Link", "MatchRecord", "MatchResult", "Matcher", "build_matcher"]
