"""evaluate's work: score the candidate, the distance baseline and the champion (scoring.py),
then gate the candidate on those scores (gate.py)."""
