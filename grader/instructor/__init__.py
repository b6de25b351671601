"""Instructor tools built on the grading core's results (issue 17; only ``report`` so far)."""
