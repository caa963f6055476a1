"""Analyses that explain the misalignment ranking: a membership-inference prior (`mia`), the topical diversity of a
domain's data (`diversity`), and the domain-level statistics both are tested with (`domain_stats`)."""
