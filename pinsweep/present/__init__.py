"""Tables to words and pictures: the terminal, plots, advice and the report; they only consume tables."""
