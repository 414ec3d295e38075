"""Kaizen: continuous training and delivery on Kubeflow, from one pipeline definition."""

__version__ = "0.1.0"
