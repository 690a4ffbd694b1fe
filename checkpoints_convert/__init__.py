"""Converters from PyTorch checkpoint files to jaxgan parameter trees.

Every converter sits on one shared reader (`checkpoints_convert.torch_reader`) that parses torch files
and network pickles with numpy alone: no torch, and nothing stored in the file is ever executed.
"""
