"""The filter language: its parser, the matcher that runs it on captures (RE2 for regexes) and the indexes it uses."""
