"""The converters' one error type: its message is one line that says what is wrong and what to do."""


class ConvertError(ValueError):
    """A checkpoint that cannot be converted; ``str(exc)`` is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
