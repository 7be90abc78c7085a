"""Tweet analysis: sentiment, score, reputation-risk flags and topics of sanitized tweets.

Two analysers with one interface (`base.Analyser`): `ClaudeAnalyser` (the Messages API, used when
an Anthropic key is configured) and `VaderAnalyser` (a local lexicon, no network). Import them from
their modules; this package imports neither, so using one never loads the other's dependencies.
"""
