"""What the numbers say: the clustered-statistics findings computed from scores.csv (emgrid.scores).

- `clustered`: hierarchical-bootstrap intervals for summary rows and the domain ranking with rank intervals.
- `effects`: the paired trigger effect per domain and the study-style headline.
- `transfer`: the cross-domain transfer matrix and its diagonal contrast.
- `ranking`: domains ranked by a summary column, seeds averaged (for the analyses).
- `tables`: every findings table of one aggregate run, by name (`FINDINGS`).
"""
