"""Placeholder: being written."""
def build(x): raise NotImplementedError
