"""Datasets jaxgan generates or reads for training its own models (`toyfaces`: procedural, part-labelled faces)."""
