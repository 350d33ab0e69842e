"""Plots and report documents, drawn from files the other packages wrote."""
