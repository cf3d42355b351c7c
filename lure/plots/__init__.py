"""Plots a person would rather look at than a table: each as a CSV for ``dvc plots`` and a PNG next to it.

One module per plot, so a stage depends only on the code of the plots it draws.
"""
