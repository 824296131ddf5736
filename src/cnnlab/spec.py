"""Placeholder: being written."""
def load_spec(x): raise NotImplementedError
