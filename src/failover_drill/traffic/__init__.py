"""Open-loop payment traffic: requests scheduled in advance and timed from their scheduled send."""
